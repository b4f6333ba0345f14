"""PartitionOffsetMap and MirrorCursor: each rule, then a crash-and-resume model test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.offsets import (
    MirrorCursor,
    OffsetMapError,
    OffsetSync,
    PartitionOffsetMap,
    RunStart,
    apply_sync_records,
    run_to_sync,
)


def R(source_offset: int, target_offset: int) -> RunStart:
    return RunStart(source_offset, target_offset)


def assert_invariants(runs: Sequence[RunStart]) -> None:
    for prev, run in pairwise(runs):
        assert run.source_offset > prev.source_offset
        assert run.target_offset > prev.target_offset
        gap_target = run.target_offset - prev.target_offset
        assert gap_target <= run.source_offset - prev.source_offset


# -- RunStart and add (supersede) ------------------------------------------------------


def test_run_start_orders_by_source_then_target_and_rejects_negative_offsets() -> None:
    assert R(1, 5) < R(2, 0) < R(2, 1)
    with pytest.raises(OffsetMapError):
        R(-1, 0)
    with pytest.raises(OffsetMapError):
        R(0, -1)


def test_add_is_idempotent_for_an_identical_run() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5)])
    offset_map.add(R(10, 5))
    offset_map.add(R(10, 5))
    assert list(offset_map.runs) == [R(0, 0), R(10, 5)]


def test_later_run_at_same_target_offset_replaces_earlier_one() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5)])
    offset_map.add(R(12, 5))
    assert list(offset_map.runs) == [R(0, 0), R(12, 5)]


def test_add_drops_every_run_at_or_after_the_new_one_in_either_offset() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5), R(20, 8), R(30, 9)])
    offset_map.add(R(7, 3))  # below both (10, 5) and everything after it
    assert list(offset_map.runs) == [R(0, 0), R(7, 3)]
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5), R(20, 8)])
    offset_map.add(R(20, 7))  # same source offset, lower target offset
    assert list(offset_map.runs) == [R(0, 0), R(10, 5), R(20, 7)]
    offset_map.add(R(0, 0))  # rewriting the first run drops all the others
    assert list(offset_map.runs) == [R(0, 0)]


def test_add_rejects_a_run_that_maps_more_target_than_source_offsets() -> None:
    offset_map = PartitionOffsetMap([R(0, 0)])
    with pytest.raises(OffsetMapError, match="maps more target than source"):
        offset_map.add(R(2, 5))
    assert list(offset_map.runs) == [R(0, 0)]
    offset_map.add(R(5, 5))  # a run with no gap before it is allowed (if redundant)
    assert list(offset_map.runs) == [R(0, 0), R(5, 5)]


def test_runs_is_a_read_only_view() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(4, 2)])
    runs = offset_map.runs
    assert not hasattr(runs, "append")
    with pytest.raises(TypeError):
        runs[0] = R(1, 1)  # type: ignore[index]
    assert runs[-1] == R(4, 2)
    assert list(runs[:1]) == [R(0, 0)]
    offset_map.add(R(9, 3))
    assert len(runs) == 3  # a live view, not a copy


# -- visible runs, stale runs, resume position ---------------------------------------


def test_visible_keeps_runs_up_to_and_including_target_end() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5), R(20, 8)])
    assert offset_map.visible(4) == [R(0, 0)]
    assert offset_map.visible(5) == [R(0, 0), R(10, 5)]
    assert offset_map.visible(100) == [R(0, 0), R(10, 5), R(20, 8)]
    assert offset_map.has_stale_runs(7)
    assert not offset_map.has_stale_runs(8)
    offset_map.drop_stale(6)
    assert list(offset_map.runs) == [R(0, 0), R(10, 5)]


def test_resume_position_follows_what_landed() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5), R(20, 8)])
    assert PartitionOffsetMap().resume_position(0) is None
    assert PartitionOffsetMap([R(3, 2)]).resume_position(1) is None  # run did not land
    assert offset_map.resume_position(3) == 3
    assert offset_map.resume_position(5) == 10  # (10, 5) is visible: 5..9 are a gap
    assert offset_map.resume_position(7) == 12
    assert offset_map.resume_position(12) == 24
    assert offset_map.source_end(12) == offset_map.resume_position(12)


# -- translate ------------------------------------------------------------------------
# Runs (10, 0) (20, 5) (30, 8) with target_end 12: source 10..14 -> 0..4, gap 15..19,
# 20..22 -> 5..7, gap 23..29, 30..33 -> 8..11; everything below 34 is processed.
EXAMPLE = [R(10, 0), R(20, 5), R(30, 8)]


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        (0, 0),  # below the first run: its first target offset
        (9, 0),
        (10, 0),
        (12, 2),  # inside a run
        (14, 4),
        (15, 5),  # in a gap: the next run's start
        (19, 5),
        (20, 5),
        (23, 8),
        (29, 8),
        (33, 11),
        (34, 12),  # everything processed: the end of the target
        (35, None),  # not mirrored yet
    ],
)
def test_translate(committed: int, expected: int | None) -> None:
    assert PartitionOffsetMap(EXAMPLE).translate(committed, 12) == expected


def test_translate_uses_visible_runs_only() -> None:
    offset_map = PartitionOffsetMap(EXAMPLE)
    assert offset_map.translate(22, 7) == 7  # the last visible run ends at target_end
    assert offset_map.translate(23, 7) is None  # (30, 8) did not land: 23+ unknown
    assert offset_map.translate(25, 8) == 8  # (30, 8) visible: 23..29 are a gap
    assert offset_map.translate(30, 8) == 8
    assert offset_map.translate(31, 8) is None
    assert PartitionOffsetMap().translate(0, 0) is None
    assert PartitionOffsetMap([R(5, 3)]).translate(0, 2) is None


# -- apply_sync_records ----------------------------------------------------------------


def test_apply_sync_records_feeds_per_partition_maps_in_order() -> None:
    existing = PartitionOffsetMap([R(0, 0)])
    maps = {("a", 0): existing}
    syncs = [
        OffsetSync("a", 0, 10, 5),
        OffsetSync("b", 1, 3, 0),
        OffsetSync("a", 0, 20, 9),
        OffsetSync("a", 0, 12, 5),  # supersedes (10, 5) and (20, 9)
    ]
    apply_sync_records(maps, syncs)
    assert maps[("a", 0)] is existing
    assert list(existing.runs) == [R(0, 0), R(12, 5)]
    assert list(maps[("b", 1)].runs) == [R(3, 0)]


def test_apply_sync_records_names_the_partition_of_an_impossible_record() -> None:
    maps: dict[tuple[str, int], PartitionOffsetMap] = {}
    with pytest.raises(OffsetMapError, match=r"a\[0\]: .*maps more target"):
        apply_sync_records(maps, [OffsetSync("a", 0, 0, 0), OffsetSync("a", 0, 1, 5)])
    with pytest.raises(OffsetMapError, match=r"b\[1\]: negative offset"):
        apply_sync_records(maps, [OffsetSync("b", 1, -1, 0)])


def test_run_to_sync_is_keyed_by_source_partition() -> None:
    sync = run_to_sync("orders", 2, R(40, 7))
    assert sync == OffsetSync("orders", 2, upstream_offset=40, downstream_offset=7)
    assert OffsetSync.decode(*sync.encode()) == sync


# -- MirrorCursor -----------------------------------------------------------------------


def test_cursor_creates_runs_only_at_discontinuities() -> None:
    offset_map = PartitionOffsetMap()
    cursor = MirrorCursor(offset_map, source_position=0, target_end=0)
    assert cursor.place_dense(0, 3) == R(0, 0)
    assert cursor.place_dense(3, 2) is None  # continues the run
    cursor.skip_to(7)  # a control batch at 5..6
    cursor.skip_to(6)  # never moves backwards
    assert cursor.source_position == 7
    assert cursor.place_dense(7, 1) == R(7, 5)
    assert cursor.place(10) == R(10, 6)  # compacted: 8, 9 gone
    assert cursor.place(11) is None
    assert (cursor.source_position, cursor.target_end) == (12, 8)
    assert list(offset_map.runs) == [R(0, 0), R(7, 5), R(10, 6)]


def test_close_gap_makes_a_trailing_gap_translatable() -> None:
    offset_map = PartitionOffsetMap()
    cursor = MirrorCursor(offset_map, 0, 0)
    cursor.place_dense(0, 4)
    assert cursor.close_gap() is None  # no gap
    cursor.skip_to(5)  # commit marker at 4
    assert offset_map.translate(5, 4) is None
    assert cursor.close_gap() == R(5, 4)
    assert cursor.close_gap() is None
    assert offset_map.translate(5, 4) == 4
    assert cursor.place_dense(5, 1) is None  # the next record continues the new run


def test_close_gap_on_an_empty_map_starts_a_run() -> None:
    cursor = MirrorCursor(PartitionOffsetMap(), source_position=3, target_end=0)
    assert cursor.close_gap() == R(3, 0)


def test_a_run_without_records_is_replaced_by_the_next_one() -> None:
    offset_map = PartitionOffsetMap()
    cursor = MirrorCursor(offset_map, 0, 0)
    cursor.place_dense(0, 2)
    cursor.skip_to(3)
    assert cursor.close_gap() == R(3, 2)
    assert cursor.place_dense(5, 1) == R(5, 2)  # 3, 4 compacted away meanwhile
    assert list(offset_map.runs) == [R(0, 0), R(5, 2)]


def test_cursor_resumes_a_run_that_extends_to_its_position() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5)])
    assert MirrorCursor(offset_map, 12, 7).place_dense(12, 1) is None
    assert MirrorCursor(offset_map, 13, 7).place_dense(13, 1) == R(13, 7)


def test_cursor_rewrites_the_last_visible_run_once_when_stale_runs_exist() -> None:
    # Write-ahead runs (10, 5) and (20, 8) were persisted; only 0..2 landed.
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5), R(20, 8)])
    cursor = MirrorCursor(offset_map, source_position=3, target_end=3)
    assert list(offset_map.runs) == [R(0, 0)]
    assert cursor.place_dense(3, 1) == R(0, 0)  # continuation, but readers must drop stale
    assert cursor.place_dense(4, 1) is None
    persisted = PartitionOffsetMap([R(0, 0), R(10, 5), R(20, 8), R(0, 0)])
    assert list(persisted.runs) == list(offset_map.runs)


def test_cursor_new_run_supersedes_stale_runs_itself() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5)])
    cursor = MirrorCursor(offset_map, source_position=6, target_end=3)
    assert cursor.place(8) == R(8, 3)
    assert cursor.close_gap() is None
    assert list(offset_map.runs) == [R(0, 0), R(8, 3)]


def test_cursor_close_gap_emits_pending_rewrite() -> None:
    offset_map = PartitionOffsetMap([R(0, 0), R(10, 5)])
    assert MirrorCursor(offset_map, 3, 3).close_gap() == R(0, 0)


def test_cursor_rejects_going_backwards() -> None:
    cursor = MirrorCursor(PartitionOffsetMap(), 0, 0)
    cursor.place_dense(0, 5)
    with pytest.raises(AssertionError):
        cursor.place_dense(4, 1)
    with pytest.raises(AssertionError):
        cursor.place_dense(5, 0)
    with pytest.raises(AssertionError):  # would re-copy 3..4
        MirrorCursor(PartitionOffsetMap([R(0, 0)]), source_position=3, target_end=5)


# -- model: copy a random log, crash, resume, compare with brute force ----------------


@dataclass(frozen=True)
class Step:
    """One fetched batch (or an idle moment) of the source log, as the copier sees it."""

    kind: str  # "dense" | "sparse" (compacted) | "skip" (markers, aborted, retention) | "idle"
    records: list[int]  # source offsets of records to mirror
    end: int  # the next offset after the batch


@st.composite
def source_logs(draw: st.DrawFn) -> tuple[list[Step], int]:
    offset = draw(st.integers(0, 3))
    steps = [Step("skip", [], offset)] if offset else []  # lost to retention before mirroring
    kinds = st.sampled_from(["dense", "dense", "sparse", "skip", "idle"])
    for _ in range(draw(st.integers(0, 20))):
        kind = draw(kinds)
        if kind == "idle":
            steps.append(Step(kind, [], offset))
            continue
        offset += draw(st.sampled_from([0, 0, 0, 1, 3]))  # whole batches compacted away
        size = draw(st.integers(1, 5))
        records: list[int] = []
        if kind == "dense":
            records = list(range(offset, offset + size))
        elif kind == "sparse":
            keep = draw(st.lists(st.booleans(), min_size=size, max_size=size))
            records = [offset + i for i, kept in enumerate(keep) if kept]
        offset += size
        steps.append(Step(kind, records, offset))
    return steps, offset


def collect(*runs: RunStart | None) -> list[RunStart]:
    return [run for run in runs if run is not None]


def plan_step(cursor: MirrorCursor, step: Step) -> tuple[list[RunStart], list[int]]:
    """The runs to persist before producing this step's batch, and the batch's records."""
    if step.kind == "idle":
        return collect(cursor.close_gap()), []
    if step.kind == "skip":
        cursor.skip_to(step.end)
        return [], []
    records = [offset for offset in step.records if offset >= cursor.source_position]
    runs: list[RunStart] = []
    if records and step.kind == "dense" and records == list(range(records[0], records[-1] + 1)):
        runs = collect(cursor.place_dense(records[0], len(records)))
    else:
        runs = collect(*(cursor.place(offset) for offset in records))
    cursor.skip_to(step.end)
    return runs, records


def copy_phase(
    steps: list[Step], persisted: list[RunStart], target: list[int], stop: int, unlanded: int
) -> PartitionOffsetMap:
    """Restart from the persisted runs and the target, copy ``steps[:stop]``; the last
    ``unlanded`` batches are produced but lost in a crash (their runs were persisted)."""
    offset_map = PartitionOffsetMap(persisted)
    resume = offset_map.resume_position(len(target))
    cursor = MirrorCursor(offset_map, 0 if resume is None else resume, len(target))
    batches = []
    for step in steps[:stop]:
        runs, records = plan_step(cursor, step)
        persisted.extend(runs)  # write-ahead: before the batch is produced
        batches.append(records)
    if stop == len(steps) and not unlanded:
        persisted.extend(collect(cursor.close_gap()))
    for records in batches[: len(batches) - unlanded]:
        target.extend(records)
    return offset_map


def brute_translate(target: list[int], committed: int, processed: int | None) -> int | None:
    if processed is None or committed > processed:
        return None
    return next((i for i, source in enumerate(target) if source >= committed), len(target))


def check_map(offset_map: PartitionOffsetMap, target: list[int], log_end: int) -> None:
    assert_invariants(offset_map.runs)
    processed = offset_map.source_end(len(target))
    for committed in range(log_end + 2):
        expected = brute_translate(target, committed, processed)
        assert offset_map.translate(committed, len(target)) == expected, committed


def mirrored(steps: list[Step]) -> list[int]:
    return [offset for step in steps for offset in step.records]


@settings(max_examples=300, deadline=None)
@given(log=source_logs(), data=st.data())
def test_model_crash_resume_and_translate(log: tuple[list[Step], int], data: st.DataObject) -> None:
    steps, log_end = log
    persisted: list[RunStart] = []
    target: list[int] = []
    for _ in range(data.draw(st.integers(0, 3), label="crashes")):
        stop = data.draw(st.integers(0, len(steps)), label="crash after step")
        unlanded = data.draw(st.integers(0, 2), label="batches lost")
        copy_phase(steps, persisted, target, stop, unlanded)
        recovered = PartitionOffsetMap(persisted)
        resume = recovered.resume_position(len(target)) or 0
        # Everything below the resume position landed exactly once; nothing above it did.
        assert target == [offset for offset in mirrored(steps) if offset < resume]
        check_map(recovered, target, log_end)
        # While down, compaction or retention may remove records not mirrored yet.
        removed = data.draw(st.sets(st.integers(0, log_end)), label="removed")
        steps = [
            replace(step, records=[r for r in step.records if r < resume or r not in removed])
            for step in steps
        ]
    live = copy_phase(steps, persisted, target, len(steps), 0)
    recovered = PartitionOffsetMap(persisted)
    assert list(recovered.runs) == list(live.runs)
    assert not recovered.has_stale_runs(len(target))
    assert target == mirrored(steps)  # (a) every mirrored record exactly once, in order
    assert recovered.source_end(len(target)) == (log_end if steps else 0)
    check_map(recovered, target, log_end)  # (b) translate agrees with brute force
