"""Mirror workers between two real single-node regions, with real Kafka clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions

from tests.integration.mirror_harness import (
    Regions,
    WorkerProcess,
    create_topic,
    end_offsets,
    produce,
    read_all,
    topic_configs,
    topic_names,
    translate,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration
WorkerFactory = Callable[..., WorkerProcess]


def _mirrored(regions: Regions, topic: str, remote: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        return sum(end_offsets(regions.eu.bootstrap, remote).values()) >= count

    return check


def test_filters_naming_discovery_and_config_sync(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(us, "orders-a", 2, {"retention.ms": "86400000"})
    create_topic(us, "other", 1)
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    produce(
        us,
        "orders-a",
        [b"a%d" % i for i in range(500)],
        keys=[b"k%d" % (i % 5) for i in range(500)],
        headers=headers,
    )
    produce(us, "other", [b"o"] * 10)
    config = write_config(
        tmp_path / "w.toml",
        regions.clusters,
        [
            {
                "source": "us",
                "target": "eu",
                "topics": ["orders-.*"],
                "refresh_topics_interval_s": 0.5,
            }
        ],
    )
    worker_factory(config)
    wait_until(_mirrored(regions, "orders-a", "us.orders-a", 500), 20, "orders-a mirrored")

    source = read_all(us, "orders-a")
    target = read_all(regions.eu.bootstrap, "us.orders-a")
    strip = [(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp_ms) for r in source]
    assert [
        (r.partition, r.offset, r.key, r.value, r.headers, r.timestamp_ms) for r in target
    ] == strip
    names = topic_names(regions.eu.bootstrap)
    assert "us.other" not in names and "other" not in names
    assert topic_configs(regions.eu.bootstrap, "us.orders-a")["retention.ms"] == "86400000"

    # A topic created while the worker runs is found; partitions and configs follow the source.
    create_topic(us, "orders-b", 1)
    produce(us, "orders-b", [b"b%d" % i for i in range(50)])
    wait_until(_mirrored(regions, "orders-b", "us.orders-b", 50), 20, "new topic mirrored")
    admin = AdminClient({"bootstrap.servers": us})
    admin.create_partitions([NewPartitions("orders-b", 3)])["orders-b"].result(10)
    produce(us, "orders-b", [b"late"], partition=2)
    wait_until(_mirrored(regions, "orders-b", "us.orders-b", 51), 20, "new partition mirrored")
    assert len(end_offsets(regions.eu.bootstrap, "us.orders-b")) == 3
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "orders-a",
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)
    wait_until(
        lambda: topic_configs(regions.eu.bootstrap, "us.orders-a")["retention.ms"] == "3600000",
        20,
        "config change synced",
    )


def _group_consumer(bootstrap: str, topic: str, group: str) -> Consumer:
    """A group member reading `topic` from the earliest offset, committing by hand."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer


def _consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = _group_consumer(bootstrap, topic, group)
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        values.append(message.value())
        if len(values) == count:
            consumer.commit(message=message, asynchronous=False)
    consumer.close()
    assert len(values) == count
    return values


def _consume_rest(bootstrap: str, topic: str, group: str, quiet_s: float = 3.0) -> list[bytes]:
    consumer = _group_consumer(bootstrap, topic, group)
    values: list[bytes] = []
    last_s = time.monotonic()
    while time.monotonic() - last_s < quiet_s:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        values.append(message.value())
        last_s = time.monotonic()
    consumer.close()
    return values


def test_group_resumes_at_target_exactly(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(us, "orders", 1)
    values = [b"v%04d" % i for i in range(1000)]
    produce(us, "orders", values, partition=0)
    consumed = _consume_and_commit(us, "orders", "billing", 437)
    assert consumed == values[:437]
    config = write_config(
        tmp_path / "w.toml",
        regions.clusters,
        [
            {
                "source": "us",
                "target": "eu",
                "sync_group_offsets": True,
                "emit_checkpoints_interval_s": 0.5,
                "refresh_groups_interval_s": 0.5,
            }
        ],
    )
    worker_factory(config)
    wait_until(_mirrored(regions, "orders", "us.orders", 1000), 20, "orders mirrored")
    assert translate(config, "billing") == {("us.orders", 0): 437}

    def synced() -> bool:
        consumer = Consumer({"bootstrap.servers": regions.eu.bootstrap, "group.id": "billing"})
        try:
            committed = consumer.committed([TopicPartition("us.orders", 0)], timeout=5)
            return committed[0].offset == 437
        finally:
            consumer.close()

    wait_until(synced, 20, "group offsets synced to the target")
    assert _consume_rest(regions.eu.bootstrap, "us.orders", "billing") == values[437:]


def test_worker_sigkill_mid_stream_loses_and_duplicates_nothing(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(us, "events", 3)
    stop = threading.Event()
    produced: list[int] = []

    def keep_producing() -> None:
        producer = Producer(
            {"bootstrap.servers": us, "enable.idempotence": True, "linger.ms": 2, "acks": "all"}
        )
        sequence = 0
        while not stop.is_set() and sequence < 200_000:
            for _ in range(200):
                producer.produce("events", key=b"%d" % (sequence % 17), value=b"%08d" % sequence)
                sequence += 1
            producer.poll(0)
            time.sleep(0.01)
        assert producer.flush(30) == 0
        produced.append(sequence)

    thread = threading.Thread(target=keep_producing)
    thread.start()
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    try:
        for round_ in range(3):  # same name: a static member that takes over at once
            worker = worker_factory(config, "w")
            time.sleep(1.5 + 0.5 * round_)
            worker.kill()
    finally:
        stop.set()
        thread.join(60)
    total = produced[0]
    worker_factory(config, "w")
    wait_until(_mirrored(regions, "events", "us.events", total), 60, "all events mirrored")
    time.sleep(1)
    source = read_all(us, "events", timeout_s=30)
    target = read_all(regions.eu.bootstrap, "us.events", timeout_s=30)
    assert len(source) == total
    by_partition = {p: [r.value for r in source if r.partition == p] for p in range(3)}
    mirrored = {
        p: [r.value for r in sorted(target, key=lambda r: r.offset) if r.partition == p]
        for p in range(3)
    }
    assert mirrored == by_partition  # every record once, in order, per partition


def test_two_workers_share_partitions_and_take_over(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(us, "shared", 6)
    produce(us, "shared", [b"a%d" % i for i in range(600)], keys=[b"%d" % i for i in range(600)])
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    first = worker_factory(config, "first")
    second = worker_factory(config, "second")
    wait_until(lambda: "member 1 of 2" in first.log_text() + second.log_text(), 30, "two members")
    wait_until(_mirrored(regions, "shared", "us.shared", 600), 30, "first wave mirrored")
    wait_until(
        lambda: all("resuming at source offset" in w.log_text() for w in (first, second)),
        30,
        "both workers to copy partitions",
    )
    second.kill()
    produce(us, "shared", [b"b%d" % i for i in range(600)], keys=[b"%d" % i for i in range(600)])
    wait_until(_mirrored(regions, "shared", "us.shared", 1200), 60, "second wave mirrored")
    source = read_all(us, "shared")
    target = read_all(regions.eu.bootstrap, "us.shared")
    assert sorted((r.partition, r.value) for r in target) == sorted(
        (r.partition, r.value) for r in source
    )


def test_mirrored_batches_get_spans_linked_to_record_traceparents(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    from broker.spanstore import SpanStore

    us = regions.us.bootstrap
    create_topic(us, "traced", 1)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = [("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())]
    produce(us, "traced", [b"t%d" % i for i in range(20)], partition=0, headers=headers)
    store = tmp_path / "spans.db"
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    worker = worker_factory(config, "w", ("--trace-file", str(store)))  # --span-store's alias
    wait_until(_mirrored(regions, "traced", "us.traced", 20), 20, "traced records mirrored")
    assert worker.stop() == 0  # the provider flushes its spans at exit
    spans = SpanStore(store).trace(trace_id)
    assert spans and all(s.name == "send us.traced" and s.kind == "CLIENT" for s in spans)
    assert all(link.trace_id == trace_id for s in spans for link in s.links)
    assert sum(s.attributes["messaging.batch.message_count"] for s in spans) == 20
    assert {s.attributes["regionlink.source.topic"] for s in spans} == {"traced"}
    target = read_all(regions.eu.bootstrap, "us.traced")
    assert {r.headers for r in target} == {tuple(headers)}, "traceparent passes through unchanged"
