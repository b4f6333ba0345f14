"""PartitionLog appends, reads, rolls, restarts and index lookups on real files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from broker.log import LogConfig, OffsetMismatch, OffsetOutOfRange, PartitionLog, RecordTooLarge
from broker.protocol.batch import InvalidBatch, crc_is_valid, iter_headers
from broker.protocol.records import (
    ControlType,
    NewRecord,
    build_batch,
    build_control_batch,
    decode_batches,
)

SMALL = LogConfig(segment_bytes=4096, index_interval_bytes=256)


def batch(count: int = 3, *, timestamp_ms: int = 1000, tag: str = "v", size: int = 10) -> bytearray:
    records = [
        NewRecord(f"k{i}".encode(), f"{tag}{i}".encode().ljust(size, b"."), (), timestamp_ms + i)
        for i in range(count)
    ]
    return bytearray(build_batch(records))


def offsets(data: bytes) -> list[int]:
    return [record.offset for record in decode_batches(data)]


def all_offsets(log: PartitionLog) -> list[int]:
    return [r.offset for _, data in log.iter_batches() for r in decode_batches(data)]


def fill(log: PartitionLog, batches: int, *, records: int = 3, now_ms: int = 1000) -> None:
    for number in range(batches):
        log.append(batch(records, timestamp_ms=1000 + number), leader_epoch=0, now_ms=now_ms)


def test_append_assigns_offsets_and_stamps_epoch(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    first = log.append(batch(3), leader_epoch=4, now_ms=0)
    second = log.append(batch(2) + batch(5), leader_epoch=4, now_ms=0)
    assert (first.first_offset, first.last_offset) == (0, 2)
    assert (second.first_offset, second.last_offset, second.batch_count) == (3, 9, 2)
    assert log.log_end_offset == 10
    data = log.read(0, 1 << 20)
    assert offsets(data) == list(range(10))
    headers = list(iter_headers(data))
    assert all(h.partition_leader_epoch == 4 and crc_is_valid(data, h) for h in headers)


def test_round_trip_across_segment_rolls(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    fill(log, 200)
    assert log.segment_count > 5
    assert len(list(tmp_path.glob("*.log"))) == log.segment_count
    assert all_offsets(log) == list(range(600))
    for start in range(0, 600, 7):  # every read starts at the batch holding start
        data = log.read(start, 1)
        assert offsets(data) == [start - start % 3 + i for i in range(3)]


def test_read_max_bytes_returns_whole_batches(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(), now_ms=0)
    fill(log, 10)
    size = len(log.read(0, 1))  # one whole batch even when max_bytes is smaller
    assert offsets(log.read(0, 1)) == [0, 1, 2]
    assert len(log.read(0, size * 3 + size // 2)) == size * 3
    assert offsets(log.read(4, size * 2)) == [3, 4, 5, 6, 7, 8]
    assert log.read(30, 1000) == b""


def test_read_respects_max_offset(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(), now_ms=0)
    fill(log, 10)
    assert offsets(log.read(0, 1 << 20, max_offset=9)) == list(range(9))
    assert offsets(log.read(0, 1 << 20, max_offset=8)) == list(range(6))  # batch 6-8 not below
    assert log.read(6, 1 << 20, max_offset=8) == b""
    assert log.read(9, 1 << 20, max_offset=9) == b""


def test_read_out_of_range(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(), now_ms=0)
    fill(log, 2)
    assert log.read(6, 100) == b""
    with pytest.raises(OffsetOutOfRange):
        log.read(7, 100)
    log.delete_records_before(3)
    with pytest.raises(OffsetOutOfRange):
        log.read(2, 100)
    assert offsets(log.read(3, 1 << 20)) == [3, 4, 5]


def test_index_lookups_at_every_offset(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1 << 20, index_interval_bytes=100)
    log = PartitionLog.open(tmp_path, config, now_ms=0)
    for number in range(300):
        log.append(batch(1 + number % 4), leader_epoch=0, now_ms=0)
    assert len(log.active.index) > 50
    for start in range(log.log_end_offset):
        got = offsets(log.read(start, 1))
        assert got[0] <= start <= got[-1]
    log.close()
    reopened = PartitionLog.open(tmp_path, config, now_ms=0)
    assert len(reopened.active.index) == len(log.active.index)
    for start in range(0, reopened.log_end_offset, 5):
        got = offsets(reopened.read(start, 1))
        assert got[0] <= start <= got[-1]


def test_restart_after_close_keeps_everything(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    fill(log, 100)
    before = log.read(0, 1 << 20)
    log.close()
    assert (tmp_path / ".clean-shutdown").exists()
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    assert not (tmp_path / ".clean-shutdown").exists()
    assert log.log_end_offset == 300
    assert log.read(0, 1 << 20) == before
    assert log.append(batch(1), leader_epoch=0, now_ms=0).first_offset == 300


def test_rejects_bad_batches_and_writes_nothing(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(max_message_bytes=500), now_ms=0)
    corrupt = batch(2)
    corrupt[-1] ^= 0xFF
    with pytest.raises(InvalidBatch, match="CRC"):
        log.append(batch(1) + corrupt, leader_epoch=0, now_ms=0)
    with pytest.raises(RecordTooLarge):
        log.append(batch(1) + batch(2, size=600), leader_epoch=0, now_ms=0)
    with pytest.raises(InvalidBatch):
        log.append(batch(1)[:-3], leader_epoch=0, now_ms=0)
    with pytest.raises(InvalidBatch):
        log.append(bytearray(), leader_epoch=0, now_ms=0)
    marker = bytearray(
        build_control_batch(ControlType.COMMIT, producer_id=1, producer_epoch=0, timestamp_ms=1)
    )
    with pytest.raises(InvalidBatch, match="control"):
        log.append(marker, leader_epoch=0, now_ms=0)
    assert log.log_end_offset == 0 and log.size_bytes == 0
    assert log.append(marker, leader_epoch=0, now_ms=0, allow_control=True).last_offset == 0


def test_inconsistent_record_count_is_rejected(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(), now_ms=0)
    bad = bytearray(build_batch([NewRecord(b"k", b"v")], last_offset_delta=4))
    with pytest.raises(InvalidBatch, match="lastOffsetDelta"):
        log.append(bad, leader_epoch=0, now_ms=0)


def test_log_append_time(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(message_timestamp_type="LogAppendTime"), now_ms=0)
    info = log.append(batch(2, timestamp_ms=5), leader_epoch=0, now_ms=777)
    assert info.log_append_time_ms == 777
    data = log.read(0, 1 << 20)
    (header,) = iter_headers(data)
    assert header.uses_log_append_time and crc_is_valid(data, header)
    assert [r.timestamp_ms for r in decode_batches(data)] == [777, 777]


def test_segment_ms_rolls(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_ms=1000), now_ms=0)
    log.append(batch(1), leader_epoch=0, now_ms=10)
    log.append(batch(1), leader_epoch=0, now_ms=500)
    assert log.segment_count == 1
    log.append(batch(1), leader_epoch=0, now_ms=1500)
    assert log.segment_count == 2 and log.active.base_offset == 2


def test_follower_append_keeps_offsets(tmp_path: Path) -> None:
    leader = PartitionLog.open(tmp_path / "leader", SMALL, now_ms=0)
    follower = PartitionLog.open(tmp_path / "follower", SMALL, now_ms=0)
    fill(leader, 30)
    position = 0
    while position < leader.log_end_offset:
        chunk = leader.read(position, 500)
        follower.append_as_follower(chunk)
        position = follower.log_end_offset
    assert list(follower.iter_batches()) == list(leader.iter_batches())
    with pytest.raises(OffsetMismatch):
        follower.append_as_follower(leader.read(0, 100))


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    for number in range(100):  # batch n holds timestamps 10n, 10n+1, 10n+2
        log.append(batch(3, timestamp_ms=10 * number), leader_epoch=0, now_ms=0)
    assert log.offset_for_timestamp(0) == (0, 0)
    assert log.offset_for_timestamp(1) == (1, 1)
    assert log.offset_for_timestamp(3) == (3, 10)
    assert log.offset_for_timestamp(555) == (168, 560)
    assert log.offset_for_timestamp(992) == (299, 992)
    assert log.offset_for_timestamp(993) is None
    log.close()
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    assert log.offset_for_timestamp(555) == (168, 560)


def test_truncate_to(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    fill(log, 100)
    segments = log.segment_count
    log.truncate_to(151)  # inside batch 150-152: the whole batch goes
    assert log.log_end_offset == 150
    assert log.segment_count < segments
    assert offsets(log.read(140, 1 << 20))[-1] == 149
    assert log.append(batch(1), leader_epoch=1, now_ms=0).first_offset == 150
    log.close()
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    assert log.log_end_offset == 151
    assert all_offsets(log)[-3:] == [148, 149, 150]


def test_delete_records_before_survives_restart(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    fill(log, 100)
    log.delete_records_before(250)
    assert log.log_start_offset == 250
    assert log.active.base_offset <= 250
    log.close()
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    assert log.log_start_offset == 250
    assert offsets(log.read(250, 1))[0] <= 250


def test_truncate_below_start_empties_the_log(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    fill(log, 10)
    log.delete_records_before(20)
    log.truncate_to(5)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (5, 5, 0)
    assert log.append(batch(1), leader_epoch=0, now_ms=0).first_offset == 5


def test_max_offset_struct_sanity() -> None:
    assert struct.calcsize(">qi") == 12
