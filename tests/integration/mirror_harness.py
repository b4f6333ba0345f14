"""Real mirror workers and helpers for mirror integration tests."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from bench.brokers import port_accepts
from tests.integration.conftest import BrokerProcess, free_port

START_TIMEOUT_S = 20.0


def write_config(path: Path, clusters: dict[str, str], flows: list[dict[str, Any]]) -> Path:
    """A worker TOML file; values are written as JSON literals (valid TOML for these types)."""
    lines = []
    for alias, bootstrap in clusters.items():
        lines += [f"[clusters.{alias}]", f"bootstrap = {json.dumps(bootstrap)}", ""]
    for flow in flows:
        lines.append("[[flows]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in flow.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class WorkerProcess:
    """One `regionlink worker --config FILE` OS process."""

    def __init__(self, config: Path, name: str, extra_args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.name = name
        self.extra_args = extra_args
        self.log_path = config.parent / f"worker-{name}.log"
        self.process: subprocess.Popen[str] | None = None
        self.control = ""  # HOST:PORT of its gRPC control API, known once started

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "a")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mirror.cli",
                "worker",
                "--config",
                str(self.config),
                "--worker-id",
                self.name,
                "--log-level",
                os.environ.get("WORKER_LOG_LEVEL", "info"),
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = ""
        while time.monotonic() < deadline and "control API on" not in seen:
            readable, _, _ = select.select([self.process.stdout.fileno()], [], [], 0.1)
            if readable:
                chunk = os.read(self.process.stdout.fileno(), 4096).decode()
                if not chunk:
                    break
                seen += chunk
        match = re.search(r"control API on (\S+:\d+)", seen)
        if match is None:
            self.kill()
            raise RuntimeError(f"worker did not start: {seen!r} {self.log_text()[-2000:]}")
        self.control = match.group(1)
        return self

    def status(self) -> dict[str, Any]:
        """`regionlink worker status --json`, through the real CLI and control API."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mirror.cli",
                "worker",
                "status",
                "--control",
                self.control,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return dict(json.loads(done.stdout))

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self) -> int:
        return self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(config: Path, name: str = "w1", extra_args: tuple[str, ...] = ()) -> WorkerProcess:
        worker = WorkerProcess(config, name, extra_args)
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.kill()
    for worker in started:
        assert "Traceback" not in worker.log_text(), worker.log_text()[-4000:]


@dataclass
class Regions:
    us: BrokerProcess
    eu: BrokerProcess

    @property
    def clusters(self) -> dict[str, str]:
        return {"us": self.us.bootstrap, "eu": self.eu.bootstrap}


@pytest.fixture
def regions(broker_factory: type[BrokerProcess], tmp_path: Path) -> Regions:
    args = ("--maintenance-interval-s", "0.5")
    return Regions(
        broker_factory(tmp_path / "us", extra_args=args).start(),
        broker_factory(tmp_path / "eu", extra_args=args).start(),
    )


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=configs or {})])[name].result(10)


def topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {k: v.value for k, v in entries.items()}


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    partition: int | None = None,
    keys: list[bytes | None] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for index, value in enumerate(values):
        kwargs: dict[str, Any] = {"value": value, "headers": headers or []}
        if keys is not None:
            kwargs["key"] = keys[index]
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        if index % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


@dataclass(frozen=True)
class Seen:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[Seen]:
    """Every record currently in `topic` (all partitions, up to their end offsets).

    Sorted by (partition, offset): the order a consumer interleaves partitions in is its own.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in metadata.partitions
        }
        ends = {p: high for p, (_, high) in marks.items()}
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in marks.items()])
        seen: list[Seen] = []
        remaining = {p for p, (low, high) in marks.items() if high > low}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            seen.append(
                Seen(
                    message.partition(),
                    message.offset(),
                    message.key(),
                    message.value(),
                    tuple(message.headers() or ()),
                    message.timestamp()[1],
                )
            )
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
        assert not remaining, f"could not read {topic} partitions {remaining} to their end"
        return sorted(seen, key=lambda record: (record.partition, record.offset))
    finally:
        consumer.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        topics = consumer.list_topics(timeout=5).topics  # naming the topic could create it
        if topic not in topics or topics[topic].error is not None:
            return {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in topics[topic].partitions
        }
    finally:
        consumer.close()


def topic_names(bootstrap: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return set(admin.list_topics(timeout=5).topics)


class TansuProcess:
    """The Tansu broker (Rust, in-memory): a Kafka-compatible cluster that is not ours."""

    def __init__(self, work_dir: Path) -> None:
        from tools.fetch_tansu import fetch

        self.port = free_port()
        self.log_path = work_dir / "tansu.log"
        url = f"tcp://127.0.0.1:{self.port}"
        binary = fetch(Path(__file__).resolve().parents[2] / ".tansu")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._accepting, 20, "Tansu to accept connections")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accepting(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text()[-2000:]
        return port_accepts(self.port)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[TansuProcess]:
    process = TansuProcess(tmp_path)
    yield process
    process.stop()


def translate(config: Path, group: str, flow: str = "us:eu") -> dict[tuple[str, int], int | None]:
    """`regionlink offsets translate --json` → {(target topic, partition): target offset}."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirror.cli",
            "offsets",
            "translate",
            "--config",
            str(config),
            "--group",
            group,
            "--flow",
            flow,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["offsets"]
    return {(r["target_topic"], r["partition"]): r["target_offset"] for r in rows}
