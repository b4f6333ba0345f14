"""Compaction keeps the latest record per key, offsets, control batches; crash-safe."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.log import LogConfig, PartitionLog
from broker.protocol.batch import crc_is_valid, read_header
from broker.protocol.records import (
    LZ4,
    ControlType,
    NewRecord,
    Record,
    build_batch,
    build_control_batch,
    decode_batch_records,
)

DAY_MS = 86_400_000
CONFIG = LogConfig(segment_bytes=1500, cleanup_policy="compact", delete_retention_ms=DAY_MS)


def records(log: PartitionLog) -> list[Record]:
    out = []
    for header, data in log.iter_batches():
        assert crc_is_valid(data, header)
        out.extend(decode_batch_records(data, header))
    return out


def put(
    log: PartitionLog, key: bytes, value: bytes | None, timestamp_ms: int = 1000, **kw: int
) -> int:
    data = bytearray(build_batch([NewRecord(key, value, (), timestamp_ms)], **kw))
    return log.append(data, leader_epoch=0, now_ms=timestamp_ms).first_offset


def test_keeps_latest_per_key_and_offsets(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    latest: dict[bytes, tuple[int, bytes]] = {}
    for number in range(300):
        key, value = b"key-%d" % (number % 17), b"value-%d" % number
        latest[key] = (put(log, key, value), value)
    size_before = log.size_bytes
    stats = log.compact(now_ms=2000)
    assert stats.segments_cleaned > 0 and log.size_bytes < size_before
    kept = records(log)
    assert [r.offset for r in kept] == sorted(r.offset for r in kept)
    active_base = log.active.base_offset
    for record in kept:
        assert record.key is not None
        if record.offset < active_base:
            assert latest[record.key] == (record.offset, record.value)
    assert {(r.offset, r.value) for r in kept} >= set(latest.values())
    assert log.log_end_offset == 300
    log.close()
    assert records(PartitionLog.open(tmp_path, CONFIG, now_ms=0)) == kept


def test_rewritten_batch_keeps_header_fields(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    batch = bytearray(
        build_batch(
            [NewRecord(b"a", b"1", (), 5), NewRecord(b"b", b"2", (), 6), NewRecord(b"a", b"3")],
            compression=LZ4, producer_id=42, producer_epoch=3, base_sequence=10,
        )
    )  # fmt: skip
    log.append(batch, leader_epoch=9, now_ms=0)
    log.roll(now_ms=0)
    put(log, b"z", b"z")
    log.compact(now_ms=100)
    header, data = next(log.iter_batches())
    assert (header.base_offset, header.last_offset_delta, header.records_count) == (0, 2, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 10)
    assert (header.compression, header.partition_leader_epoch) == (LZ4, 9)
    assert [(r.offset, r.key) for r in decode_batch_records(data, header)] == [(1, b"b"), (2, b"a")]


def test_tombstones_removed_only_after_delete_retention(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    put(log, b"gone", b"value", timestamp_ms=1000)
    put(log, b"gone", None, timestamp_ms=2000)
    put(log, b"stays", b"v", timestamp_ms=2000)
    log.roll(now_ms=3000)
    put(log, b"other", b"v", timestamp_ms=3000)
    log.compact(now_ms=3000)
    assert [(r.key, r.value) for r in records(log)] == [
        (b"gone", None), (b"stays", b"v"), (b"other", b"v"),
    ]  # fmt: skip
    assert log.compact(now_ms=2000 + DAY_MS).tombstones_removed == 0  # not yet older
    stats = log.compact(now_ms=2001 + DAY_MS)
    assert stats.tombstones_removed == 1
    assert [r.key for r in records(log)] == [b"stays", b"other"]


def test_newer_value_in_active_segment_wins(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    put(log, b"k", b"old")
    log.roll(now_ms=0)
    put(log, b"k", b"new")
    log.compact(now_ms=5000)
    assert [(r.offset, r.value) for r in records(log)] == [(1, b"new")]
    assert log.read(0, 1000)  # offset 0 now reads the next batch
    assert read_header(log.read(0, 1000)).base_offset == 1


def test_control_batches_and_producer_last_batch_stay(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    put(log, b"k", b"1", producer_id=7, producer_epoch=0, base_sequence=0)
    marker = build_control_batch(
        ControlType.COMMIT, producer_id=7, producer_epoch=0, timestamp_ms=1
    )
    log.append(bytearray(marker), leader_epoch=0, now_ms=0, allow_control=True)
    put(log, b"k", b"2")
    log.roll(now_ms=0)
    put(log, b"x", b"x")
    log.compact(now_ms=5000)
    headers = [header for header, _ in log.iter_batches()]
    assert [(h.base_offset, h.records_count, h.is_control) for h in headers] == [
        (0, 0, False), (1, 1, True), (2, 1, False), (3, 1, False),
    ]  # fmt: skip
    assert headers[0].producer_id == 7 and headers[0].base_sequence == 0


def test_min_compaction_lag(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1500, cleanup_policy="compact", min_compaction_lag_ms=10_000)
    log = PartitionLog.open(tmp_path, config, now_ms=0)
    put(log, b"k", b"1", timestamp_ms=1000)
    put(log, b"k", b"2", timestamp_ms=1000)
    log.roll(now_ms=0)
    put(log, b"k", b"3", timestamp_ms=1000)
    assert log.compact(now_ms=5000).records_removed == 0
    assert log.compact(now_ms=11_001).records_removed == 2


def test_interrupted_compaction_loses_nothing(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    for number in range(100):
        put(log, b"key-%d" % (number % 5), b"v%d" % number)
    before = records(log)
    for segment in log._segments:
        segment.close()  # crash before compaction finished: a half-written .cleaned remains
    first = sorted(tmp_path.glob("*.log"))[0]
    first.with_name(first.name + ".cleaned").write_bytes(first.read_bytes()[:100])
    reopened = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert records(reopened) == before
    assert not list(tmp_path.glob("*.cleaned"))


def test_crash_between_swap_steps_rebuilds_indexes(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    for number in range(100):
        put(log, b"key-%d" % (number % 5), b"v%d" % number)
    log.compact(now_ms=5000)
    after = records(log)
    log.close()
    for index in tmp_path.glob("*.index"):
        index.unlink()  # the swap deletes indexes before renaming the cleaned log in
    assert records(PartitionLog.open(tmp_path, CONFIG, now_ms=0)) == after


def test_repeated_compaction_is_skipped_until_something_changes(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    for number in range(50):
        put(log, b"key-%d" % (number % 3), b"v%d" % number)
    first = log.compact(now_ms=5000)
    assert first.records_removed > 0
    assert log.compact(now_ms=6000).records_removed == 0
    for number in range(50):
        put(log, b"key-%d" % (number % 3), b"w%d" % number)
    assert log.compact(now_ms=7000).records_removed > 0


def test_keyless_records_are_kept(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    batch = build_batch([NewRecord(None, b"1"), NewRecord(b"k", b"2"), NewRecord(b"k", b"3")])
    log.append(bytearray(batch), leader_epoch=0, now_ms=0)
    log.roll(now_ms=0)
    put(log, b"x", b"x")
    log.compact(now_ms=5000)
    assert [(r.offset, r.key) for r in records(log)] == [(0, None), (2, b"k"), (3, b"x")]


def test_delete_policy_does_not_compact(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=1500), now_ms=0)
    for number in range(50):
        put(log, b"k", b"v%d" % number)
    assert log.compact(now_ms=5000).records_removed == 0
    assert len(records(log)) == 50


operations = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([b"a", b"b", b"c", b"d"]), st.none() | st.binary(max_size=8)),
        st.just("roll"),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations, age_ms=st.sampled_from([0, DAY_MS + 10]))
def test_compaction_property(ops: list[tuple[bytes, bytes | None] | str], age_ms: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        log = PartitionLog.open(Path(name), CONFIG, now_ms=0)
        for op in ops:
            if op == "roll":
                if log.active.size_bytes:
                    log.roll(now_ms=0)
            else:
                key, value = op
                put(log, key, value, timestamp_ms=1000)
        original = records(log)
        active_base = log.active.base_offset
        latest = {r.key: r.offset for r in original}
        log.compact(now_ms=1000 + age_ms)
        expected = [
            r
            for r in original
            if r.offset >= active_base
            or (latest[r.key] == r.offset and (r.value is not None or age_ms == 0))
        ]
        assert records(log) == expected
        log.close()
        reopened = PartitionLog.open(Path(name), CONFIG, now_ms=0)
        assert records(reopened) == expected
        assert reopened.log_end_offset == len(original)
        reopened.close()
