"""Plan how one fetched chunk of a source partition is written to its target (pure).

Batches move as bytes: a dense data batch is copied and only the header fields the
target needs are rewritten (offset, leader epoch, our idempotent producer fields, the
transactional bit), then re-signed. Records are re-encoded only when a batch cannot
be copied as is: compacted batches with holes (Kafka refuses a produced batch whose
record count differs from its offset range), batches carrying a delete horizon, or a
batch we must enter mid-way. Control batches and aborted transactional data are
skipped, exactly as a read_committed consumer skips them.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from crc32c import crc32c

from broker.protocol.batch import (
    CRC_START,
    DELETE_HORIZON_BIT,
    TRANSACTIONAL_BIT,
    BatchHeader,
    iter_valid_prefix,
)
from broker.protocol.records import (
    ControlType,
    NewRecord,
    build_batch,
    control_record_type,
    decode_batch_records,
)
from mirror.offsets.offset_map import MirrorCursor, RunStart

_U32 = struct.Struct(">I")
_REWRITE = struct.Struct(">qiibIh")  # baseOffset .. attributes
_PRODUCER = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence at 43
_PRODUCER_AT = 43


@dataclass(frozen=True)
class ProducerSession:
    """Our idempotent producer on the target: one id per partition copier."""

    producer_id: int
    producer_epoch: int


@dataclass(frozen=True)
class OutgoingBatch:
    data: bytes | bytearray
    record_count: int  # target offsets this batch takes
    source_first_offset: int
    source_last_offset: int
    first_timestamp_ms: int
    max_timestamp_ms: int


@dataclass
class TransferPlan:
    batches: list[OutgoingBatch] = field(default_factory=list)
    new_runs: list[RunStart] = field(default_factory=list)
    skipped_offsets: int = 0  # source offsets passed over without writing (markers, aborts)
    reencoded_batches: int = 0

    @property
    def record_count(self) -> int:
        return sum(b.record_count for b in self.batches)

    @property
    def byte_count(self) -> int:
        return sum(len(b.data) for b in self.batches)


class AbortedTransactions:
    """The read_committed filter of Kafka's fetcher, fed with a Fetch response's list.

    Every batch with a producer id is observed in log order, markers and batches below the
    fetch position included, exactly as Kafka's fetcher does: an aborted transaction opens
    when the log reaches its first offset and closes at its ABORT marker.
    """

    def __init__(self, aborted: Iterable[tuple[int, int]]) -> None:
        self._pending = [(first_offset, producer_id) for producer_id, first_offset in aborted]
        heapq.heapify(self._pending)
        self._open: set[int] = set()

    def observe(self, records: bytes, header: BatchHeader) -> bool:
        """Whether the batch is aborted transactional data (to be skipped)."""
        if not header.has_producer_id:
            return False
        while self._pending and self._pending[0][0] <= header.last_offset:
            self._open.add(heapq.heappop(self._pending)[1])
        if header.is_control:
            if _is_abort_marker(records, header):
                self._open.discard(header.producer_id)
            return False
        return header.is_transactional and header.producer_id in self._open


def _is_abort_marker(records: bytes, header: BatchHeader) -> bool:
    return any(
        control_record_type(record) == ControlType.ABORT
        for record in decode_batch_records(records, header)
    )


def plan_transfer(
    records: bytes,
    aborted: Sequence[tuple[int, int]],
    cursor: MirrorCursor,
    session: ProducerSession,
    next_sequence: int,
) -> tuple[TransferPlan, int]:
    """Turn fetched batch bytes into target batches; returns (plan, next_sequence).

    Mutates `cursor` (source position, target end, new runs). Runs in `plan.new_runs`
    must be persisted before any of `plan.batches` is produced.
    """
    plan = TransferPlan()
    filter_ = AbortedTransactions(aborted)
    for header in iter_valid_prefix(records):
        aborted_data = filter_.observe(records, header)
        if header.last_offset < cursor.source_position:
            continue  # a batch we already copied (fetch returns the whole batch)
        if header.is_control or aborted_data or header.records_count == 0:
            _skip(plan, cursor, header)
        elif _copyable(header, cursor.source_position):
            run = cursor.place_dense(header.base_offset, header.records_count)
            if run is not None:
                plan.new_runs.append(run)
            plan.batches.append(_rewrite(records, header, session, next_sequence))
            next_sequence = (next_sequence + header.records_count) & 0x7FFFFFFF
        else:
            next_sequence = _reencode(records, header, cursor, session, next_sequence, plan)
    run = cursor.close_gap()
    if run is not None:
        plan.new_runs.append(run)
    return plan, next_sequence


def _copyable(header: BatchHeader, source_position: int) -> bool:
    return (
        header.records_count == header.last_offset_delta + 1
        and header.base_offset >= source_position
        and not header.attributes & DELETE_HORIZON_BIT
    )


def _skip(plan: TransferPlan, cursor: MirrorCursor, header: BatchHeader) -> None:
    before = cursor.source_position
    cursor.skip_to(header.next_offset)
    plan.skipped_offsets += cursor.source_position - before


def _rewrite(
    records: bytes, header: BatchHeader, session: ProducerSession, base_sequence: int
) -> OutgoingBatch:
    """Copy the batch, stamp our producer fields and clear the transactional bit."""
    start, end = header.position, header.position + header.size_bytes
    data = bytearray(memoryview(records)[start:end])  # the one copy of the batch
    attributes = header.attributes & ~TRANSACTIONAL_BIT
    _REWRITE.pack_into(data, 0, 0, header.batch_length, -1, 2, 0, attributes)
    _PRODUCER.pack_into(data, _PRODUCER_AT, session.producer_id, session.producer_epoch,
                        base_sequence)  # fmt: skip
    _U32.pack_into(data, 17, crc32c(memoryview(data)[CRC_START:]))
    return OutgoingBatch(
        data,
        header.records_count,
        header.base_offset,
        header.last_offset,
        header.base_timestamp,
        header.max_timestamp,
    )


def _reencode(
    records: bytes,
    header: BatchHeader,
    cursor: MirrorCursor,
    session: ProducerSession,
    base_sequence: int,
    plan: TransferPlan,
) -> int:
    """Write the batch's remaining records densely; one run per hole."""
    kept = [r for r in decode_batch_records(records, header) if r.offset >= cursor.source_position]
    for record in kept:
        run = cursor.place(record.offset)
        if run is not None:
            plan.new_runs.append(run)
    cursor.skip_to(header.next_offset)
    if not kept:
        return base_sequence
    data = build_batch(
        [NewRecord(r.key, r.value, r.headers, r.timestamp_ms) for r in kept],
        compression=header.compression,
        producer_id=session.producer_id,
        producer_epoch=session.producer_epoch,
        base_sequence=base_sequence,
    )
    plan.reencoded_batches += 1
    plan.batches.append(
        OutgoingBatch(
            data,
            len(kept),
            kept[0].offset,
            kept[-1].offset,
            kept[0].timestamp_ms,
            max(r.timestamp_ms for r in kept),
        )
    )
    return (base_sequence + len(kept)) & 0x7FFFFFFF
