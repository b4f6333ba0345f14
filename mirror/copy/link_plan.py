"""Plan how fetched source batches are appended to a mirror topic at their own offsets (pure).

A mirror topic on a regionlink region holds every record at its source offset, so an offset
means the same record in both regions (what Confluent Cluster Linking and Redpanda shadowing
give). The link appends with LinkAppend, which keeps base offsets, instead of Produce, which
assigns them. This planner decides the bytes:

- a data batch is copied whole; only its producer id, epoch and sequence become -1 and its
  transactional bit is cleared, then the CRC is re-signed. Producer ids are allocated per
  region (both start at 1000), so another region's ids must not enter this region's
  producer state, where they would collide with its own producers after a promotion;
- control batches and aborted transactional data (skipped, as a read_committed consumer
  skips them) become *empty batches* — record count 0 over the same offsets, as Kafka's
  cleaner leaves them — so the target's log end offset equals the source's exactly and the
  next append, or a reverse flow after a switchover, lines up offset for offset;
- a batch the target already holds in part (the source was compacted into different batch
  boundaries) is re-encoded from the first missing record, offsets kept.

Offsets the source no longer has (retention, compaction of whole batches) stay gaps: the
next batch simply starts further on.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from crc32c import crc32c

from broker.protocol.batch import (
    CRC_START,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    TRANSACTIONAL_BIT,
    BatchHeader,
    iter_valid_prefix,
)
from broker.protocol.records import build_batch, decode_batch_records
from mirror.copy.transfer import AbortedTransactions

_LEADER_EPOCH = struct.Struct(">i")  # partitionLeaderEpoch at 12
_ATTRIBUTES = struct.Struct(">h")  # at 21
_PRODUCER = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence at 43
_CRC = struct.Struct(">I")  # at 17
_NO_EPOCH = -1


@dataclass(frozen=True)
class LinkBatch:
    """One batch to append at `base_offset`; covers `[base_offset, next_offset)`."""

    data: bytes | bytearray
    base_offset: int
    next_offset: int
    record_count: int
    max_timestamp_ms: int


@dataclass
class LinkPlan:
    batches: list[LinkBatch] = field(default_factory=list)
    next_offset: int = 0  # the target's log end offset once every batch is appended
    empty_batches: int = 0  # skipped ranges (markers, aborted data) kept as empty batches
    reencoded_batches: int = 0

    @property
    def record_count(self) -> int:
        return sum(b.record_count for b in self.batches)

    @property
    def byte_count(self) -> int:
        return sum(len(b.data) for b in self.batches)


def plan_link_append(
    records: bytes,
    aborted: Sequence[tuple[int, int]],
    next_offset: int,
) -> LinkPlan:
    """Batches for the fetched `records`, appended where the target's log ends (`next_offset`)."""
    plan = LinkPlan(next_offset=next_offset)
    filter_ = AbortedTransactions(aborted)
    pending_empty: tuple[int, int, int] | None = None  # (first, last, max timestamp) to merge
    for header in iter_valid_prefix(records):
        aborted_data = filter_.observe(records, header)
        if header.last_offset < plan.next_offset:
            continue  # the target already has it
        if header.is_control or aborted_data or header.records_count == 0:
            first = max(header.base_offset, plan.next_offset)
            if pending_empty is not None and pending_empty[1] + 1 == first:
                pending_empty = (pending_empty[0], header.last_offset, header.max_timestamp)
            else:
                _flush_empty(plan, pending_empty)
                pending_empty = (first, header.last_offset, header.max_timestamp)
            plan.next_offset = header.next_offset
            continue
        _flush_empty(plan, pending_empty)
        pending_empty = None
        if header.base_offset >= plan.next_offset:
            plan.batches.append(_copy(records, header))
        else:
            plan.batches.append(_reencode_tail(records, header, plan.next_offset))
            plan.reencoded_batches += 1
        plan.next_offset = header.next_offset
    _flush_empty(plan, pending_empty)
    assert all(a.next_offset <= b.base_offset for a, b in pairwise(plan.batches))
    return plan


def _copy(records: bytes, header: BatchHeader) -> LinkBatch:
    """The batch as it is, minus the source's producer identity (one copy, CRC re-signed)."""
    start = header.position
    data = bytearray(memoryview(records)[start : start + header.size_bytes])
    _LEADER_EPOCH.pack_into(data, 12, _NO_EPOCH)
    _ATTRIBUTES.pack_into(data, 21, header.attributes & ~TRANSACTIONAL_BIT)
    _PRODUCER.pack_into(data, 43, NO_PRODUCER_ID, -1, NO_SEQUENCE)
    _CRC.pack_into(data, 17, crc32c(memoryview(data)[CRC_START:]))
    return LinkBatch(
        data, header.base_offset, header.next_offset, header.records_count, header.max_timestamp
    )


def _reencode_tail(records: bytes, header: BatchHeader, next_offset: int) -> LinkBatch:
    """The records of `header` from `next_offset` on, in one batch with their offsets kept."""
    kept = [r for r in decode_batch_records(records, header) if r.offset >= next_offset]
    data = build_batch(
        kept,
        base_offset=next_offset,
        compression=header.compression,
        last_offset_delta=header.last_offset - next_offset,
        max_timestamp_ms=header.max_timestamp,
    )
    return LinkBatch(data, next_offset, header.next_offset, len(kept), header.max_timestamp)


def _flush_empty(plan: LinkPlan, pending: tuple[int, int, int] | None) -> None:
    if pending is None:
        return
    first, last, max_timestamp_ms = pending
    data = build_batch(
        [], base_offset=first, last_offset_delta=last - first, max_timestamp_ms=max_timestamp_ms
    )
    plan.batches.append(LinkBatch(data, first, last + 1, 0, max_timestamp_ms))
    plan.empty_batches += 1
