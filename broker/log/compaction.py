"""Log compaction: keep the latest record per key in closed segments.

Offsets never change: a batch that loses records is rebuilt with its original base
offset, lastOffsetDelta, producer fields, leader epoch and compression. Control
batches stay. Keyless records stay (Kafka rejects them at produce time on compacted
topics; we do not decode records on produce, so we keep rather than silently drop).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from broker.log.config import LogConfig
from broker.log.segment import Segment
from broker.protocol.batch import BatchHeader, read_header
from broker.protocol.records import Record, build_batch, decode_batch_records

NEVER_MS = 1 << 62
_WRITE_CHUNK_BYTES = 8 << 20


@dataclass
class CompactionStats:
    segments_cleaned: int = 0
    batches_rewritten: int = 0
    batches_removed: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    next_due_ms: int = NEVER_MS  # when time alone could make another pass useful


@dataclass
class OffsetMap:
    """The latest offset of every key, and each producer's last batch in the log."""

    latest: dict[bytes, int] = field(default_factory=dict)
    last_batch_of_producer: dict[int, int] = field(default_factory=dict)


def build_offset_map(batches: Iterable[tuple[BatchHeader, bytes]]) -> OffsetMap:
    offset_map = OffsetMap()
    for header, data in batches:
        if header.is_control:
            continue  # markers do not count: Kafka keeps a producer's last data batch
        if header.has_producer_id:
            offset_map.last_batch_of_producer[header.producer_id] = header.base_offset
        for record in decode_batch_records(data, header):
            if record.key is not None:
                offset_map.latest[record.key] = record.offset
    return offset_map


def cleanable_segment_count(segments: Sequence[Segment], config: LogConfig, now_ms: int) -> int:
    """Closed segments, oldest first, up to the first younger than min.compaction.lag.ms."""
    count = 0
    for segment in segments[:-1]:
        if segment.max_timestamp_ms > now_ms - config.min_compaction_lag_ms:
            break
        count += 1
    return count


def lag_due_ms(segments: Sequence[Segment], count: int, config: LogConfig) -> int:
    """When the first closed segment held back by min.compaction.lag.ms becomes cleanable."""
    if count >= len(segments) - 1:
        return NEVER_MS
    return segments[count].max_timestamp_ms + config.min_compaction_lag_ms + 1


def clean_batch(
    header: BatchHeader, data: bytes, offset_map: OffsetMap, *, now_ms: int,
    delete_retention_ms: int, stats: CompactionStats,
) -> bytes | None:  # fmt: skip
    """The batch to keep: data itself if untouched, a rebuilt batch, or None to drop it."""
    if header.is_control:
        return data
    records = decode_batch_records(data, header)
    tombstone_deadline_ms = now_ms - delete_retention_ms
    kept = []
    for record in records:
        if _superseded(record, offset_map):
            stats.records_removed += 1
        elif record.value is None and header.max_timestamp < tombstone_deadline_ms:
            stats.records_removed += 1
            stats.tombstones_removed += 1
        else:
            kept.append(record)
            if record.value is None:
                expiry_ms = header.max_timestamp + delete_retention_ms + 1
                stats.next_due_ms = min(stats.next_due_ms, expiry_ms)
    if len(kept) == len(records):
        return data
    if not kept and not _last_of_producer(header, offset_map):
        stats.batches_removed += 1
        return None
    stats.batches_rewritten += 1
    return _rebuild(header, kept)


def _superseded(record: Record, offset_map: OffsetMap) -> bool:
    return record.key is not None and offset_map.latest.get(record.key, -1) > record.offset


def _last_of_producer(header: BatchHeader, offset_map: OffsetMap) -> bool:
    """Kafka keeps an emptied batch if it is its producer's last, to keep its sequence."""
    if not header.has_producer_id:
        return False
    return offset_map.last_batch_of_producer.get(header.producer_id) == header.base_offset


def _rebuild(header: BatchHeader, kept: list[Record]) -> bytes:
    keep_max_timestamp = header.uses_log_append_time or not kept
    return build_batch(
        kept, base_offset=header.base_offset, compression=header.compression,
        producer_id=header.producer_id, producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence, partition_leader_epoch=header.partition_leader_epoch,
        transactional=header.is_transactional, last_offset_delta=header.last_offset_delta,
        timestamp_type_log_append=header.uses_log_append_time,
        max_timestamp_ms=header.max_timestamp if keep_max_timestamp else None,
    )  # fmt: skip


def clean_segment(
    segment: Segment, offset_map: OffsetMap, config: LogConfig, *, now_ms: int,
    stats: CompactionStats,
) -> Segment:  # fmt: skip
    """Rewrite one closed segment into `.cleaned`, swap it in, and return the live one.

    Until the swap the original is untouched; a crash leaves a `.cleaned` file that
    the next open deletes. A segment we cannot read to its end is left alone.
    """
    output = Segment.create(
        segment.directory, segment.base_offset, index_interval_bytes=config.index_interval_bytes,
        now_ms=segment.created_ms, suffix=".cleaned",
    )  # fmt: skip
    try:
        changed, seen_bytes = _copy_retained(segment, output, offset_map, config, now_ms, stats)
    except BaseException:
        output.discard()
        raise
    if not changed or seen_bytes != segment.size_bytes:
        output.discard()
        return segment
    stats.segments_cleaned += 1
    stats.bytes_before += segment.size_bytes
    stats.bytes_after += output.size_bytes
    output.replace(segment)
    return output


def _copy_retained(
    segment: Segment, output: Segment, offset_map: OffsetMap, config: LogConfig, now_ms: int,
    stats: CompactionStats,
) -> tuple[bool, int]:  # fmt: skip
    """Append the retained batches to output; return (anything changed, bytes read)."""
    pending = bytearray()
    headers: list[BatchHeader] = []
    changed, seen_bytes = False, 0
    for header, data in segment.batches(segment.base_offset):
        seen_bytes += header.size_bytes
        kept = clean_batch(
            header, data, offset_map, now_ms=now_ms,
            delete_retention_ms=config.delete_retention_ms, stats=stats,
        )  # fmt: skip
        changed |= kept is not data
        if kept is None:
            continue
        headers.append(replace(read_header(kept), position=len(pending)))
        pending += kept
        if len(pending) >= _WRITE_CHUNK_BYTES:
            output.append(pending, headers)
            pending, headers = bytearray(), []
    if headers:
        output.append(pending, headers)
    return changed, seen_bytes
