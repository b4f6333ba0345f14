"""Benchmark scenarios: each runs against one running broker and returns named metrics.

Add a scenario by writing a `ScenarioFn` and listing it in `build_scenarios`. The RF=3
region's figures are bench.replication_bench's, which reuses `create_topic` and `run_client`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from bench.brokers import REPO_ROOT, RunningBroker

ADMIN_TIMEOUT_S = 30.0
CLIENT_EXIT_SLACK_S = 30.0


class ScenarioError(Exception):
    """A scenario step failed; the message is one readable line."""


@dataclass(frozen=True)
class Metric:
    """A reported figure; `higher_is_better` says which way the ratio should go."""

    key: str
    label: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class BenchOptions:
    """Workload knobs shared by every scenario and broker."""

    records: int = 200_000
    value_bytes: int = 1024
    client_timeout_s: float = 300.0
    rate_mb_s: float | None = None  # produce at this offered load (None: as fast as it can)


@dataclass
class ScenarioResult:
    """Metrics from one run of one scenario on one broker (error set if it failed)."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


ScenarioFn = Callable[[RunningBroker, BenchOptions], ScenarioResult]


@dataclass(frozen=True)
class Scenario:
    """A named scenario and the metrics it reports."""

    name: str
    metrics: tuple[Metric, ...]
    run: ScenarioFn


PRODUCE_CONSUME_METRICS = (
    Metric("produce_records_per_s", "produce records/s"),
    Metric("produce_mb_per_s", "produce MB/s"),
    Metric("produce_p99_latency_ms", "produce p99 latency ms", higher_is_better=False),
    Metric("consume_records_per_s", "consume records/s"),
    Metric("consume_mb_per_s", "consume MB/s"),
)


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    configs: dict[str, str] | None = None,
) -> None:
    """Create `topic` and wait until every partition has a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topic = NewTopic(topic, partitions, replication_factor, config=configs or {})
    futures = admin.create_topics(
        [new_topic],
        operation_timeout=ADMIN_TIMEOUT_S,
        request_timeout=ADMIN_TIMEOUT_S,
    )
    try:
        futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    except Exception as exc:
        raise ScenarioError(f"create topic {topic}: {exc}") from exc
    wait_for_leaders(admin, topic, partitions)


def wait_for_leaders(admin: AdminClient, topic: str, partitions: int) -> None:
    """Poll metadata until `partitions` partitions of `topic` have leaders (bounded)."""
    deadline_s = time.monotonic() + ADMIN_TIMEOUT_S
    while time.monotonic() < deadline_s:
        metadata = admin.list_topics(topic, timeout=ADMIN_TIMEOUT_S).topics.get(topic)
        led = [p for p in (metadata.partitions.values() if metadata else []) if p.leader >= 0]
        if len(led) == partitions:
            return
        time.sleep(0.1)
    raise ScenarioError(f"topic {topic}: partitions without a leader after {ADMIN_TIMEOUT_S} s")


def run_client(step: str, bootstrap: str, topic: str, options: BenchOptions) -> dict[str, Any]:
    """Run `python -m bench.workload STEP` in a subprocess and return its JSON result."""
    argv = [
        sys.executable,
        "-m",
        "bench.workload",
        step,
        f"--bootstrap={bootstrap}",
        f"--topic={topic}",
        f"--records={options.records}",
        f"--value-bytes={options.value_bytes}",
        f"--timeout-s={options.client_timeout_s}",
    ]
    if options.rate_mb_s:
        argv.append(f"--rate-mb-s={options.rate_mb_s}")
    try:
        done = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=options.client_timeout_s + CLIENT_EXIT_SLACK_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ScenarioError(f"{step} client did not finish in time") from exc
    return parse_client_output(step, done)


def parse_client_output(step: str, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The client's last stdout line as JSON, or a ScenarioError quoting its stderr."""
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        stderr_tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ScenarioError(f"{step} client exited {done.returncode}: {stderr_tail}") from None
    return result


def step_error(result: dict[str, Any], expected_records: int) -> str | None:
    """A one-line description of a short or failed step, else None."""
    if result.get("ok"):
        return None
    step = result.get("step", "?")
    detail = result.get("first_error") or "timed out"
    return f"{step}: {result.get('records', 0)}/{expected_records} records; {detail}"


def produce_consume(partitions: int) -> ScenarioFn:
    """Produce N records to a fresh P-partition topic, then consume them all from offset 0."""

    def run(broker: RunningBroker, options: BenchOptions) -> ScenarioResult:
        topic = f"bench-p{partitions}-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap, topic, partitions)
        produced = run_client("produce", broker.bootstrap, topic, options)
        error = step_error(produced, options.records)
        consumed: dict[str, Any] = {}
        if error is None:
            consumed = run_client("consume", broker.bootstrap, topic, options)
            error = step_error(consumed, options.records)
        metrics = {
            "produce_records_per_s": produced.get("records_per_s"),
            "produce_mb_per_s": produced.get("mb_per_s"),
            "produce_p99_latency_ms": produced.get("p99_latency_ms"),
            "consume_records_per_s": consumed.get("records_per_s"),
            "consume_mb_per_s": consumed.get("mb_per_s"),
        }
        return ScenarioResult(metrics, error, {"produce": produced, "consume": consumed})

    return run


def build_scenarios(partition_counts: list[int]) -> list[Scenario]:
    """The scenario list for this run, in order."""
    return [
        Scenario(
            f"{p} partition{'s' if p != 1 else ''}", PRODUCE_CONSUME_METRICS, produce_consume(p)
        )
        for p in partition_counts
    ]
