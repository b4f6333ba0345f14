"""plan_transfer: byte copies, dense re-encoding, read_committed filtering, run starts."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.batch import (
    CRC_START,
    DELETE_HORIZON_BIT,
    HEADER_BYTES,
    TIMESTAMP_TYPE_BIT,
    BatchHeader,
    crc_is_valid,
    read_header,
)
from broker.protocol.records import (
    GZIP,
    LZ4,
    NO_COMPRESSION,
    SNAPPY,
    ZSTD,
    ControlType,
    NewRecord,
    Record,
    build_batch,
    build_control_batch,
    decode_batch_records,
)
from mirror.copy.transfer import OutgoingBatch, ProducerSession, TransferPlan, plan_transfer
from mirror.offsets.offset_map import MirrorCursor, PartitionOffsetMap, RunStart

SESSION = ProducerSession(producer_id=4242, producer_epoch=3)
CODECS = [NO_COMPRESSION, GZIP, SNAPPY, LZ4, ZSTD]
CODEC_IDS = ["none", "gzip", "snappy", "lz4", "zstd"]
MAX_SEQUENCE = 0x7FFFFFFF
BASE_TS = 1_700_000_000_000

Content = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]


def R(source_offset: int, target_offset: int) -> RunStart:
    return RunStart(source_offset, target_offset)


def rec(offset: int) -> Record:
    """A record whose content is derived from its offset (timestamps not monotonic)."""
    return Record(
        offset=offset,
        timestamp_ms=BASE_TS + (offset * 37) % 11 - 5,
        key=f"k{offset}".encode(),
        value=None if offset % 4 == 3 else f"value-{offset}".encode() * 3,
        headers=(("h", f"{offset}".encode()), ("null", None)) if offset % 2 else (),
    )


def data_batch(base: int, count: int, **kwargs: object) -> bytes:
    return build_batch([rec(base + i) for i in range(count)], base_offset=base, **kwargs)  # type: ignore[arg-type]


def marker(kind: ControlType, producer_id: int, offset: int) -> bytes:
    return build_control_batch(
        kind, producer_id=producer_id, producer_epoch=0, timestamp_ms=BASE_TS, base_offset=offset
    )


def content(record: Record | NewRecord) -> Content:
    return (record.key, record.value, record.headers, record.timestamp_ms)


@dataclass
class Mirror:
    """A cursor and the map it writes to."""

    offset_map: PartitionOffsetMap
    cursor: MirrorCursor

    @property
    def source_position(self) -> int:
        return self.cursor.source_position

    @property
    def target_end(self) -> int:
        return self.cursor.target_end


def run_plan(
    records: bytes,
    *,
    position: int = 0,
    target_end: int = 0,
    aborted: Sequence[tuple[int, int]] = (),
    sequence: int = 0,
    offset_map: PartitionOffsetMap | None = None,
) -> tuple[TransferPlan, int, Mirror]:
    offset_map = PartitionOffsetMap() if offset_map is None else offset_map
    mirror = Mirror(offset_map, MirrorCursor(offset_map, position, target_end))
    plan, next_sequence = plan_transfer(records, list(aborted), mirror.cursor, SESSION, sequence)
    return plan, next_sequence, mirror


def plan_next(mirror: Mirror, records: bytes) -> TransferPlan:
    """The next fetch of the same partition."""
    plan, _ = plan_transfer(records, [], mirror.cursor, SESSION, 0)
    return plan


def out_header(batch: OutgoingBatch) -> BatchHeader:
    header = read_header(batch.data)
    assert header.size_bytes == len(batch.data)
    return header


def out_records(plan: TransferPlan) -> list[Record]:
    return [r for b in plan.batches for r in decode_batch_records(b.data, out_header(b))]


def assert_target_ready(batch: OutgoingBatch, base_sequence: int) -> BatchHeader:
    """What the target broker expects from our idempotent, non-transactional producer."""
    header = out_header(batch)
    assert header.base_offset == 0
    assert header.partition_leader_epoch == -1
    assert header.magic == 2
    assert (header.producer_id, header.producer_epoch) == (4242, 3)
    assert header.base_sequence == base_sequence
    assert not header.is_transactional
    assert not header.is_control
    assert not header.attributes & DELETE_HORIZON_BIT
    assert header.records_count == header.last_offset_delta + 1 == batch.record_count
    assert crc_is_valid(batch.data, header)
    return header


def translate(mirror: Mirror, offset: int) -> int | None:
    return mirror.offset_map.translate(offset, target_end=mirror.target_end)


def with_attribute(batch: bytes, bit: int) -> bytes:
    """Set an attribute bit the builder has no option for, and re-sign the batch."""
    data = bytearray(batch)
    header = read_header(data)
    struct.pack_into(">h", data, 21, header.attributes | bit)
    struct.pack_into(">I", data, 17, crc32c(memoryview(data)[CRC_START:]))
    return bytes(data)


# -- dense batches are copied ----------------------------------------------------------


@pytest.mark.parametrize("compression", CODECS, ids=CODEC_IDS)
def test_dense_batch_is_copied_and_only_its_header_rewritten(compression: int) -> None:
    source = data_batch(
        100,
        5,
        compression=compression,
        producer_id=55,
        producer_epoch=2,
        base_sequence=17,
        partition_leader_epoch=9,
        transactional=True,
    )
    plan, next_sequence, cursor = run_plan(source, position=100, target_end=7, sequence=40)

    assert next_sequence == 45
    assert plan.reencoded_batches == 0 and plan.skipped_offsets == 0
    [batch] = plan.batches
    assert batch.data[HEADER_BYTES:] == source[HEADER_BYTES:]
    header = assert_target_ready(batch, base_sequence=40)
    src = read_header(source)
    assert header.compression == compression
    assert header.batch_length == src.batch_length
    assert header.last_offset_delta == 4 and header.records_count == 5
    assert (header.base_timestamp, header.max_timestamp) == (src.base_timestamp, src.max_timestamp)
    assert header.attributes == src.attributes & ~0x10  # only the transactional bit changes
    assert [content(r) for r in out_records(plan)] == [
        content(r) for r in decode_batch_records(source, src)
    ]
    assert (batch.record_count, batch.source_first_offset, batch.source_last_offset) == (
        5,
        100,
        104,
    )
    assert batch.first_timestamp_ms == rec(100).timestamp_ms
    assert batch.max_timestamp_ms == max(rec(o).timestamp_ms for o in range(100, 105))
    assert plan.new_runs == [R(100, 7)]
    assert (cursor.source_position, cursor.target_end) == (105, 12)
    assert plan.record_count == 5 and plan.byte_count == len(source)


def test_log_append_time_batch_keeps_its_timestamp_type() -> None:
    source = data_batch(0, 3, timestamp_type_log_append=True, max_timestamp_ms=BASE_TS + 999)
    plan, _, _ = run_plan(source)
    [batch] = plan.batches
    header = assert_target_ready(batch, base_sequence=0)
    assert header.attributes & TIMESTAMP_TYPE_BIT
    assert [r.timestamp_ms for r in out_records(plan)] == [BASE_TS + 999] * 3


def test_sequences_continue_across_batches_and_wrap() -> None:
    records = data_batch(0, 2) + data_batch(2, 3) + data_batch(5, 1)
    plan, next_sequence, _ = run_plan(records, sequence=MAX_SEQUENCE - 1)
    # Kafka's DefaultRecordBatch.incrementSequence: MAX_VALUE is followed by 0
    assert [out_header(b).base_sequence for b in plan.batches] == [MAX_SEQUENCE - 1, 0, 3]
    assert next_sequence == 4


# -- run starts ------------------------------------------------------------------------


def test_first_placement_starts_a_run_contiguous_batches_do_not_and_gaps_do() -> None:
    records = data_batch(0, 3) + data_batch(3, 2) + data_batch(8, 2)
    plan, _, cursor = run_plan(records, target_end=5)
    assert plan.new_runs == [R(0, 5), R(8, 10)]
    assert list(cursor.offset_map.runs) == [R(0, 5), R(8, 10)]
    assert (cursor.source_position, cursor.target_end) == (10, 12)
    assert [translate(cursor, o) for o in range(11)] == [5, 6, 7, 8, 9, 10, 10, 10, 10, 11, 12]

    # the next fetch continues the last run
    plan = plan_next(cursor, data_batch(10, 1))
    assert plan.new_runs == [] and len(plan.batches) == 1
    plan = plan_next(cursor, data_batch(13, 1))
    assert plan.new_runs == [R(13, 13)]


def test_records_before_the_first_batch_translate_to_its_target_offset() -> None:
    plan, _, cursor = run_plan(data_batch(4, 2), position=0, target_end=0)
    assert plan.new_runs == [R(4, 0)]
    assert [translate(cursor, o) for o in range(7)] == [0, 0, 0, 0, 0, 1, 2]


def test_empty_fetch_on_a_fresh_cursor_records_where_the_next_record_lands() -> None:
    plan, next_sequence, cursor = run_plan(b"", position=30, target_end=4, sequence=9)
    assert plan.batches == [] and next_sequence == 9
    assert plan.new_runs == [R(30, 4)]
    plan = plan_next(cursor, b"")
    assert plan.new_runs == []


# -- compacted batches are re-encoded densely ------------------------------------------


@pytest.mark.parametrize("compression", CODECS, ids=CODEC_IDS)
def test_sparse_batch_is_reencoded_densely_with_a_run_per_hole(compression: int) -> None:
    kept = [rec(10), rec(12), rec(15)]
    source = build_batch(kept, last_offset_delta=7, compression=compression)
    assert read_header(source).records_count == 3
    plan, next_sequence, cursor = run_plan(source, position=10, sequence=6)

    assert plan.reencoded_batches == 1
    [batch] = plan.batches
    header = assert_target_ready(batch, base_sequence=6)
    assert header.records_count == 3 and header.compression == compression
    assert [content(r) for r in out_records(plan)] == [content(r) for r in kept]
    assert (batch.source_first_offset, batch.source_last_offset) == (10, 15)
    assert batch.first_timestamp_ms == kept[0].timestamp_ms
    assert batch.max_timestamp_ms == max(r.timestamp_ms for r in kept)
    assert next_sequence == 9
    assert plan.new_runs == [R(10, 0), R(12, 1), R(15, 2), R(18, 3)]
    assert (cursor.source_position, cursor.target_end) == (18, 3)
    assert [translate(cursor, o) for o in range(10, 19)] == [0, 1, 1, 2, 2, 2, 3, 3, 3]


def test_sparse_batch_whose_first_record_was_compacted_away() -> None:
    source = build_batch([rec(12), rec(13)], base_offset=10, last_offset_delta=4)
    plan, _, cursor = run_plan(source, position=10)
    assert [content(r) for r in out_records(plan)] == [content(rec(12)), content(rec(13))]
    assert plan.new_runs == [R(12, 0), R(15, 2)]
    assert [translate(cursor, o) for o in range(10, 16)] == [0, 0, 0, 1, 2, 2]


def test_batch_with_a_delete_horizon_is_reencoded_without_it() -> None:
    source = with_attribute(data_batch(0, 3, compression=ZSTD), DELETE_HORIZON_BIT)
    plan, _, cursor = run_plan(source)
    assert plan.reencoded_batches == 1
    [batch] = plan.batches
    header = assert_target_ready(batch, base_sequence=0)
    assert header.compression == ZSTD
    assert [content(r) for r in out_records(plan)] == [content(rec(o)) for o in range(3)]
    assert plan.new_runs == [R(0, 0)] and cursor.source_position == 3


@pytest.mark.parametrize("compression", [NO_COMPRESSION, LZ4], ids=["none", "lz4"])
def test_resuming_inside_a_batch_keeps_only_the_records_at_or_after_the_position(
    compression: int,
) -> None:
    source = data_batch(0, 6, compression=compression)
    # the map says source 0.. landed at target 0..; three records made it
    plan, next_sequence, cursor = run_plan(
        source, position=3, target_end=3, sequence=3, offset_map=PartitionOffsetMap([R(0, 0)])
    )
    assert plan.reencoded_batches == 1
    [batch] = plan.batches
    header = assert_target_ready(batch, base_sequence=3)
    assert header.compression == compression
    assert [content(r) for r in out_records(plan)] == [content(rec(o)) for o in (3, 4, 5)]
    assert (batch.source_first_offset, batch.source_last_offset) == (3, 5)
    assert plan.new_runs == []  # continues the persisted run
    assert next_sequence == 6 and (cursor.source_position, cursor.target_end) == (6, 6)

    plan, _, cursor = run_plan(source, position=3, target_end=0)
    assert plan.new_runs == [R(3, 0)]
    assert [content(r) for r in out_records(plan)] == [content(rec(o)) for o in (3, 4, 5)]


def test_resuming_at_the_last_record_of_a_sparse_batch() -> None:
    source = build_batch([rec(10), rec(12), rec(15)], last_offset_delta=7)
    plan, _, cursor = run_plan(source, position=13)
    assert [content(r) for r in out_records(plan)] == [content(rec(15))]
    assert plan.new_runs == [R(15, 0), R(18, 1)]
    assert cursor.source_position == 18


def test_resuming_past_the_last_record_of_a_sparse_batch_writes_nothing() -> None:
    source = build_batch([rec(10), rec(12)], last_offset_delta=7)
    plan, next_sequence, cursor = run_plan(source, position=14, sequence=5)
    assert plan.batches == [] and plan.reencoded_batches == 0 and next_sequence == 5
    assert cursor.source_position == 18
    assert plan.new_runs == [R(18, 0)]


# -- what is not copied ----------------------------------------------------------------


def test_control_batches_are_skipped() -> None:
    records = (
        data_batch(0, 2, producer_id=7, producer_epoch=0, transactional=True)
        + marker(ControlType.COMMIT, 7, 2)
        + data_batch(3, 2)
    )
    plan, next_sequence, cursor = run_plan(records)
    assert len(plan.batches) == 2 and next_sequence == 4
    assert [content(r) for r in out_records(plan)] == [content(rec(o)) for o in (0, 1, 3, 4)]
    assert plan.skipped_offsets == 1
    assert plan.new_runs == [R(0, 0), R(3, 2)]
    assert cursor.source_position == 5
    assert [translate(cursor, o) for o in range(6)] == [0, 1, 2, 2, 3, 4]


def test_a_trailing_marker_is_closed_so_an_offset_after_it_translates() -> None:
    records = data_batch(0, 2, producer_id=7, producer_epoch=0, transactional=True)
    records += marker(ControlType.COMMIT, 7, 2)
    plan, _, cursor = run_plan(records)
    assert plan.skipped_offsets == 1 and cursor.source_position == 3
    assert plan.new_runs == [R(0, 0), R(3, 2)]
    # a read_committed consumer commits 3 after reading the transaction
    assert translate(cursor, 3) == 2
    assert translate(cursor, 2) == 2


def test_a_fetch_of_only_markers_advances_the_cursor() -> None:
    records = marker(ControlType.COMMIT, 7, 5) + marker(ControlType.ABORT, 8, 6)
    plan, _, cursor = run_plan(records, position=5, target_end=2)
    assert plan.batches == [] and plan.skipped_offsets == 2
    assert cursor.source_position == 7
    assert plan.new_runs == [R(7, 2)]


def test_aborted_transactional_data_is_skipped_and_committed_data_kept() -> None:
    def txn(producer_id: int, base: int, count: int) -> bytes:
        return data_batch(
            base, count, producer_id=producer_id, producer_epoch=0, transactional=True
        )

    records = (
        txn(8, 18, 2)
        + txn(7, 20, 5)
        + marker(ControlType.ABORT, 7, 25)
        + txn(8, 26, 2)
        + marker(ControlType.COMMIT, 8, 28)
    )
    plan, next_sequence, cursor = run_plan(records, position=18, aborted=[(7, 20)])
    assert [content(r) for r in out_records(plan)] == [content(rec(o)) for o in (18, 19, 26, 27)]
    assert [assert_target_ready(b, seq) for b, seq in zip(plan.batches, (0, 2), strict=True)]
    assert next_sequence == 4
    assert plan.skipped_offsets == 7  # five aborted records and two markers
    assert plan.new_runs == [R(18, 0), R(26, 2), R(29, 4)]
    assert cursor.source_position == 29
    assert [translate(cursor, o) for o in range(18, 30)] == [0, 1, 2, 2, 2, 2, 2, 2, 2, 3, 4, 4]


def test_aborted_transaction_entered_mid_batch_is_still_skipped() -> None:
    records = data_batch(20, 5, producer_id=7, producer_epoch=0, transactional=True)
    records += marker(ControlType.ABORT, 7, 25) + data_batch(26, 1)
    plan, _, cursor = run_plan(records, position=22, aborted=[(7, 20)])
    assert [content(r) for r in out_records(plan)] == [content(rec(26))]
    assert plan.reencoded_batches == 0 and plan.skipped_offsets == 4
    assert plan.new_runs == [R(26, 0)] and cursor.source_position == 27


def test_non_transactional_batch_of_an_aborted_producer_id_is_kept() -> None:
    # read_committed filters transactional batches only
    records = data_batch(20, 2, producer_id=7, producer_epoch=0)
    plan, _, _ = run_plan(records, position=20, aborted=[(7, 20)])
    assert len(out_records(plan)) == 2


def test_committed_transaction_after_an_abort_marker_that_starts_the_fetch_is_kept() -> None:
    # fetch 1 held producer 7's aborted data at 20-24; fetch 2 starts at its marker
    records = (
        marker(ControlType.ABORT, 7, 25)
        + data_batch(26, 2, producer_id=7, producer_epoch=0, transactional=True)
        + marker(ControlType.COMMIT, 7, 28)
    )
    plan, _, _ = run_plan(records, position=25, aborted=[(7, 20)])
    assert [content(r) for r in out_records(plan)] == [content(rec(26)), content(rec(27))]


def test_committed_transaction_after_resuming_between_abort_data_and_marker_is_kept() -> None:
    records = (
        data_batch(20, 5, producer_id=7, producer_epoch=0, transactional=True)
        + marker(ControlType.ABORT, 7, 25)
        + data_batch(26, 2, producer_id=7, producer_epoch=0, transactional=True)
        + marker(ControlType.COMMIT, 7, 28)
    )
    plan, _, _ = run_plan(records, position=25, aborted=[(7, 20)])
    assert [content(r) for r in out_records(plan)] == [content(rec(26)), content(rec(27))]


def test_batches_below_the_position_are_ignored() -> None:
    records = data_batch(0, 3) + data_batch(3, 3) + data_batch(6, 2)
    plan, _, cursor = run_plan(records, position=6, target_end=6)
    [batch] = plan.batches
    assert batch.data[HEADER_BYTES:] == data_batch(6, 2)[HEADER_BYTES:]
    assert plan.reencoded_batches == 0 and plan.skipped_offsets == 0
    assert (batch.source_first_offset, cursor.source_position) == (6, 8)


@pytest.mark.parametrize("cut", [1, 30, HEADER_BYTES, -1])
def test_a_truncated_trailing_batch_is_ignored(cut: int) -> None:
    tail = data_batch(3, 3)
    records = data_batch(0, 3) + tail[:cut]
    plan, next_sequence, cursor = run_plan(records)
    assert [content(r) for r in out_records(plan)] == [content(rec(o)) for o in range(3)]
    assert next_sequence == 3 and cursor.source_position == 3
    assert plan.new_runs == [R(0, 0)]


def test_a_corrupt_batch_ends_the_fetch() -> None:
    corrupt = bytearray(data_batch(3, 3))
    corrupt[-1] ^= 0xFF
    records = data_batch(0, 3) + bytes(corrupt) + data_batch(6, 1)
    plan, _, cursor = run_plan(records)
    assert len(plan.batches) == 1 and cursor.source_position == 3


def test_empty_batches_are_skipped() -> None:
    empty = build_batch([], base_offset=5, last_offset_delta=2, max_timestamp_ms=BASE_TS)
    assert read_header(empty).records_count == 0
    records = data_batch(0, 5) + empty + data_batch(8, 2)
    plan, next_sequence, cursor = run_plan(records)
    assert [content(r) for r in out_records(plan)] == [
        content(rec(o)) for o in (0, 1, 2, 3, 4, 8, 9)
    ]
    assert next_sequence == 7 and plan.skipped_offsets == 3
    assert plan.new_runs == [R(0, 0), R(8, 5)]
    assert cursor.source_position == 10


# -- property: the target is the read_committed view of the source ---------------------


@dataclass
class SourceLog:
    records: bytes
    aborted: list[tuple[int, int]]
    committed: list[Record]  # what a read_committed consumer reads, in offset order
    end_offset: int  # the next offset after the last whole batch
    position: int  # where the cursor starts
    target_end: int
    sequence: int


contents = st.tuples(
    st.none() | st.binary(max_size=6),
    st.none() | st.binary(max_size=10),
    st.lists(st.tuples(st.text(max_size=3), st.none() | st.binary(max_size=3)), max_size=2).map(
        tuple
    ),
    st.integers(BASE_TS - 10_000, BASE_TS + 10_000),
)


@st.composite
def source_logs(draw: st.DrawFn) -> SourceLog:
    offset = first = draw(st.integers(0, 3))
    parts: list[bytes] = []
    committed: list[Record] = []
    aborted: list[tuple[int, int]] = []
    open_txns: dict[int, tuple[bool, list[Record]]] = {}  # producer id -> (aborts, records)
    next_producer_id = 100  # one per transaction

    def end_txn(producer_id: int) -> None:
        nonlocal offset
        aborts, records = open_txns.pop(producer_id)
        kind = ControlType.ABORT if aborts else ControlType.COMMIT
        parts.append(marker(kind, producer_id, offset))
        offset += 1
        if not aborts:
            committed.extend(records)

    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["data", "data", "txn", "txn", "end", "empty"]))
        if kind == "end" and not open_txns:
            continue
        offset += draw(st.integers(0, 2))  # whole batches removed by compaction
        if kind == "end":
            end_txn(draw(st.sampled_from(sorted(open_txns))))
        elif kind == "empty":
            delta = draw(st.integers(0, 3))
            parts.append(build_batch([], base_offset=offset, last_offset_delta=delta))
            offset += delta + 1
        else:
            if draw(st.booleans()):
                deltas = list(range(draw(st.integers(1, 4))))
                last_delta = deltas[-1]
            else:  # compacted: holes inside the batch
                deltas = sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=4)))
                last_delta = draw(st.integers(deltas[-1], 7))
            records = [
                Record(offset + d, ts, key, value, headers)
                for d, (key, value, headers, ts) in zip(
                    deltas,
                    draw(st.lists(contents, min_size=len(deltas), max_size=len(deltas))),
                    strict=True,
                )
            ]
            producer_id = -1
            if kind == "txn":
                join_open = draw(st.booleans())
                if open_txns and join_open:
                    producer_id = draw(st.sampled_from(sorted(open_txns)))
                else:
                    producer_id, next_producer_id = next_producer_id, next_producer_id + 1
                    aborts = draw(st.booleans())
                    open_txns[producer_id] = (aborts, [])
                    if aborts:
                        aborted.append((producer_id, offset))
                open_txns[producer_id][1].extend(records)
            else:
                committed.extend(records)
            parts.append(
                build_batch(
                    records,
                    base_offset=offset,
                    last_offset_delta=last_delta,
                    compression=draw(st.sampled_from(CODECS)),
                    producer_id=producer_id,
                    producer_epoch=0 if producer_id >= 0 else -1,
                    transactional=kind == "txn",
                )
            )
            offset += last_delta + 1
    for producer_id in sorted(open_txns):  # a fetch ends at the last stable offset
        end_txn(producer_id)
    if draw(st.booleans()):  # the fetch ran out mid-batch
        tail = build_batch([rec(offset)], base_offset=offset)
        parts.append(tail[: draw(st.integers(1, len(tail) - 1))])
    position = draw(st.integers(first, offset))
    committed.sort(key=lambda r: r.offset)
    return SourceLog(
        records=b"".join(parts),
        aborted=draw(st.permutations(aborted)),
        committed=[r for r in committed if r.offset >= position],
        end_offset=offset,
        position=position,
        target_end=draw(st.integers(0, 5)),
        sequence=draw(st.sampled_from([0, 7, MAX_SEQUENCE - 2])),
    )


@settings(max_examples=80, deadline=None)
@given(source_logs())
def test_target_holds_exactly_the_committed_records_and_the_map_translates_them(
    log: SourceLog,
) -> None:
    plan, next_sequence, cursor = run_plan(
        log.records,
        position=log.position,
        target_end=log.target_end,
        aborted=log.aborted,
        sequence=log.sequence,
    )
    # (a) the records, in order
    assert [content(r) for r in out_records(plan)] == [content(r) for r in log.committed]
    # (c) each batch is what the target accepts; sequences run on across batches
    sequence = log.sequence
    for batch in plan.batches:
        assert_target_ready(batch, base_sequence=sequence)
        sequence = (sequence + batch.record_count) & MAX_SEQUENCE
    assert next_sequence == sequence
    assert plan.record_count == len(log.committed)
    assert cursor.target_end == log.target_end + len(log.committed)
    assert cursor.source_position == log.end_offset
    runs = list(cursor.offset_map.runs)
    assert runs[len(runs) - len(plan.new_runs) :] == plan.new_runs
    # (b) every copied record translates to where it landed ...
    for index, record in enumerate(log.committed):
        assert translate(cursor, record.offset) == log.target_end + index
    # ... and every committed offset to the first record the consumer has not read yet
    for offset in range(log.position, log.end_offset + 1):
        unread = sum(1 for r in log.committed if r.offset < offset)
        assert translate(cursor, offset) == log.target_end + unread, offset
