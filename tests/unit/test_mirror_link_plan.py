"""plan_link_append: batches at their source offsets, markers and aborts as empty batches."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.batch import TRANSACTIONAL_BIT, crc_is_valid, iter_headers, read_header
from broker.protocol.records import (
    LZ4,
    NO_COMPRESSION,
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    decode_batch_records,
)
from mirror.copy.link_plan import LinkPlan, plan_link_append

BASE_TS = 1_700_000_000_000
PID, EPOCH = 1000, 2


def rec(offset: int) -> Record:
    return Record(offset, BASE_TS + offset, f"k{offset}".encode(), f"v{offset}".encode() * 5)


def data(first: int, count: int, *, codec: int = NO_COMPRESSION, txn: bool = False) -> bytes:
    return build_batch(
        [rec(o) for o in range(first, first + count)],
        compression=codec,
        producer_id=PID,
        producer_epoch=EPOCH,
        base_sequence=first,
        transactional=txn,
    )


def marker(offset: int, kind: ControlType = ControlType.COMMIT) -> bytes:
    return build_control_batch(
        kind, producer_id=PID, producer_epoch=EPOCH, timestamp_ms=BASE_TS, base_offset=offset
    )


def appended(plan: LinkPlan) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every record the plan appends."""
    out = []
    for batch in plan.batches:
        header = read_header(batch.data)
        out += [(r.offset, r.value) for r in decode_batch_records(batch.data, header)]
    return out


def test_data_batches_keep_their_offsets_and_lose_the_producer_identity() -> None:
    records = data(0, 3) + data(3, 2, codec=LZ4)
    plan = plan_link_append(records, [], 0)
    assert [(b.base_offset, b.next_offset, b.record_count) for b in plan.batches] == [
        (0, 3, 3),
        (3, 5, 2),
    ]
    assert plan.next_offset == 5 and plan.record_count == 5
    for batch in plan.batches:
        header = read_header(batch.data)
        assert crc_is_valid(batch.data, header)
        assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)
        assert header.partition_leader_epoch == -1
    source = list(iter_headers(records))
    assert [bytes(b.data)[61:] for b in plan.batches] == [
        records[h.position + 61 : h.position + h.size_bytes] for h in source
    ]  # the records themselves are the source's bytes, compressed or not


def test_a_commit_marker_becomes_an_empty_batch_over_its_offset() -> None:
    records = data(0, 2, txn=True) + marker(2) + data(3, 1)
    plan = plan_link_append(records, [], 0)
    assert [(b.base_offset, b.next_offset, b.record_count) for b in plan.batches] == [
        (0, 2, 2),
        (2, 3, 0),
        (3, 4, 1),
    ]
    assert not read_header(plan.batches[0].data).attributes & TRANSACTIONAL_BIT
    empty = read_header(plan.batches[1].data)
    assert (
        empty.records_count == 0
        and not empty.is_control
        and crc_is_valid(plan.batches[1].data, empty)
    )
    assert plan.empty_batches == 1 and plan.next_offset == 4


def test_aborted_data_and_its_marker_become_one_empty_batch() -> None:
    records = data(0, 2) + data(2, 3, txn=True) + marker(5, ControlType.ABORT) + data(6, 1)
    plan = plan_link_append(records, [(PID, 2)], 0)
    assert [(b.base_offset, b.next_offset, b.record_count) for b in plan.batches] == [
        (0, 2, 2),
        (2, 6, 0),
        (6, 7, 1),
    ]
    assert [o for o, _ in appended(plan)] == [0, 1, 6]


def test_gaps_in_the_source_stay_gaps() -> None:
    records = data(10, 2) + data(20, 1)  # retention before 10, compaction of 12-19
    plan = plan_link_append(records, [], 0)
    assert [(b.base_offset, b.next_offset) for b in plan.batches] == [(10, 12), (20, 21)]
    assert plan.next_offset == 21


def test_batches_the_target_already_has_are_skipped() -> None:
    plan = plan_link_append(data(0, 3) + data(3, 3), [], 3)
    assert [(b.base_offset, b.next_offset) for b in plan.batches] == [(3, 6)]


def test_a_batch_entered_midway_is_reencoded_from_the_first_missing_record() -> None:
    records = build_batch([rec(0), rec(2), rec(5)], last_offset_delta=6)  # compacted
    plan = plan_link_append(records, [], 2)
    assert plan.reencoded_batches == 1
    assert appended(plan) == [(2, b"v2" * 5), (5, b"v5" * 5)]
    assert (plan.batches[0].base_offset, plan.batches[0].next_offset) == (2, 7)


def test_nothing_fetched_plans_nothing() -> None:
    plan = plan_link_append(b"", [], 7)
    assert plan.batches == [] and plan.next_offset == 7


@dataclass(frozen=True)
class Piece:
    kind: str  # data | txn-commit | txn-abort | gap
    count: int


PIECES = st.lists(
    st.builds(
        Piece,
        st.sampled_from(["data", "txn-commit", "txn-abort", "gap"]),
        st.integers(1, 4),
    ),
    max_size=12,
)


def _source_log(
    pieces: list[Piece],
) -> tuple[bytes, list[tuple[int, int, int]], set[int], int]:
    """Batch bytes, aborted (pid, first offset, marker offset), committed offsets, log end."""
    out, aborted, committed, offset = bytearray(), [], set(), 0
    for piece in pieces:
        if piece.kind == "gap":
            offset += piece.count
            continue
        txn = piece.kind != "data"
        out += data(offset, piece.count, txn=txn)
        if piece.kind == "txn-abort":
            aborted.append((PID, offset, offset + piece.count))
        else:
            committed.update(range(offset, offset + piece.count))
        offset += piece.count
        if txn:
            kind = ControlType.ABORT if piece.kind == "txn-abort" else ControlType.COMMIT
            out += marker(offset, kind)
            offset += 1
    return bytes(out), aborted, committed, offset


@settings(max_examples=150, deadline=None)
@given(PIECES, st.data())
def test_any_chunking_appends_exactly_the_committed_records_at_their_offsets(
    pieces: list[Piece], draw: st.DataObject
) -> None:
    records, aborted, committed, end = _source_log(pieces)
    headers = list(iter_headers(records))
    # Plan in chunks as fetches would deliver them: each chunk starts at a batch boundary.
    cuts = sorted(set(draw.draw(st.lists(st.integers(0, len(headers)), max_size=4))))
    bounds = [0, *cuts, len(headers)]
    position, out = 0, []
    for lo, hi in pairwise(bounds):
        if lo >= hi:
            continue
        start, stop = headers[lo].position, headers[hi - 1].position + headers[hi - 1].size_bytes
        # A Fetch response lists the aborted transactions that end at or after its offset.
        listed = [(pid, first) for pid, first, last in aborted if last >= headers[lo].base_offset]
        plan = plan_link_append(records[start:stop], listed, position)
        assert all(b.base_offset >= position for b in plan.batches)
        out += plan.batches
        position = plan.next_offset
    last_end = headers[-1].next_offset if headers else 0
    assert position == last_end  # the target's log ends where the source's last batch does
    got = {o for b in out for o in _offsets(b.data)}
    assert got == committed
    assert end >= last_end


def _offsets(batch: bytes | bytearray) -> list[int]:
    header = read_header(batch)
    return [r.offset for r in decode_batch_records(batch, header)]
