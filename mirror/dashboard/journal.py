"""The failover journal as the dashboard reads it: operations, their steps, RPO/RTO, losses.

Read through `mirror.failover.journal.Journal` — the same replay `regionlink failover
history|show` uses, so the pages cannot disagree with the CLI. The dashboard never creates
the journal: a state directory where no operation ever ran has no `failover.db`, and then
there is nothing to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirror.failover.journal import DB_NAME, Journal, OperationRecord
from mirror.failover.model import OperationReport

HISTORY_LIMIT = 200


def _journal(state_dir: Path) -> Journal | None:
    return Journal(state_dir) if (state_dir / DB_NAME).exists() else None


def operation_json(record: OperationRecord, report: OperationReport) -> dict[str, Any]:
    """`failover show --json` plus when the operation started and ended, and each step's
    description (what the CLI prints)."""
    data = {"id": record.id, **report.to_json()}
    data["started_ms"], data["finished_ms"] = record.started_ms, record.finished_ms
    for step, timing in zip(data["steps"], report.steps, strict=True):
        step["description"] = timing.step.describe()
    return data


def operations(state_dir: Path, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """Every operation (newest first), as `operation_json`."""
    journal = _journal(state_dir)
    if journal is None:
        return []
    try:
        return [operation_json(r, journal.report(r.id)) for r in journal.history(limit)]
    finally:
        journal.close()


def operation(state_dir: Path, operation_id: int) -> dict[str, Any] | None:
    journal = _journal(state_dir)
    if journal is None:
        return None
    try:
        record = journal.operation(operation_id)
        return operation_json(record, journal.report(operation_id))
    except KeyError:
        return None
    finally:
        journal.close()


def latest(state_dir: Path) -> dict[str, Any] | None:
    """The newest operation in brief — id, kind, state, steps done, and all of them in one
    `signature` string — so a page showing the journal knows, from each live sample, when
    to reload (the page was rendered with `signature(state_dir)`)."""
    journal = _journal(state_dir)
    if journal is None:
        return None
    try:
        newest = journal.history(1)
        if not newest:
            return None
        record = newest[0]
        done = sum(1 for e in journal.entries(record.id) if e.finished_ms is not None)
        return {
            "id": record.id,
            "kind": record.kind.value,
            "state": record.state.value,
            "steps_done": done,
            "signature": f"{record.id}/{record.state.value}/{done}",
        }
    finally:
        journal.close()


def signature(state_dir: Path) -> str:
    """`latest(state_dir)["signature"]`, "" when no operation ever ran."""
    newest = latest(state_dir)
    return "" if newest is None else str(newest["signature"])
