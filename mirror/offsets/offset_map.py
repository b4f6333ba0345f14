"""The exact source-to-target offset map of one mirrored partition.

The mirror copies a source partition, in order, into a target partition that only it
writes. Source offsets have gaps (compaction, transaction markers, aborted data, records
lost to retention before they were mirrored); target offsets are dense. So the map is a
list of run starts ``(U_k, D_k)``: run k maps source ``[U_k, U_k + len_k)`` 1:1 onto
target ``[D_k, D_k + len_k)``, where ``len_k = D_{k+1} - D_k``, or ``target_end - D_k``
for the last run. Source offsets between the end of run k and ``U_{k+1}`` are a gap.

Run starts are persisted write-ahead (before the batch that starts the run), so after a
crash the persisted list may end with runs whose data never landed. Readers therefore
only trust runs with ``D_k <= target_end`` ("visible"); a run with ``D_k == target_end``
still says "the next source record at or after ``U_k`` lands at ``D_k``".
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import overload

from mirror.offsets.mm2_formats import OffsetSync

__all__ = [
    "MirrorCursor",
    "OffsetMapError",
    "PartitionOffsetMap",
    "RunStart",
    "apply_sync_records",
    "run_to_sync",
]

_source = attrgetter("source_offset")
_target = attrgetter("target_offset")


class OffsetMapError(ValueError):
    """A run start that would break the map's invariants (e.g. a corrupt sync record)."""


@dataclass(frozen=True, slots=True, order=True)
class RunStart:
    """Source offset ``source_offset`` (or the next record after it) lands at ``target_offset``."""

    source_offset: int
    target_offset: int

    def __post_init__(self) -> None:
        if self.source_offset < 0 or self.target_offset < 0:
            raise OffsetMapError(f"negative offset in {self}")


class _RunsView(Sequence[RunStart]):
    """Read-only window on the map's list, so callers cannot bypass ``add``."""

    __slots__ = ("_runs",)

    def __init__(self, runs: list[RunStart]) -> None:
        self._runs = runs

    @overload
    def __getitem__(self, index: int) -> RunStart: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[RunStart]: ...
    def __getitem__(self, index: int | slice) -> RunStart | Sequence[RunStart]:
        return self._runs[index]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[RunStart]:
        return iter(self._runs)

    def __repr__(self) -> str:
        return f"_RunsView({self._runs!r})"


class PartitionOffsetMap:
    """Run starts of one partition, in the order they were persisted."""

    def __init__(self, runs: Iterable[RunStart] = ()) -> None:
        self._runs: list[RunStart] = []
        for run in runs:
            self.add(run)

    @property
    def runs(self) -> Sequence[RunStart]:
        return _RunsView(self._runs)

    def add(self, run: RunStart) -> None:
        """Append ``run``, first dropping every run it supersedes.

        A run supersedes those at or after it in either offset: after a crash the worker
        re-plans from what landed, and its new runs replace the stale write-ahead ones.
        Re-adding an identical run is therefore idempotent.
        """
        runs = self._runs
        keep = min(
            bisect_left(runs, run.target_offset, key=_target),
            bisect_left(runs, run.source_offset, key=_source),
        )
        del runs[keep:]
        if runs:
            prev = runs[-1]
            if run.target_offset - prev.target_offset > run.source_offset - prev.source_offset:
                raise OffsetMapError(f"{run} after {prev} maps more target than source offsets")
        runs.append(run)

    def _visible_count(self, target_end: int) -> int:
        assert target_end >= 0, target_end
        return bisect_right(self._runs, target_end, key=_target)

    def visible(self, target_end: int) -> list[RunStart]:
        """Runs whose data may have landed: ``target_offset <= target_end``."""
        return self._runs[: self._visible_count(target_end)]

    def last_visible(self, target_end: int) -> RunStart | None:
        count = self._visible_count(target_end)
        return self._runs[count - 1] if count else None

    def has_stale_runs(self, target_end: int) -> bool:
        """Whether write-ahead runs beyond ``target_end`` exist (their data never landed)."""
        return self._visible_count(target_end) < len(self._runs)

    def drop_stale(self, target_end: int) -> None:
        del self._runs[self._visible_count(target_end) :]

    def source_end(self, target_end: int) -> int | None:
        """Source offset below which everything is mirrored or a known gap; None if no runs."""
        last = self.last_visible(target_end)
        if last is None:
            return None
        return last.source_offset + (target_end - last.target_offset)

    resume_position = source_end  # the next source offset to copy

    def translate(self, committed_source_offset: int, target_end: int) -> int | None:
        """Target offset where a consumer that committed ``committed_source_offset`` resumes.

        It re-reads nothing and misses nothing. None if that source offset is not
        mirrored yet (or nothing is).
        """
        committed = committed_source_offset
        count = self._visible_count(target_end)
        end = self.source_end(target_end)
        if end is None or committed > end:
            return None
        runs = self._runs
        if committed < runs[0].source_offset:
            return runs[0].target_offset
        k = bisect_right(runs, committed, hi=count, key=_source) - 1
        run = runs[k]
        next_target = runs[k + 1].target_offset if k + 1 < count else target_end
        into_run = committed - run.source_offset
        if into_run < next_target - run.target_offset:
            return run.target_offset + into_run
        return next_target


class MirrorCursor:
    """Plans where source records land and returns the run starts to persist first.

    Each placing call returns at most one ``RunStart``; the caller must persist it before
    producing the records. The run is also added to ``offset_map``. If the map held stale
    runs (beyond ``target_end``) they are dropped here, and the first placing call returns
    a run even when continuing the last run (then a re-write of it), so that readers of
    the persisted list drop the stale runs too before the target grows past them.
    """

    def __init__(
        self, offset_map: PartitionOffsetMap, source_position: int, target_end: int
    ) -> None:
        assert source_position >= 0 and target_end >= 0, (source_position, target_end)
        resume = offset_map.resume_position(target_end)
        assert resume is None or source_position >= resume, (source_position, resume)
        self._rewrite: RunStart | None = None
        if offset_map.has_stale_runs(target_end):
            self._rewrite = offset_map.last_visible(target_end)
            offset_map.drop_stale(target_end)
        self._map = offset_map
        self._source_position = source_position
        self._target_end = target_end

    @property
    def source_position(self) -> int:
        """Next source offset not yet placed or skipped."""
        return self._source_position

    @property
    def target_end(self) -> int:
        """Target offset the next placed record lands at."""
        return self._target_end

    def skip_to(self, source_offset: int) -> None:
        """Source offsets before ``source_offset`` are a gap (markers, aborted, retention)."""
        self._source_position = max(self._source_position, source_offset)

    def _run_for(self, source_offset: int) -> RunStart | None:
        runs = self._map.runs
        last = runs[-1] if runs else None
        run = self._rewrite
        self._rewrite = None
        if (
            last is None
            or source_offset - last.source_offset != self._target_end - last.target_offset
        ):
            run = RunStart(source_offset, self._target_end)
            self._map.add(run)
        return run

    def place_dense(self, base_source_offset: int, count: int) -> RunStart | None:
        """``count`` consecutive source records from ``base_source_offset`` land at the end."""
        assert count > 0, count
        assert base_source_offset >= self._source_position, (
            base_source_offset,
            self._source_position,
        )
        run = self._run_for(base_source_offset)
        self._source_position = base_source_offset + count
        self._target_end += count
        return run

    def place(self, source_offset: int) -> RunStart | None:
        """One record (a compacted batch is re-encoded densely, record by record)."""
        return self.place_dense(source_offset, 1)

    def close_gap(self) -> RunStart | None:
        """Make a trailing gap (e.g. a final commit marker) translatable."""
        return self._run_for(self._source_position)


def run_to_sync(topic: str, partition: int, run: RunStart) -> OffsetSync:
    """The persisted form of ``run``, keyed by the SOURCE topic and partition."""
    return OffsetSync(topic, partition, run.source_offset, run.target_offset)


def apply_sync_records(
    maps: dict[tuple[str, int], PartitionOffsetMap], syncs: Iterable[OffsetSync]
) -> None:
    """Replay persisted run starts, in the order written, into per-partition maps.

    Raises OffsetMapError (naming the partition) for a record no mirror could have written.
    """
    for sync in syncs:
        key = (sync.topic, sync.partition)
        offset_map = maps.get(key)
        if offset_map is None:
            offset_map = maps[key] = PartitionOffsetMap()
        try:
            offset_map.add(RunStart(sync.upstream_offset, sync.downstream_offset))
        except OffsetMapError as exc:
            raise OffsetMapError(f"{sync.topic}[{sync.partition}]: {exc}") from None
