"""An operation's report — RPO, RTO, loss manifest, divergence, timings — from its journal (pure).

The figures come from the driver's step details, in these shapes:

- measure_loss: {"observed_at_ms": int, "observed_age_s": float, "partitions": [loss, ...],
  "target_ends": [{"topic": str, "partition": int, "end_offset": int}, ...]}
  where each loss is a `PartitionLoss` JSON for a partition whose new primary ends before
  the old primary's last observed end (`observed_at_ms`: when that observation was made;
  `observed_age_s`: how old it was when measured — writes younger than that are unknown),
  and `target_ends` are the new primary's log ends at promotion, every partition: a
  failback's save_divergent and truncate start there (`Journal.promotion_ends`).
  Over a mapped flow (`PairFacts.mapped`) the offsets are the old primary's: a loss runs
  from the map's resume position (the first source offset not mirrored) to the last
  observed end, and `source_resume` holds that position for every partition (where a
  failback's recover step starts counting).
- save_divergent: {"partitions": [loss, ...]}: the old primary's offsets saved into
  `<topic>.diverged` on the new primary.
- recover: {"partitions": [loss, ...]}: the old primary's offsets copied late into the
  remote topic named by each item's `into` (a mapped failback: nothing diverges).
- a role step not enforced on an external region: {"not_enforced": [region], "note": str};
  the report lists every such region in `not_enforced`, from the plan (known beforehand).
- any failed step: {"error": "one line"}.

RTO runs from the first step at the operation's final epoch (the fence of a switchover, the
first step of a forced failover) to the end of its promotion: the time no region took writes.
RPO in seconds is the age of the oldest lost record at the last observation — a lower bound,
since the old primary may have taken writes after it; None when no lost record's time is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mirror.failover.model import (
    OperationReport,
    Outcome,
    PartitionLoss,
    Step,
    StepEntry,
    StepKind,
    StepState,
    StepTiming,
)
from mirror.failover.progress import Finished, Orchestration


def build_report(machine: Orchestration) -> OperationReport:
    """The report of the operation as far as `machine` has seen it."""
    plan, entries, decision = machine.plan, machine.entries, machine.decision
    outcome, reason = Outcome.RUNNING, ""
    if isinstance(decision, Finished):
        outcome, reason = decision.outcome, decision.reason
    loss = _detail(plan.steps, entries, StepKind.MEASURE_LOSS)
    manifest = _losses(loss)
    return OperationReport(
        operation=plan.operation,
        from_region=plan.from_region,
        to_region=plan.to_region,
        epoch=plan.epoch,
        outcome=outcome,
        reason=reason,
        rpo_records=sum(item.records for item in manifest),
        rpo_seconds=_rpo_seconds(manifest, loss.get("observed_at_ms")),
        rto_seconds=_rto_seconds(plan.steps, entries, plan.epoch),
        observed_age_s=loss.get("observed_age_s"),
        loss_manifest=manifest,
        diverged=_losses(_detail(plan.steps, entries, StepKind.SAVE_DIVERGENT)),
        pending=tuple(machine.state.pending()),
        steps=tuple(_timing(step, entries.get(step.index)) for step in machine.steps()),
        recovered=_losses(_detail(plan.steps, entries, StepKind.RECOVER)),
        not_enforced=tuple(sorted({step.region for step in plan.steps if not step.enforced})),
    )


def _detail(
    steps: Sequence[Step], entries: Mapping[int, StepEntry], kind: StepKind
) -> Mapping[str, Any]:
    for step in steps:
        entry = entries.get(step.index)
        if step.kind is kind and entry is not None and entry.state is StepState.DONE:
            return entry.detail
    return {}


def _losses(detail: Mapping[str, Any]) -> tuple[PartitionLoss, ...]:
    return tuple(PartitionLoss.from_json(item) for item in detail.get("partitions", ()))


def _rpo_seconds(manifest: Sequence[PartitionLoss], observed_at_ms: int | None) -> float | None:
    lost = [item for item in manifest if item.records]
    if not lost:
        return 0.0
    known = [item.first_timestamp_ms for item in lost if item.first_timestamp_ms is not None]
    if not known or observed_at_ms is None:
        return None
    return max(0, observed_at_ms - min(known)) / 1000


def _rto_seconds(
    steps: Sequence[Step], entries: Mapping[int, StepEntry], epoch: int
) -> float | None:
    first = next(step for step in steps if step.epoch == epoch)
    promote = next(step for step in steps if step.kind is StepKind.PROMOTE)
    start, end = entries.get(first.index), entries.get(promote.index)
    if start is None or end is None or start.started_ms is None or end.finished_ms is None:
        return None
    if end.state is not StepState.DONE:
        return None
    return (end.finished_ms - start.started_ms) / 1000


def _timing(step: Step, entry: StepEntry | None) -> StepTiming:
    if entry is None:
        return StepTiming(step, None, None, None, "", 0)
    return StepTiming(
        step, entry.state, entry.started_ms, entry.finished_ms, entry.error, entry.attempts
    )
