"""The write lease: a primary that cannot reach its standby stops taking client writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from tests.integration.conftest import BrokerProcess
from tests.integration.mirror_harness import create_topic

pytestmark = pytest.mark.integration
LEASE_S = 1.0


def _write(bootstrap: str, topic: str) -> KafkaError | None:
    """One acks=all write; its delivery error, or None if it was acknowledged."""
    outcome: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 5000})
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(10)
    assert len(outcome) == 1
    return outcome[0]


def _until(check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until check() is true (fails the test after timeout_s)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"not within {timeout_s:g} s")


def test_a_primary_that_loses_its_standby_refuses_writes_until_it_is_back(
    broker_factory: type[BrokerProcess], tmp_path: Path
) -> None:
    standby = broker_factory(tmp_path / "standby").start()
    role = ("--topology-epoch", "0", "--region-role", "primary", "--topology-primary", "us")
    lease = ("--lease-s", str(LEASE_S), "--lease-peer", standby.bootstrap)
    primary = broker_factory(tmp_path / "primary", extra_args=role + lease).start()
    create_topic(primary.bootstrap, "orders")
    assert _write(primary.bootstrap, "orders") is None

    standby.kill()
    fenced_after_s = _until(lambda: _write(primary.bootstrap, "orders") is not None, 10)
    error = _write(primary.bootstrap, "orders")
    assert error is not None and error.code() == KafkaError.POLICY_VIOLATION
    assert fenced_after_s < LEASE_S + 3  # the lease, a probe interval and client time
    # Group offsets and internal topics stay writable: consumers can still commit.
    create_topic(primary.bootstrap, "heartbeats")
    assert _write(primary.bootstrap, "heartbeats") is None

    standby.start()  # same port: reachable again
    _until(lambda: _write(primary.bootstrap, "orders") is None, 10)
    assert "write lease expired" in primary.log_path.read_text()


def test_a_standby_holds_no_lease(broker_factory: type[BrokerProcess], tmp_path: Path) -> None:
    """Only a primary fences itself: the lease is about who may take writes."""
    unreachable = "127.0.0.1:1"
    region = broker_factory(
        tmp_path / "region",
        extra_args=("--lease-s", str(LEASE_S), "--lease-peer", unreachable),
    ).start()
    create_topic(region.bootstrap, "orders")
    time.sleep(LEASE_S * 2)
    assert _write(region.bootstrap, "orders") is None  # no role: nothing to fence
