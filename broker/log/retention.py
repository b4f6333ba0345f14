"""Which old segments retention may delete (retention.ms, retention.bytes, log start)."""

from __future__ import annotations

from collections.abc import Sequence

from broker.log.config import LogConfig
from broker.log.segment import Segment


def deletable_segment_count(
    segments: Sequence[Segment], config: LogConfig, *, now_ms: int, log_start_offset: int,
    high_watermark: int | None = None,
) -> int:  # fmt: skip
    """How many of the oldest segments may go; this may include the active one.

    Like Kafka: a segment goes when it lies wholly below the log start offset, or
    (cleanup.policy has delete) when its newest timestamp is older than retention.ms
    or the log stays at or above retention.bytes without it. Deletion stops at the
    first segment that must stay, and never passes the high watermark.
    """
    remaining_bytes = sum(segment.size_bytes for segment in segments)
    count = 0
    for position, segment in enumerate(segments):
        is_last = position == len(segments) - 1
        end_offset = segment.next_offset if is_last else segments[position + 1].base_offset
        if is_last and segment.size_bytes == 0:
            break
        if high_watermark is not None and end_offset > high_watermark:
            break
        if not (
            end_offset <= log_start_offset
            or _expired(segment, config, now_ms)
            or _over_size(segment, config, remaining_bytes)
        ):
            break
        remaining_bytes -= segment.size_bytes
        count += 1
    return count


def _expired(segment: Segment, config: LogConfig, now_ms: int) -> bool:
    if not config.deletes or config.retention_ms < 0:
        return False
    return segment.max_timestamp_ms < now_ms - config.retention_ms


def _over_size(segment: Segment, config: LogConfig, remaining_bytes: int) -> bool:
    if not config.deletes or config.retention_bytes < 0:
        return False
    return remaining_bytes - segment.size_bytes >= config.retention_bytes
