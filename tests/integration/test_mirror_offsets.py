"""Exact offset translation: compaction gaps, transaction markers, many groups."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.integration.mirror_harness import (
    Regions,
    Seen,
    TansuProcess,
    WorkerProcess,
    create_topic,
    end_offsets,
    read_all,
    translate,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration
WorkerFactory = Callable[..., WorkerProcess]


def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def _translations(config: Path, groups: list[str]) -> dict[str, int | None]:
    result = {}
    for group in groups:
        rows = list(translate(config, group).values())
        assert len(rows) == 1, rows
        result[group] = rows[0]
    return result


def _assert_exact(source: list[Seen], target: list[Seen], committed: int, translated: int) -> None:
    """Resuming at `translated` on the target reads exactly the source records >= committed."""
    wanted = [
        (r.key, r.value) for r in sorted(source, key=lambda r: r.offset) if r.offset >= committed
    ]
    got = [
        (r.key, r.value) for r in sorted(target, key=lambda r: r.offset) if r.offset >= translated
    ]
    assert got == wanted, (committed, translated)


def test_compaction_gaps_translate_exactly(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(
        us,
        "ledger",
        1,
        {"cleanup.policy": "compact", "segment.bytes": "2048", "delete.retention.ms": "0"},
    )
    producer = Producer({"bootstrap.servers": us, "linger.ms": 50})
    for round_ in range(6):  # several records per batch, so compaction leaves holes inside batches
        for account in range(12):
            producer.produce(
                "ledger", key=b"acct-%d" % account, value=b"r%d-a%d" % (round_, account)
            )
        producer.flush(10)
    for _ in range(12):
        producer.produce("ledger", key=b"filler", value=b"x" * 300)
        producer.flush(10)

    # The cleaner runs every 0.5 s; a pass that started before the last filler was written can
    # leave fillers that the next pass removes, so the source counts as compacted once its
    # accounts are down to one record each and two reads 1.5 s apart agree.
    reads: list[list[Seen]] = [read_all(us, "ledger")]

    def compacted() -> bool:
        time.sleep(1.5)
        reads.append(read_all(us, "ledger"))
        accounts = [r for r in reads[-1] if r.key != b"filler"]
        return len(accounts) <= 12 and reads[-1] == reads[-2]

    wait_until(compacted, 30, "the source to compact")
    source = reads[-1]
    offsets = [r.offset for r in source]
    assert offsets != list(range(offsets[0], offsets[0] + len(offsets))), "expected holes"
    # Groups committed at every interesting place: before, inside holes, on records, at the end.
    high = max(offsets) + 1
    candidates = sorted({0, 1, 5, 30, 59, 60, 61, high - 1, high} | {o + 1 for o in offsets[:8]})
    groups = {f"g{c}": c for c in candidates}
    for group, offset in groups.items():
        _commit(us, group, "ledger", offset)
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    worker_factory(config)
    wait_until(
        lambda: sum(end_offsets(regions.eu.bootstrap, "us.ledger").values()) == len(source),
        30,
        "the compacted topic mirrored",
    )
    target = read_all(regions.eu.bootstrap, "us.ledger")
    assert [r.offset for r in target] == list(range(len(source))), "target offsets are dense"
    translated = _translations(config, sorted(groups))
    for group, committed in groups.items():
        assert translated[group] is not None, group
        _assert_exact(source, target, committed, translated[group])


def test_tansu_source_with_transaction_markers(
    tansu: TansuProcess, regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    create_topic(tansu.bootstrap, "payments", 1)
    producer = Producer({"bootstrap.servers": tansu.bootstrap, "transactional.id": "pay-1"})
    producer.init_transactions(10)
    expected: list[bytes] = []
    for round_ in range(4):
        producer.begin_transaction()
        values = [b"t%d-%d" % (round_, i) for i in range(5)]
        for value in values:
            producer.produce("payments", value=value, partition=0)
        if round_ == 2:
            producer.abort_transaction(10)
        else:
            producer.commit_transaction(10)
            expected += values
    # A group that read the first transaction commits the offset after it: the marker's.
    consumer = Consumer(
        {
            "bootstrap.servers": tansu.bootstrap,
            "group.id": "ledger-app",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition("payments", 0, 0)])
    read: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 20
    while len(read) < 5 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            read.append((message.offset(), message.value()))
    consumer.commit(offsets=[TopicPartition("payments", 0, read[-1][0] + 1)], asynchronous=False)
    consumer.close()
    clusters = {"us": tansu.bootstrap, "eu": regions.eu.bootstrap}
    config = write_config(tmp_path / "w.toml", clusters, [{"source": "us", "target": "eu"}])
    worker_factory(config)
    wait_until(
        lambda: sum(end_offsets(regions.eu.bootstrap, "us.payments").values()) >= 15,
        30,
        "committed transactions mirrored",
    )
    time.sleep(1)
    target = read_all(regions.eu.bootstrap, "us.payments")
    assert [r.value for r in target] == expected, "committed data only, once, in order"
    assert _translations(config, ["ledger-app"]) == {"ledger-app": 5}


def test_thousand_groups_synced_within_ten_seconds(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(us, "clicks", 1)
    producer = Producer({"bootstrap.servers": us, "linger.ms": 5})
    for i in range(2000):
        producer.produce("clicks", value=b"%d" % i, partition=0)
    producer.flush(10)
    groups = {f"team-{i:04d}": (i * 7) % 2001 for i in range(1000)}
    from broker.client import KafkaClient
    from broker.client.groups import commit_offsets

    async def commit_all() -> None:
        async with KafkaClient([("127.0.0.1", regions.us.port)]) as client:
            for group, offset in groups.items():
                await commit_offsets(client, group, {("clicks", 0): (offset, "")})

    import anyio

    anyio.run(commit_all)
    config = write_config(
        tmp_path / "w.toml",
        regions.clusters,
        [
            {
                "source": "us",
                "target": "eu",
                "sync_group_offsets": True,
                "emit_checkpoints_interval_s": 1,
                "refresh_groups_interval_s": 1,
            }
        ],
    )
    worker = worker_factory(config)
    wait_until(
        lambda: sum(end_offsets(regions.eu.bootstrap, "us.clicks").values()) == 2000,
        20,
        "clicks mirrored",
    )
    started_s = time.monotonic()

    async def target_offsets() -> dict[str, int]:
        from broker.client.groups import fetch_committed

        found = {}
        async with KafkaClient([("127.0.0.1", regions.eu.port)]) as client:
            for group in groups:
                committed = await fetch_committed(client, group)
                if ("us.clicks", 0) in committed:
                    found[group] = committed[("us.clicks", 0)][0]
        return found

    def all_synced() -> bool:
        return anyio.run(target_offsets) == groups

    wait_until(all_synced, 10, "1,000 groups synced to the target")
    elapsed_s = time.monotonic() - started_s
    assert elapsed_s < 10
    assert worker.status()["flows"][0]["groups_synced"] == 1000
