"""Helpers for the failover tests: a region's topology through our client, and what real
clients (confluent-kafka, kcat) experience when they write."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from confluent_kafka import KafkaError, Producer

from broker.client import KafkaClient
from broker.client.admin import BROKER_RESOURCE, alter_configs, describe_configs
from broker.topology import Topology

T = TypeVar("T")
CLUSTER = ""  # the resource name of the cluster-wide configs
# librdkafka would retry a retriable error until this; a refusal must come long before it.
MESSAGE_TIMEOUT_MS = 60_000
PROMPT_S = 5.0


def addresses(bootstrap: str) -> list[tuple[str, int]]:
    return [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in bootstrap.split(","))]


def run(bootstrap: str, call: Callable[[KafkaClient], Awaitable[T]]) -> T:
    """`call(client)` with a fresh async client of the region, from a synchronous test; its
    exception is raised as itself, not inside the client's task group's ExceptionGroup."""

    async def main() -> T | Exception:
        async with KafkaClient(addresses(bootstrap), request_timeout_s=20) as client:
            try:
                return await call(client)
            except Exception as exc:
                return exc

    result = anyio.run(main)
    if isinstance(result, Exception):
        raise result
    return result


def set_topology(bootstrap: str, topology: Topology) -> None:
    """IncrementalAlterConfigs on BROKER "" (raises broker.client.KafkaError if refused)."""
    run(bootstrap, lambda c: alter_configs(c, BROKER_RESOURCE, {CLUSTER: topology.configs()}))


def read_topology(bootstrap: str, resource: str = CLUSTER) -> Topology:
    configs = run(
        bootstrap, lambda c: describe_configs(c, BROKER_RESOURCE, [resource], only_overrides=False)
    )
    return Topology.from_configs(
        {k: v for k, v in configs[resource].items() if k.startswith("regionlink.")}
    )


@dataclass(frozen=True)
class Delivery:
    error: KafkaError | None
    offset: int
    seconds: float


def produce(bootstrap: str, topic: str, *, idempotent: bool = False) -> Delivery:
    """One record through confluent-kafka, flushed: its delivery report and how long it took."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": idempotent,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "linger.ms": 0,
        }
    )
    reports: list[Delivery] = []
    start = time.monotonic()
    producer.produce(
        topic,
        b"value",
        on_delivery=lambda err, msg: reports.append(
            Delivery(err, -1 if err else msg.offset(), time.monotonic() - start)
        ),
    )
    producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 10)
    assert len(reports) == 1, "no delivery report"
    return reports[0]


def kcat() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    assert path, "kcat is required (apt-get install -y kcat); make test installs it"
    return path


def kcat_produce(bootstrap: str, topic: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kcat(), "-P", "-b", bootstrap, "-t", topic],
        input="from kcat\n",
        capture_output=True,
        text=True,
        timeout=30,
    )


def kcat_offsets(bootstrap: str, topic: str) -> list[tuple[int, str]]:
    """(offset, value) of every record kcat reads from the beginning to the end."""
    out = subprocess.run(
        [kcat(), "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-f", "%o %s\n"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [(int(o), v) for o, v in (line.split(" ", 1) for line in out.stdout.splitlines())]
