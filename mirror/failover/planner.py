"""Plan a switchover, forced failover or failback (pure): state + request -> steps or refusal.

The operations follow Confluent Cluster Linking's mirror-topic verbs (`promote`: wait for
lag 0, then make the mirror writable; `failover`: make it writable now, losing what it had
not received; `truncate-and-restore`: cut the old side back to where the new one took over,
then mirror into it), with the topology epoch as a fencing token (Kleppmann, "How to do
distributed locking", 2016): every role change runs under a new epoch that regions persist,
so a region that missed a change refuses the stale orders of the old side.

The shapes are the issue-11 contract's ("Failover package" in the shared failover spec):

- switchover A->B at E+1: fence_source(A), drain(A->B), sync_groups(A->B), promote(B),
  stop_flow(A->B), demote_topics(A, mirrors of B), start_flow(B->A at E+1).
- failover --force A->B at E+1: stop_flow(A->B), measure_loss(A->B), promote(B),
  fence_source(A) best effort. One deviation: when A is reachable its fence comes first
  (then it must succeed), so A and B never both take writes and the measured loss is final.
- failback to A (B primary) at E+1: fence_source(A), demote_topics(A, mirrors of B),
  save_divergent(A), truncate(A), start_flow(B->A at E+1), catch_up(B->A), then a
  switchover B->A at E+2.

Over mapped flows (prefix naming, or onto an external cluster: `PairFacts`) the same shapes
hold with mapped meanings (see `StepKind`), except failback: nothing diverges, since A's
topics were never written by the mirror. The forward flow restarted from where it stopped
copies A's unmirrored records late into B's remote topics (`<A>.<topic>`), and counts them:
fence_source(A), start_flow(A->B), recover(A->B), start_flow(B->A), catch_up(B->A), then
the switchover B->A. Role steps on an external region are planned as no-ops the operator
does by hand (`Step.enforced`, `Step.note`). A switchover needs the same kind of flow both
ways: identity naming with one external region would write mirror topics one way and use
the offset map the other, so it is refused (a forced failover starts no reverse flow).

Steps before the promotion abort on failure: `abort_steps` undoes what was done (unfence a
fenced old primary, restart a stopped flow), best effort. From the promotion on a failure
halts the operation instead (the promoted side may already have taken writes, so undoing
could make two writable regions); rerunning the failed step resumes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from mirror.failover import effects
from mirror.failover.model import (
    ENFORCED_KINDS,
    Json,
    OnFailure,
    OperationKind,
    PairFacts,
    Role,
    Step,
    StepKind,
    StepState,
    TopologyState,
)

DEFAULT_DRAIN_TIMEOUT_S = 30.0
DEFAULT_CATCH_UP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Request:
    """What the operator asked for (`regionlink switchover|failover|failback --to REGION`)."""

    kind: OperationKind
    to_region: str
    force: bool = False
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    catch_up_timeout_s: float = DEFAULT_CATCH_UP_TIMEOUT_S


@dataclass(frozen=True)
class Refusal:
    reason: str  # one line, saying what to do instead where there is something


@dataclass(frozen=True)
class Plan:
    """An operation's steps in order. `epoch` is the epoch it ends at; `start` the state it
    was planned from (abort steps are derived from it)."""

    operation: OperationKind
    from_region: str
    to_region: str
    epoch: int
    start: TopologyState
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        assert [s.index for s in self.steps] == list(range(len(self.steps))), self.steps
        assert all(self.start.epoch < s.epoch <= self.epoch for s in self.steps), self

    def end_state(self) -> TopologyState:
        """The topology once every step is done."""
        state = self.start
        for step in self.steps:
            state = effects.finished(state, step, StepState.DONE)
        return state

    def abort_steps(self, failed_index: int) -> tuple[Step, ...]:
        """What undoes the steps up to and including a failed ABORT step (which may have
        half happened), newest first, numbered after the plan's steps; best effort."""
        assert self.steps[failed_index].on_failure is OnFailure.ABORT, failed_index
        undo = [u for s in reversed(self.steps[: failed_index + 1]) if (u := self._undo(s))]
        return tuple(replace(u, index=len(self.steps) + k) for k, u in enumerate(undo))

    def _undo(self, step: Step) -> Step | None:
        if step.kind is StepKind.FENCE_SOURCE and self.start.role(step.region).role is Role.PRIMARY:
            return replace(step, kind=StepKind.UNFENCE, on_failure=OnFailure.CONTINUE)
        if step.kind is StepKind.STOP_FLOW and step.flow in self.start.flows:
            epoch = self.start.flows[step.flow]  # as it ran: its target saw no newer epoch
            return replace(
                step, kind=StepKind.START_FLOW, epoch=epoch, on_failure=OnFailure.CONTINUE
            )
        return None

    def to_json(self) -> Json:
        return {
            "operation": self.operation.value,
            "from": self.from_region,
            "to": self.to_region,
            "epoch": self.epoch,
            "start": self.start.to_json(),
            "steps": [step.to_json() for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            operation=OperationKind(data["operation"]),
            from_region=data["from"],
            to_region=data["to"],
            epoch=data["epoch"],
            start=TopologyState.from_json(data["start"]),
            steps=tuple(Step.from_json(step) for step in data["steps"]),
        )


def plan_operation(
    state: TopologyState, request: Request, facts: PairFacts | None = None
) -> Plan | Refusal:
    """The steps for `request` from `state` (with reachability set), or why not. `facts`
    default: two regionlink regions with mirror topics both ways."""
    facts = facts if facts is not None else PairFacts()
    if refusal := _common_refusal(state, request):
        return refusal
    match request.kind:
        case OperationKind.SWITCHOVER:
            refusal = _switchover_refusal(state, request) or _flows_refusal(state, request, facts)
            return refusal or _switchover_plan(state, request, facts)
        case OperationKind.FAILOVER:
            return _failover_refusal(state, request) or _failover_plan(state, request, facts)
        case OperationKind.FAILBACK:
            refusal = _failback_refusal(state, request) or _flows_refusal(state, request, facts)
            return refusal or _failback_plan(state, request, facts)


# -- refusals -------------------------------------------------------------------------------


def _common_refusal(state: TopologyState, request: Request) -> Refusal | None:
    to = request.to_region
    if to not in state.roles:
        return Refusal(
            f"unknown region {to!r}: the failover pair is {state.primary} (primary) "
            f"and {state.standby} (standby)"
        )
    if to == state.primary:
        return Refusal(f"{to} is already primary at epoch {state.epoch}")
    if state.role(state.primary).role is not Role.PRIMARY:  # an operation stopped half-way
        return Refusal(
            f"no region is primary at epoch {state.epoch} ({state.primary} is fenced): "
            "finish the unfinished operation first"
        )
    return None


def _switchover_refusal(state: TopologyState, request: Request) -> Refusal | None:
    source, to = state.primary, request.to_region
    if (source, to) not in state.flows:
        return Refusal(
            f"switchover to {to} needs the flow {source}->{to} running, and it is not "
            f"(after a forced failover, use `regionlink failback --to {to}`)"
        )
    if not state.is_reachable(source):
        return Refusal(
            f"switchover needs {source} reachable, to fence it and drain what it has; "
            f"if it is down, use `regionlink failover --to {to} --force`"
        )
    return _unreachable("switchover", state, to)


def _failover_refusal(state: TopologyState, request: Request) -> Refusal | None:
    source, to = state.primary, request.to_region
    if not request.force and state.is_reachable(source):
        return Refusal(
            f"failover without --force refused: {source} is reachable; "
            f"use `regionlink switchover --to {to}` for a planned move"
        )
    if not request.force:
        return Refusal(
            f"failover without --force refused: promoting {to} loses what {source} has not "
            "mirrored yet; add --force to accept that (the loss is reported)"
        )
    if (source, to) not in state.flows:
        return Refusal(
            f"failover to {to} needs the flow {source}->{to}, which is not running: "
            f"{to} holds no current copy of {source}'s writes"
        )
    return _unreachable("failover", state, to)


def _failback_refusal(state: TopologyState, request: Request) -> Refusal | None:
    source, to = state.primary, request.to_region
    if (source, to) in state.flows:
        return Refusal(
            f"{source} already mirrors to {to}, so there is nothing to fail back; "
            f"use `regionlink switchover --to {to}` for a planned move"
        )
    return _unreachable("failback", state, to) or _unreachable("failback", state, source)


def _flows_refusal(state: TopologyState, request: Request, facts: PairFacts) -> Refusal | None:
    """Both directions must be the same kind of flow: a reverse flow that writes mirror topics
    needs the other side's topics at the same offsets, which an offset-mapped copy is not."""
    a, b = state.primary, request.to_region
    if facts.is_mapped(a, b) == facts.is_mapped(b, a):
        return None
    mirror, mapped = ((b, a), (a, b)) if facts.is_mapped(a, b) else ((a, b), (b, a))
    external = ", ".join(sorted(facts.external & {a, b})) or "one region"
    return Refusal(
        f"{request.kind.value} between {a} and {b} is not supported with naming = "
        f'"identity" and {external} an external cluster: {mirror[0]}->{mirror[1]} would '
        f"write mirror topics at {mirror[0]}'s offsets, but {mapped[0]}->{mapped[1]} keeps an "
        f'offset map, so they differ; use naming = "prefix" for this pair (a forced '
        "failover works, since it starts no reverse flow)"
    )


def _unreachable(operation: str, state: TopologyState, region: str) -> Refusal | None:
    if state.is_reachable(region):
        return None
    return Refusal(f"{operation} needs {region} reachable")


# -- plans ----------------------------------------------------------------------------------


def _switchover_plan(state: TopologyState, request: Request, facts: PairFacts) -> Plan:
    epoch = state.epoch + 1
    steps = _switchover_steps(state.primary, request.to_region, epoch, request.drain_timeout_s)
    return _plan(OperationKind.SWITCHOVER, state, request, epoch, steps, facts)


def _switchover_steps(source: str, target: str, epoch: int, drain_timeout_s: float) -> list[Step]:
    abort, halt = OnFailure.ABORT, OnFailure.HALT
    return [
        _step(StepKind.FENCE_SOURCE, source, target, epoch, abort),
        _step(StepKind.DRAIN, source, target, epoch, abort, timeout_s=drain_timeout_s),
        _step(StepKind.SYNC_GROUPS, source, target, epoch, abort),
        _step(StepKind.PROMOTE, target, source, epoch, halt),
        _step(StepKind.STOP_FLOW, source, target, epoch, halt),
        _step(StepKind.DEMOTE_TOPICS, source, target, epoch, halt),
        _step(StepKind.START_FLOW, target, source, epoch, halt),
    ]


def _failover_plan(state: TopologyState, request: Request, facts: PairFacts) -> Plan:
    source, target, epoch = state.primary, request.to_region, state.epoch + 1
    abort = OnFailure.ABORT
    steps = [
        _step(StepKind.STOP_FLOW, source, target, epoch, abort),
        _step(StepKind.MEASURE_LOSS, source, target, epoch, abort),
        _step(StepKind.PROMOTE, target, source, epoch, OnFailure.HALT),
    ]
    fence = _step(StepKind.FENCE_SOURCE, source, target, epoch, OnFailure.CONTINUE)
    if state.is_reachable(source):
        steps.insert(0, replace(fence, on_failure=abort))
    else:
        steps.append(fence)
    return _plan(OperationKind.FAILOVER, state, request, epoch, steps, facts)


def _failback_plan(state: TopologyState, request: Request, facts: PairFacts) -> Plan:
    source, target, epoch = state.primary, request.to_region, state.epoch + 1
    assert state.promoted_at_epoch > 0, state
    since, abort = state.promoted_at_epoch, OnFailure.ABORT
    if facts.is_mapped(target, source):  # nothing diverged: copy the rest late, count it
        restore = [
            _step(StepKind.START_FLOW, target, source, epoch, abort),
            _step(
                StepKind.RECOVER, target, source, epoch, abort,
                timeout_s=request.catch_up_timeout_s, since_epoch=since,
            ),
        ]  # fmt: skip
    else:  # save what only the old primary has, then cut it back to the new one
        restore = [
            _step(StepKind.DEMOTE_TOPICS, target, source, epoch, abort),
            _step(StepKind.SAVE_DIVERGENT, target, source, epoch, abort, since_epoch=since),
            _step(StepKind.TRUNCATE, target, source, epoch, abort, since_epoch=since),
        ]
    steps = [
        _step(StepKind.FENCE_SOURCE, target, source, epoch, abort),
        *restore,
        _step(StepKind.START_FLOW, source, target, epoch, abort),
        _step(
            StepKind.CATCH_UP, source, target, epoch, abort, timeout_s=request.catch_up_timeout_s
        ),
        *_switchover_steps(source, target, epoch + 1, request.drain_timeout_s),
    ]
    return _plan(OperationKind.FAILBACK, state, request, epoch + 1, steps, facts)


def _step(
    kind: StepKind,
    region: str,
    peer: str,
    epoch: int,
    on_failure: OnFailure,
    *,
    timeout_s: float | None = None,
    since_epoch: int | None = None,
) -> Step:
    return Step(-1, kind, region, peer, epoch, on_failure, timeout_s, since_epoch)


def _plan(
    kind: OperationKind,
    state: TopologyState,
    request: Request,
    epoch: int,
    steps: Sequence[Step],
    facts: PairFacts,
) -> Plan:
    numbered = tuple(
        replace(step, index=index, enforced=_enforceable(step, facts))
        for index, step in enumerate(steps)
    )
    start = state.with_reachable(())  # reachability was for deciding; it is not journaled
    return Plan(kind, state.primary, request.to_region, epoch, start, numbered)


def _enforceable(step: Step, facts: PairFacts) -> bool:
    """Role changes cannot be enforced on an external cluster (no regionlink.* configs)."""
    return not (step.kind in ENFORCED_KINDS and step.region in facts.external)
