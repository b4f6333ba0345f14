"""Retention by time, by size and by log start offset."""

from __future__ import annotations

from pathlib import Path

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import NewRecord, build_batch


def batch(timestamp_ms: int) -> bytearray:
    return bytearray(build_batch([NewRecord(b"k", b"v" * 100, (), timestamp_ms)] * 5))


def filled(directory: Path, config: LogConfig, timestamps: range) -> PartitionLog:
    log = PartitionLog.open(directory, config, now_ms=0)
    for timestamp_ms in timestamps:
        log.append(batch(timestamp_ms), leader_epoch=0, now_ms=0)
    return log


def test_retention_by_time_deletes_old_segments(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2000, retention_ms=1000)
    log = filled(tmp_path, config, range(0, 10_000, 100))
    segments, end = log.segment_count, log.log_end_offset
    deleted = log.apply_retention(now_ms=6000)
    assert deleted > 0 and log.segment_count == segments - deleted
    assert log.log_start_offset == log._segments[0].base_offset > 0
    assert all(s.max_timestamp_ms >= 5000 for s in log._segments[1:])
    assert log._segments[0].max_timestamp_ms >= 5000
    assert log.log_end_offset == end
    assert len(list(tmp_path.glob("*.log"))) == log.segment_count
    assert len(list(tmp_path.glob("*.index"))) <= log.segment_count


def test_retention_can_empty_the_log_but_keeps_an_active_segment(tmp_path: Path) -> None:
    log = filled(tmp_path, LogConfig(segment_bytes=2000, retention_ms=1000), range(0, 500, 10))
    end = log.log_end_offset
    log.apply_retention(now_ms=100_000)
    assert log.segment_count == 1 and log.size_bytes == 0
    assert log.log_start_offset == log.log_end_offset == end
    assert log.read(end, 100) == b""
    assert log.append(batch(1), leader_epoch=0, now_ms=0).first_offset == end
    log.close()
    assert PartitionLog.open(tmp_path, LogConfig(), now_ms=0).log_start_offset == end


def test_retention_by_bytes(tmp_path: Path) -> None:
    log = filled(tmp_path, LogConfig(segment_bytes=2000, retention_bytes=5000), range(100))
    log.apply_retention(now_ms=0)
    assert log.size_bytes - log._segments[0].size_bytes < 5000 <= log.size_bytes
    before = log.size_bytes
    assert log.apply_retention(now_ms=0) == 0 and log.size_bytes == before


def test_retention_respects_high_watermark(tmp_path: Path) -> None:
    log = filled(tmp_path, LogConfig(segment_bytes=2000, retention_ms=1), range(100))
    log.apply_retention(now_ms=10**9, high_watermark=log._segments[2].base_offset)
    assert log._segments[0].base_offset == log.log_start_offset > 0
    assert log.segment_count > 3


def test_no_time_or_size_retention_for_compact_only(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2000, retention_ms=1, cleanup_policy="compact")
    log = filled(tmp_path, config, range(100))
    assert log.apply_retention(now_ms=10**9) == 0


def test_infinite_retention(tmp_path: Path) -> None:
    log = filled(tmp_path, LogConfig(segment_bytes=2000, retention_ms=-1), range(100))
    assert log.apply_retention(now_ms=10**12) == 0


def test_delete_records_before_drops_whole_segments(tmp_path: Path) -> None:
    log = filled(tmp_path, LogConfig(segment_bytes=2000), range(100))
    segments = log.segment_count
    target = log._segments[3].base_offset + 2
    log.delete_records_before(target)
    assert log.segment_count == segments - 3
    assert log.log_start_offset == target
