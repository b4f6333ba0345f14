"""Retention and compaction, observed through a real client."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.integration.conftest import BrokerProcess
from tests.integration.test_clients import create_topic

MAINTENANCE = ("--maintenance-interval-s", "0.5")


def _read_all(
    bootstrap: str, topic: str, timeout_s: float = 10
) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"r-{time.monotonic()}",
            "enable.auto.commit": False,
        }
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, low)])
    rows = []
    deadline = time.monotonic() + timeout_s
    while (not rows or rows[-1][0] < high - 1) and time.monotonic() < deadline and high > low:
        msg = consumer.poll(0.3)
        if msg is not None and msg.error() is None:
            rows.append((msg.offset(), msg.key(), msg.value()))
    consumer.close()
    return rows


def _watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "w"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)  # type: ignore[no-any-return]
    finally:
        consumer.close()


def test_compaction_keeps_latest_value_per_key(
    broker_factory: type[BrokerProcess], tmp_path: object
) -> None:
    broker = broker_factory(tmp_path / "b", extra_args=MAINTENANCE).start()  # type: ignore[operator]
    create_topic(
        broker.bootstrap,
        "profiles",
        config={
            "cleanup.policy": "compact",
            "segment.bytes": "1024",
            "delete.retention.ms": "0",
        },
    )
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for round_ in range(5):
        for user in range(10):
            producer.produce("profiles", key=f"user-{user}".encode(), value=f"v{round_}".encode())
            producer.flush(10)
    producer.produce("profiles", key=b"user-3", value=None)  # tombstone
    for _ in range(10):  # a few more records so the tail segments close
        producer.produce("profiles", key=b"filler", value=b"x" * 200)
        producer.flush(10)
    deadline = time.monotonic() + 20
    rows = _read_all(broker.bootstrap, "profiles")
    while time.monotonic() < deadline and len([r for r in rows if r[1] != b"filler"]) > 9:
        time.sleep(0.5)
        rows = _read_all(broker.bootstrap, "profiles")
    latest = {key: value for _, key, value in rows if key != b"filler"}
    assert latest == {f"user-{u}".encode(): b"v4" for u in range(10) if u != 3}
    offsets = [offset for offset, _, _ in rows]
    assert offsets == sorted(offsets)
    user_offsets = {offset for offset, key, _ in rows if key != b"filler"}
    assert user_offsets == {40, 41, 42, 44, 45, 46, 47, 48, 49}, (
        "offsets never change in compaction"
    )


def test_retention_by_time_deletes_old_segments(
    broker_factory: type[BrokerProcess], tmp_path: object
) -> None:
    broker = broker_factory(tmp_path / "b", extra_args=MAINTENANCE).start()  # type: ignore[operator]
    create_topic(
        broker.bootstrap, "events", config={"retention.ms": "60000", "segment.bytes": "1024"}
    )
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    old_ms = int(time.time() * 1000) - 3_600_000
    for i in range(30):
        producer.produce("events", value=b"x" * 100, timestamp=old_ms + i)
        producer.flush(10)
    for _ in range(5):
        producer.produce("events", value=b"fresh")
        producer.flush(10)
    deadline = time.monotonic() + 15
    low, high = _watermarks(broker.bootstrap, "events")
    while time.monotonic() < deadline and low < 30:
        time.sleep(0.5)
        low, high = _watermarks(broker.bootstrap, "events")
    assert (low, high) == (30, 35), "old segments deleted, fresh records kept"
    assert [value for _, _, value in _read_all(broker.bootstrap, "events")] == [b"fresh"] * 5
