"""Mirror topics: identity flows onto a regionlink region keep every record at its offset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.integration.mirror_harness import (
    Regions,
    WorkerProcess,
    create_topic,
    end_offsets,
    produce,
    read_all,
    topic_configs,
    wait_until,
)

pytestmark = pytest.mark.integration
WorkerFactory = Callable[..., WorkerProcess]


def _config(tmp_path: Path, regions: Regions, **flow: object) -> Path:
    """us -> eu with identity naming; eu is a regionlink region (mirror topics)."""
    lines = [
        "[clusters.us]",
        f'bootstrap = "{regions.us.bootstrap}"',
        'kind = "regionlink"',
        "[clusters.eu]",
        f'bootstrap = "{regions.eu.bootstrap}"',
        'kind = "regionlink"',
        "[[flows]]",
        'source = "us"',
        'target = "eu"',
        'naming = "identity"',
        "emit_checkpoints_interval_s = 0.5",
        "refresh_groups_interval_s = 0.5",
        "refresh_topics_interval_s = 0.5",
    ]
    lines += [f"{key} = {str(value).lower()}" for key, value in flow.items()]
    path = tmp_path / "mirror.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _identical(regions: Regions, topic: str) -> None:
    source, target = read_all(regions.us.bootstrap, topic), read_all(regions.eu.bootstrap, topic)
    assert source and target == source  # offsets, keys, values, headers, timestamps


def test_records_land_at_their_source_offsets_and_clients_cannot_write(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us, eu = regions.us.bootstrap, regions.eu.bootstrap
    create_topic(us, "orders", 2)
    produce(
        us,
        "orders",
        [b"order-%d" % i for i in range(400)],
        keys=[b"k%d" % (i % 7) for i in range(400)],
    )
    worker_factory(_config(tmp_path, regions))
    wait_until(lambda: end_offsets(eu, "orders") == end_offsets(us, "orders"), 30, "mirrored")
    _identical(regions, "orders")
    assert topic_configs(eu, "orders").get("regionlink.mirror.source") == "us"

    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": eu, "enable.idempotence": True})
    producer.produce("orders", b"not allowed", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(10) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.POLICY_VIOLATION and not errors[0].retriable()
    assert end_offsets(eu, "orders") == end_offsets(us, "orders")  # nothing appended


def test_a_killed_worker_resumes_from_the_mirror_topics_end_without_duplicates(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us, eu = regions.us.bootstrap, regions.eu.bootstrap
    create_topic(us, "payments", 1)
    produce(us, "payments", [b"p-%d" % i for i in range(3000)])
    config = _config(tmp_path, regions)
    worker = worker_factory(config, "w1")
    wait_until(lambda: sum(end_offsets(eu, "payments").values()) > 0, 30, "copying started")
    worker.kill()
    produce(us, "payments", [b"q-%d" % i for i in range(2000)])
    worker_factory(config, "w2")
    wait_until(lambda: end_offsets(eu, "payments") == end_offsets(us, "payments"), 30, "caught up")
    _identical(regions, "payments")


def test_group_offsets_copy_one_to_one(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us, eu = regions.us.bootstrap, regions.eu.bootstrap
    create_topic(us, "events", 3)
    for partition in range(3):  # 200 each: the committed offsets below lie inside every log
        produce(us, "events", [b"e-%d" % i for i in range(200)], partition=partition)
    consumer = Consumer(
        {"bootstrap.servers": us, "group.id": "billing", "auto.offset.reset": "earliest",
         "enable.auto.commit": False}
    )  # fmt: skip
    committed = [TopicPartition("events", p, 50 + 10 * p) for p in range(3)]
    consumer.commit(offsets=committed, asynchronous=False)
    consumer.close()
    worker_factory(_config(tmp_path, regions, sync_group_offsets=True))

    def synced() -> bool:
        reader = Consumer({"bootstrap.servers": eu, "group.id": "billing"})
        try:
            got = reader.committed([TopicPartition("events", p) for p in range(3)], timeout=5)
        finally:
            reader.close()
        return [(t.partition, t.offset) for t in got] == [
            (t.partition, t.offset) for t in committed
        ]

    wait_until(synced, 30, "group offsets synced 1:1")
