"""The failover journal: `failover.db` in the state directory (sqlite via sqlite-utils).

Every step is journaled before it runs and after it ends, so an orchestrator killed at any
point is resumed by rerunning it: `replay` feeds the operation's entries to the pure state
machine (`progress.Orchestration`), which says what comes next. Writes go through the same
machine, so the journal never holds an order of events the planner would not produce. The
topology's current state is not stored but folded from every operation's steps onto the
[failover] section's epoch-0 state, so it cannot disagree with the steps.

One orchestrator at a time: `acquire` takes a lock row naming its pid and operation; a second
orchestrator is refused while that pid lives, and takes the lock over once it is dead (that is
how a SIGKILLed orchestrator's rerun resumes). WAL mode lets `failover status` read while the
orchestrator writes, as with `state.db` (`mirror/runtime/state.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from mirror.failover.model import (
    OperationKind,
    OperationReport,
    Outcome,
    Step,
    StepEntry,
    StepKind,
    StepState,
    TopologyState,
)
from mirror.failover.planner import Plan
from mirror.failover.progress import Finished, Orchestration, replay
from mirror.failover.report import build_report
from mirror.runtime.state import pid_alive

DB_NAME = "failover.db"
_LOCK = "orchestrator"


class LockHeld(Exception):
    """Another live orchestrator holds the lock (or this one does not hold it)."""


class OperationPending(Exception):
    """An operation is unfinished (running or failed): resume it before starting another."""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    description: str  # e.g. "switchover --to eu-west"
    operation_id: int | None
    since_ms: int


@dataclass(frozen=True)
class OperationRecord:
    id: int
    kind: OperationKind
    from_region: str
    to_region: str
    epoch: int
    state: Outcome
    started_ms: int
    finished_ms: int | None
    plan: Plan

    def describe(self) -> str:
        return f"operation {self.id} ({self.kind.value} {self.from_region} -> {self.to_region})"


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    def __init__(
        self, state_dir: Path, clock_ms: Callable[[], int] = _wall_ms, pid: int | None = None
    ) -> None:
        self.state_dir = state_dir
        self.pid = pid if pid is not None else os.getpid()
        self._clock_ms = clock_ms
        self.db = sqlite_utils.Database(state_dir / DB_NAME)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._create_tables()

    def close(self) -> None:
        self.db.close()

    def _create_tables(self) -> None:
        self.db["operations"].create(  # type: ignore[union-attr]
            {
                "id": int,
                "kind": str,
                "from_region": str,
                "to_region": str,
                "epoch": int,
                "state": str,
                "started_ms": int,
                "finished_ms": int,
                "plan": str,
                "report": str,
            },
            pk="id",
            not_null={"kind", "state", "plan"},
            if_not_exists=True,
        )
        self.db["steps"].create(  # type: ignore[union-attr]
            {
                "operation_id": int,
                "index": int,
                "kind": str,
                "region": str,
                "peer": str,
                "epoch": int,
                "state": str,
                "attempts": int,
                "started_ms": int,
                "finished_ms": int,
                "detail": str,
            },
            pk=("operation_id", "index"),
            foreign_keys=[("operation_id", "operations", "id")],
            if_not_exists=True,
        )
        self.db["lock"].create(  # type: ignore[union-attr]
            {"name": str, "pid": int, "description": str, "operation_id": int, "since_ms": int},
            pk="name",
            if_not_exists=True,
        )

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One transaction that takes the write lock up front, so what it reads holds."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    # -- the orchestrator lock ----------------------------------------------------------

    def acquire(self, description: str) -> None:
        """Take the orchestrator lock; LockHeld names a live holder."""
        with self._write():
            holder = self.holder()
            if holder is not None and holder.pid != self.pid and pid_alive(holder.pid):
                raise LockHeld(_held_message(holder, self.state_dir))
            self.db.execute(
                "INSERT OR REPLACE INTO lock VALUES (?, ?, ?, ?, ?)",
                (_LOCK, self.pid, description, None, self._clock_ms()),
            )

    def release(self) -> None:
        self.db.execute("DELETE FROM lock WHERE name = ? AND pid = ?", (_LOCK, self.pid))

    @contextmanager
    def locked(self, description: str) -> Iterator[None]:
        self.acquire(description)
        try:
            yield
        finally:
            self.release()

    def holder(self) -> LockHolder | None:
        row = self.db.execute(
            "SELECT pid, description, operation_id, since_ms FROM lock WHERE name = ?", (_LOCK,)
        ).fetchone()
        return LockHolder(*row) if row is not None else None

    def _require_lock(self) -> None:
        holder = self.holder()
        if holder is None or holder.pid != self.pid:
            raise LockHeld(f"pid {self.pid} does not hold the failover lock; acquire it first")

    # -- writes (under the lock) --------------------------------------------------------

    def begin(self, plan: Plan) -> int:
        """Journal a new operation; OperationPending if another is unfinished."""
        with self._write():
            self._require_lock()
            if (pending := self.unfinished()) is not None:
                raise OperationPending(
                    f"{pending.describe()} is {pending.state.value}: resume it first"
                )
            cursor = self.db.execute(
                "INSERT INTO operations (kind, from_region, to_region, epoch, state, "
                "started_ms, plan) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    plan.operation.value,
                    plan.from_region,
                    plan.to_region,
                    plan.epoch,
                    Outcome.RUNNING.value,
                    self._clock_ms(),
                    json.dumps(plan.to_json()),
                ),
            )
            operation_id = cursor.lastrowid
            assert operation_id is not None
            self.db.execute(
                "UPDATE lock SET operation_id = ? WHERE name = ?", (operation_id, _LOCK)
            )
        return operation_id

    def step_started(self, operation_id: int, step: Step) -> None:
        self._record(operation_id, step, StepState.STARTED, {})

    def step_done(
        self, operation_id: int, step: Step, detail: Mapping[str, Any] | None = None
    ) -> None:
        self._record(operation_id, step, StepState.DONE, detail or {})

    def step_failed(
        self, operation_id: int, step: Step, error: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        self._record(operation_id, step, StepState.FAILED, {**(detail or {}), "error": error})

    def _record(
        self, operation_id: int, step: Step, state: StepState, detail: Mapping[str, Any]
    ) -> None:
        """Check the event against the state machine, then write it (one transaction)."""
        with self._write():
            self._require_lock()
            machine = self.replay(operation_id)
            previous = machine.entries.get(step.index)
            entry = _next_entry(previous, step.index, state, detail, self._clock_ms())
            machine.feed(entry)
            assert machine.steps()[step.index] == step, (step, machine.steps())
            self._upsert_step(operation_id, step, entry)
            if state is StepState.STARTED:  # a failed operation resumes by rerunning a step
                self.db.execute(
                    "UPDATE operations SET state = ?, finished_ms = NULL WHERE id = ?",
                    (Outcome.RUNNING.value, operation_id),
                )

    def _upsert_step(self, operation_id: int, step: Step, entry: StepEntry) -> None:
        self.db.execute(
            'INSERT OR REPLACE INTO steps (operation_id, "index", kind, region, peer, epoch, '
            "state, attempts, started_ms, finished_ms, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                operation_id,
                step.index,
                step.kind.value,
                step.region,
                step.peer,
                step.epoch,
                entry.state.value,
                entry.attempts,
                entry.started_ms,
                entry.finished_ms,
                json.dumps(dict(entry.detail)),
            ),
        )

    def finish(self, operation_id: int) -> OperationReport:
        """Journal the outcome the steps lead to (and the steps never run); the report."""
        with self._write():
            self._require_lock()
            machine = self.replay(operation_id)
            decision = machine.decision
            if not isinstance(decision, Finished):
                raise ValueError(f"operation {operation_id} is not finished: {decision}")
            now_ms = self._clock_ms()
            for step in decision.skipped:
                entry = StepEntry(step.index, StepState.SKIPPED)
                machine.feed(entry)
                self._upsert_step(operation_id, step, entry)
            report = build_report(machine)
            self.db.execute(
                "UPDATE operations SET state = ?, finished_ms = ?, report = ? WHERE id = ?",
                (decision.outcome.value, now_ms, json.dumps(report.to_json()), operation_id),
            )
        return report

    # -- reads --------------------------------------------------------------------------

    def operation(self, operation_id: int) -> OperationRecord:
        rows = self._operations("WHERE id = ?", (operation_id,))
        if not rows:
            raise KeyError(f"no failover operation {operation_id} in {self.state_dir}")
        return rows[0]

    def unfinished(self) -> OperationRecord | None:
        """The operation to resume: running (its orchestrator died) or failed (halted)."""
        rows = self._operations(
            "WHERE state IN (?, ?) ORDER BY id", (Outcome.RUNNING.value, Outcome.FAILED.value)
        )
        assert len(rows) <= 1, rows
        return rows[0] if rows else None

    def history(self, limit: int = 20) -> list[OperationRecord]:
        """Newest first."""
        return self._operations("ORDER BY id DESC LIMIT ?", (limit,))

    def operation_at_epoch(self, epoch: int) -> OperationRecord | None:
        """The operation that started steps at `epoch`. An epoch is taken for good once a
        step at it starts, so one operation at most did; an aborted one may have *planned*
        later epochs it never started, which the next operation then uses."""
        for record in self._operations("WHERE epoch >= ? ORDER BY id", (epoch,)):
            entries = self.entries(record.id)
            started = {e.index for e in entries if e.state is not StepState.SKIPPED}
            if any(s.epoch == epoch and s.index in started for s in record.plan.steps):
                return record
        return None

    def entries(self, operation_id: int) -> list[StepEntry]:
        rows = self.db.execute(
            'SELECT "index", state, attempts, started_ms, finished_ms, detail FROM steps '
            'WHERE operation_id = ? ORDER BY "index"',
            (operation_id,),
        ).fetchall()
        return [
            StepEntry(
                index, StepState(state), started_ms, finished_ms, json.loads(detail), attempts
            )
            for index, state, attempts, started_ms, finished_ms, detail in rows
        ]

    def replay(self, operation_id: int, base: TopologyState | None = None) -> Orchestration:
        return replay(self.operation(operation_id).plan, self.entries(operation_id), base)

    def report(self, operation_id: int) -> OperationReport:
        """For `failover show ID`: as far as the operation has got."""
        return build_report(self.replay(operation_id))

    def state(self, initial: TopologyState) -> TopologyState:
        """The topology now: every operation's steps folded onto the epoch-0 state."""
        state = initial
        for record in self._operations("ORDER BY id", ()):
            state = replay(record.plan, self.entries(record.id), base=state).state
        return state

    def promotion_ends(self, epoch: int, figure: str = "target_ends") -> dict[tuple[str, int], int]:
        """The new primary's log end per (topic, partition) when a forced failover promoted
        it at `epoch` (its measure_loss figures): where a failback's divergence starts;
        empty when a switchover promoted it (nothing diverged).
        `figure="source_resume"` (mapped flows): per old-primary partition, the first
        offset it had not mirrored: where a failback's recovered records start."""
        record = self.operation_at_epoch(epoch)
        if record is None:
            raise KeyError(f"no failover operation ran at epoch {epoch}")
        if not any(step.kind is StepKind.MEASURE_LOSS for step in record.plan.steps):
            # A planned promotion (a switchover, or a failback's own) drained first: the old
            # primary was fenced and level with the new one, so nothing diverged after it.
            return {}
        entries = {entry.index: entry for entry in self.entries(record.id)}
        for step in record.plan.steps:
            entry = entries.get(step.index)
            if step.kind is StepKind.MEASURE_LOSS and entry and entry.state is StepState.DONE:
                ends = entry.detail.get(figure, [])
                return {(end["topic"], end["partition"]): end["end_offset"] for end in ends}
        raise KeyError(f"{record.describe()} measured no log ends at epoch {epoch}")

    def _operations(self, where: str, params: tuple[Any, ...]) -> list[OperationRecord]:
        rows = self.db.execute(
            "SELECT id, kind, from_region, to_region, epoch, state, started_ms, finished_ms, "
            f"plan FROM operations {where}",
            params,
        ).fetchall()
        return [
            OperationRecord(
                id,
                OperationKind(kind),
                source,
                target,
                epoch,
                Outcome(state),
                started_ms,
                finished_ms,
                Plan.from_json(json.loads(plan)),
            )
            for id, kind, source, target, epoch, state, started_ms, finished_ms, plan in rows
        ]


def count_operations(state_dir: Path) -> Counter[tuple[OperationKind, Outcome]]:
    """Operations by kind and state, for the supervisor's metrics: read-only (a scrape must
    not create the journal) on a connection of its own, so any thread may call it."""
    path = state_dir / DB_NAME
    if not path.exists():
        return Counter()
    query = "SELECT kind, state, count(*) FROM operations GROUP BY kind, state"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            rows = db.execute(query).fetchall()
        except sqlite3.OperationalError:  # created a moment ago, its tables not yet
            return Counter()
    return Counter({(OperationKind(kind), Outcome(state)): n for kind, state, n in rows})


def _next_entry(
    previous: StepEntry | None,
    index: int,
    state: StepState,
    detail: Mapping[str, Any],
    now_ms: int,
) -> StepEntry:
    """The step's new row: the first start time is kept across reruns (RTO counts them)."""
    started_ms, attempts = (previous.started_ms, previous.attempts) if previous else (None, 0)
    if state is StepState.STARTED:
        first_ms = started_ms if started_ms is not None else now_ms
        return StepEntry(index, state, first_ms, attempts=attempts + 1)
    return StepEntry(index, state, started_ms, now_ms, dict(detail), attempts)


def _held_message(holder: LockHolder, state_dir: Path) -> str:
    operation = f", operation {holder.operation_id}" if holder.operation_id is not None else ""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.since_ms / 1000))
    return (
        f"another orchestrator holds the failover lock of {state_dir}: pid {holder.pid} "
        f"({holder.description}{operation}) since {since}; wait for it, or stop it and rerun"
    )
