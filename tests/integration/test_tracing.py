"""Trace continuity across regions (issue 13): records produced with trace contexts in
us-east are followed through both brokers and the mirror to a consumer in eu-west, in the
span store `regionlink up` gives every process, which stays within its bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.spanstore import SpanStore, StoredSpan
from mirror.runtime.topology import TracingConfig
from mirror.runtime.tracing_env import span_store_path, tracing_environment
from tests.integration.mirror_harness import create_topic, end_offsets, read_all, wait_until

pytestmark = pytest.mark.integration
RECORDS = 50
MAX_MB = 1.0
TOPOLOGY = f"""
name = "traced"

[regions.us-east]
brokers = 1

[regions.eu-west]
brokers = 1

[[flows]]
source = "us-east"
target = "eu-west"
naming = "identity"
refresh_topics_interval_s = 0.5

[tracing]
max_mb = {MAX_MB}
"""


def regionlink(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args], capture_output=True, text=True,
        timeout=timeout_s,
    )  # fmt: skip


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A running two-region topology: its state dir and each region's bootstrap."""
    path = tmp_path / "traced.toml"
    path.write_text(TOPOLOGY)
    state_dir = tmp_path / "state"
    try:
        started = regionlink("up", str(path), "--state-dir", str(state_dir), "--json")
        assert started.returncode == 0, started.stderr
        regions = json.loads(started.stdout)["regions"]
        yield state_dir, {name: region["bootstrap"] for name, region in regions.items()}
    finally:
        regionlink("down", "--state-dir", str(state_dir))


def app(state_dir: Path, *args: str) -> list[str]:
    """Run the instrumented app with the topology's tracing environment; the keys it handled."""
    env = tracing_environment(TracingConfig(max_mb=MAX_MB), state_dir, os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.traced_app", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1])["keys"])


def hops(spans: list[StoredSpan]) -> set[tuple[str, str, str | None]]:
    return {(s.name, s.kind, s.region) for s in spans}


EVERY_HOP = {
    ("send orders", "PRODUCER", "us-east"),  # the app's producer
    ("send orders", "SERVER", "us-east"),  # us-east's broker: Produce
    ("send orders", "CLIENT", "us-east"),  # the mirror worker (it runs in its source region)
    ("send orders", "SERVER", "eu-west"),  # eu-west's broker: LinkAppend
    ("process orders", "CONSUMER", "eu-west"),  # the app's consumer
}


def test_every_record_is_followed_from_us_east_to_eu_west_and_the_store_stays_bounded(
    topology: tuple[Path, dict[str, str]],
) -> None:
    state_dir, bootstrap = topology
    us, eu = bootstrap["us-east"], bootstrap["eu-west"]
    create_topic(us, "orders", 2)
    produced = app(state_dir, "produce", us, "orders", str(RECORDS), "us-east")
    wait_until(lambda: end_offsets(eu, "orders") == end_offsets(us, "orders"), 30, "mirrored")
    consumed = app(state_dir, "consume", eu, "orders", str(RECORDS), "eu-west")
    assert sorted(consumed) == sorted(produced)

    source, target = read_all(us, "orders"), read_all(eu, "orders")
    assert [r.headers for r in target] == [r.headers for r in source], "byte for byte"
    store = SpanStore(span_store_path(state_dir))
    traces: dict[str, list[StoredSpan]] = {}

    def every_trace_complete() -> bool:  # the brokers and the worker export every 5 s
        for key in produced:
            found = store.search(topic="orders", key=key)
            if len(found) == 1:
                traces[key] = store.trace(found[0].trace_id)
        return len(traces) == RECORDS and all(hops(t) >= EVERY_HOP for t in traces.values())

    wait_until(every_trace_complete, 30, "spans of every hop of every record")
    for key, spans in traces.items():
        producer = next(s for s in spans if s.kind == "PRODUCER")
        header = next(r.headers for r in target if r.key == key.encode())
        assert dict(header)["traceparent"].decode().split("-")[1] == producer.trace_id
        consumer = next(s for s in spans if s.kind == "CONSUMER")
        assert (consumer.trace_id, consumer.parent_id) == (producer.trace_id, producer.span_id)
        assert consumer.attributes["messaging.kafka.message.key"] == key
        linked = [s for s in spans if s.kind in ("SERVER", "CLIENT")]
        assert all(producer.trace_id in {link.trace_id for link in s.links} for s in linked)

    last_keys = [
        app(state_dir, "produce", us, "orders", "2000", "us-east", f"w{wave}-{'x' * 200}-")[-1]
        for wave in range(4)  # several times the bound in spans: app, brokers, mirror
    ]
    stopped = regionlink("down", "--state-dir", str(state_dir))  # every process flushes
    assert stopped.returncode == 0, stopped.stderr
    assert store.size_bytes() <= MAX_MB * 2**20
    assert not store.search(topic="orders", key=produced[0]), "the oldest spans went first"
    assert store.search(topic="orders", key=last_keys[-1]), "the newest are kept"
