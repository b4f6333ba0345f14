"""Retention (delete old segments) and compaction (latest value per key).

Compaction rewrites closed segments into `.cleaned` files and swaps each in with
an atomic rename, so a crash mid-way leaves the original segment intact.
Offsets never change: a rewritten batch keeps its base offset and lastOffsetDelta.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from broker.log.partition_log import PartitionLog
from broker.log.segment import Segment
from broker.protocol.batch import BatchHeader
from broker.protocol.records import Record, build_batch, decode_batch_records


def apply_retention(plog: PartitionLog, now_ms: int) -> int:
    """Delete whole segments past retention.ms or beyond retention.bytes; return how many."""
    config = plog.config
    if not config.deletes:
        return 0
    expired_before_ms = now_ms - config.retention_ms if config.retention_ms >= 0 else None
    if expired_before_ms is not None and plog.active.size_bytes and plog.active.max_timestamp_ms < expired_before_ms:
        plog.roll(now_ms)  # an expired active segment is rolled so it can go (as Kafka does)
    deleted = 0
    while len(plog.segments) > 1:
        oldest = plog.segments[0]
        too_old = expired_before_ms is not None and oldest.max_timestamp_ms < expired_before_ms
        too_big = 0 <= config.retention_bytes <= plog.size_bytes - oldest.size_bytes
        if not (too_old or too_big):
            break
        plog.drop_oldest_segment()
        deleted += 1
    return deleted


@dataclass(frozen=True)
class CompactionStats:
    segments_cleaned: int
    records_removed: int
    bytes_before: int
    bytes_after: int


def _latest_offsets(plog: PartitionLog) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for header, data in plog.iter_batches(plog.log_start_offset):
        if header.is_control:
            continue
        for record in decode_batch_records(data, header):
            if record.key is not None:
                latest[record.key] = record.offset
    return latest


def _keep(record: Record, latest: dict[bytes, int], tombstone_horizon_ms: int, header: BatchHeader) -> bool:
    if record.key is None:
        return True
    if latest.get(record.key) != record.offset:
        return False
    return record.value is not None or header.max_timestamp >= tombstone_horizon_ms


def _clean_batch(header: BatchHeader, data: bytes, keep: list[Record]) -> bytes:
    return build_batch(
        keep, base_offset=header.base_offset, last_offset_delta=header.last_offset_delta,
        compression=header.compression, producer_id=header.producer_id,
        producer_epoch=header.producer_epoch, base_sequence=header.base_sequence,
        partition_leader_epoch=header.partition_leader_epoch, transactional=header.is_transactional,
        log_append_time=header.uses_log_append_time,
    )


def _rewrite(plog: PartitionLog, segment: Segment, latest: dict[bytes, int], now_ms: int) -> tuple[bytes, int]:
    config = plog.config
    horizon_ms = now_ms - config.delete_retention_ms
    lag_limit_ms = now_ms - config.min_compaction_lag_ms
    out, removed = bytearray(), 0
    for header, data in segment.iter_batches(segment.base_offset):
        if header.is_control or header.max_timestamp > lag_limit_ms:
            out += data
            continue
        records = decode_batch_records(data, header)
        keep = [r for r in records if _keep(r, latest, horizon_ms, header)]
        removed += len(records) - len(keep)
        if len(keep) == len(records):
            out += data
        elif keep:
            out += _clean_batch(header, data, keep)
    return bytes(out), removed


def compact(plog: PartitionLog, now_ms: int) -> CompactionStats:
    """Compact every closed segment; the active one is left alone, as in Kafka."""
    if not plog.config.compacted or len(plog.segments) < 2:
        return CompactionStats(0, 0, 0, 0)
    latest = _latest_offsets(plog)
    cleaned = removed = before = after = 0
    for slot, segment in enumerate(list(plog.segments[:-1])):
        data, dropped = _rewrite(plog, segment, latest, now_ms)
        before += segment.size_bytes
        after += len(data)
        if not dropped:
            continue
        plog.segments[slot] = _swap(plog, segment, data)
        cleaned += 1
        removed += dropped
    return CompactionStats(cleaned, removed, before, after)


def _swap(plog: PartitionLog, segment: Segment, data: bytes) -> Segment:
    cleaned_path = segment.path.with_suffix(".log.cleaned")
    with open(cleaned_path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    segment.close()
    os.replace(cleaned_path, segment.path)
    fresh = Segment(plog.directory, segment.base_offset, plog.config.index_interval_bytes)
    fresh.recover(validate_crc=False)
    fresh.created_ms = segment.created_ms
    return fresh
