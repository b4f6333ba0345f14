"""PartitionLog.append_at_offsets: a link's batches land at their own offsets, gaps and empty
batches kept, an empty log starting where the first batch does; bad input writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.log import LogConfig, OffsetMismatch, PartitionLog
from broker.protocol.batch import InvalidBatch, crc_is_valid, iter_headers
from broker.protocol.records import (
    ControlType,
    NewRecord,
    Record,
    build_batch,
    build_control_batch,
    decode_batches,
)

SMALL = LogConfig(segment_bytes=4096, index_interval_bytes=256)


def at(base_offset: int, count: int = 3, *, size: int = 10) -> bytes:
    """A source region's batch: records at base_offset.. (as the link sends it)."""
    return build_batch(
        [
            Record(base_offset + i, 1000 + i, f"k{i}".encode(), b"v".ljust(size, b"."), ())
            for i in range(count)
        ]
    )


def empty(base_offset: int, offsets: int) -> bytes:
    """A batch a cleaner emptied: no records, covering `offsets` offsets."""
    return build_batch(
        [], base_offset=base_offset, last_offset_delta=offsets - 1, max_timestamp_ms=1000
    )


def record_offsets(log: PartitionLog, start: int = 0) -> list[int]:
    return [r.offset for _, data in log.iter_batches(start) for r in decode_batches(data)]


def test_batches_keep_their_offsets_gaps_and_empty_batches(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    log.append_at_offsets(at(0) + empty(3, 4) + at(10, 2), leader_epoch=7, now_ms=0)
    assert log.log_end_offset == 12
    assert record_offsets(log) == [0, 1, 2, 10, 11]
    headers = [header for header, _ in log.iter_batches()]
    assert [(h.base_offset, h.records_count) for h in headers] == [(0, 3), (3, 0), (10, 2)]
    data = log.read(3, 1 << 20)  # a read inside the empty batch starts with it
    assert next(iter_headers(data)).base_offset == 3
    assert all(h.partition_leader_epoch == 7 and crc_is_valid(data, h) for h in iter_headers(data))
    assert log.read(8, 1 << 20)[:8] == (10).to_bytes(8, "big")  # a read inside a gap
    assert log.end_offset_for_epoch(7) == (7, 12)


def test_an_empty_log_starts_at_the_first_batch(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    log.append_at_offsets(bytearray(at(5000)), leader_epoch=0, now_ms=0)
    assert (log.log_start_offset, log.log_end_offset) == (5000, 5003)
    log.close()
    reopened = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (5000, 5003)
    assert record_offsets(reopened, 5000) == [5000, 5001, 5002]


def test_a_gap_wider_than_a_segment_can_index_starts_a_segment(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    log.append_at_offsets(at(0), leader_epoch=0, now_ms=0)
    far = 3 * 2**31
    log.append_at_offsets(at(far), leader_epoch=0, now_ms=0)
    assert log.segment_count == 2 and log.log_end_offset == far + 3
    assert record_offsets(log, far) == [far, far + 1, far + 2]
    log.close()
    assert PartitionLog.open(tmp_path, SMALL, now_ms=0).log_end_offset == far + 3


def test_segments_roll_across_many_link_appends(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    for number in range(100):
        log.append_at_offsets(at(number * 5, 3, size=50), leader_epoch=0, now_ms=0)
    assert log.segment_count > 3
    assert record_offsets(log) == [n * 5 + i for n in range(100) for i in range(3)]


@pytest.mark.parametrize(
    ("batches", "error"),
    [
        (at(3) + at(5), OffsetMismatch),  # overlapping
        (at(10) + at(6), OffsetMismatch),  # decreasing
        (at(2), OffsetMismatch),  # below the log end
        (at(6)[:-1], InvalidBatch),  # cut short
        (build_control_batch(ControlType.COMMIT, producer_id=1, producer_epoch=0,
                             timestamp_ms=0, base_offset=9), InvalidBatch),
    ],
)  # fmt: skip
def test_bad_batches_write_nothing(tmp_path: Path, batches: bytes, error: type) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    log.append_at_offsets(at(0, 6), leader_epoch=0, now_ms=0)
    with pytest.raises(error):
        log.append_at_offsets(at(6) + batches, leader_epoch=0, now_ms=0)
    assert log.log_end_offset == 6 and record_offsets(log) == list(range(6))


def test_no_batch_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidBatch):
        PartitionLog.open(tmp_path, SMALL, now_ms=0).append_at_offsets(
            b"", leader_epoch=0, now_ms=0
        )


def test_a_corrupt_batch_writes_nothing(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    bad = bytearray(at(3))
    bad[-1] ^= 0xFF  # a record byte: the CRC no longer matches
    with pytest.raises(InvalidBatch, match="CRC"):
        log.append_at_offsets(at(0) + bad, leader_epoch=0, now_ms=0)
    assert log.log_end_offset == 0


def test_a_client_append_after_link_appends_continues_at_the_end(tmp_path: Path) -> None:
    """A promoted mirror topic: Produce assigns offsets from the mirrored log end."""
    log = PartitionLog.open(tmp_path, SMALL, now_ms=0)
    log.append_at_offsets(at(100) + empty(103, 2), leader_epoch=0, now_ms=0)
    records = [NewRecord(b"k", b"new", (), 2000)]
    appended = log.append(bytearray(build_batch(records)), leader_epoch=1, now_ms=0)
    assert appended.first_offset == 105
    assert record_offsets(log, 100) == [100, 101, 102, 105]
