"""Where an operation stands and what the driver does next (pure state machine).

Like the Raft node (`broker/kraft/node.py`), it has no I/O and no clock: it is fed events and
answers with a decision, so a crashed orchestrator and a live one take the same path. The
events are the journal's step entries — a step `started`, `done` or `failed` (with the
driver's figures) — and each is journaled *before* it is fed, so the journal alone can
rebuild the machine (`replay`):

    machine = Orchestration(plan)
    while isinstance(decision := machine.decision, RunStep):
        i = decision.step.index
        journal it, then machine.feed(StepEntry(i, STARTED))
        run it:  done   -> journal it, then machine.feed(StepEntry(i, DONE, detail=figures))
                 raised -> journal it, then machine.feed(StepEntry(i, FAILED, detail=error))
    decision is Finished: journal the outcome and the steps in decision.skipped

Resuming from the journal: a step done is never run again; a step started but not finished
(the orchestrator died meanwhile) is the next step again — steps are idempotent. A failed
step leads where its `on_failure` says: ABORT switches to the plan's abort steps (outcome
aborted), CONTINUE goes on (its change stays pending), HALT finishes the operation as failed
with the step in `Finished.retry`: journaling that step as started again resumes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mirror.failover import effects
from mirror.failover.model import (
    OnFailure,
    Outcome,
    Step,
    StepEntry,
    StepState,
    TopologyState,
)
from mirror.failover.planner import Plan


@dataclass(frozen=True)
class RunStep:
    """Run this step (again, if the journal says it was started: it is idempotent)."""

    step: Step


@dataclass(frozen=True)
class Finished:
    outcome: Outcome  # DONE, ABORTED or FAILED
    reason: str  # why it aborted or failed; "" when done
    retry: Step | None = None  # FAILED: journal it as started again to resume
    skipped: tuple[Step, ...] = ()  # never run (ABORTED): journal them as skipped


Decision = RunStep | Finished


class Orchestration:
    """One operation's progress. `state` folds the steps so far into `base` (the topology
    before the operation; by default the plan's start)."""

    def __init__(self, plan: Plan, base: TopologyState | None = None) -> None:
        self._plan = plan
        self._state = base if base is not None else plan.start
        self._entries: dict[int, StepEntry] = {}
        self._failed: Step | None = None  # the ABORT step whose failure is being undone
        self._abort: tuple[Step, ...] = ()
        self._decision = self._decide()

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def decision(self) -> Decision:
        return self._decision

    @property
    def state(self) -> TopologyState:
        return self._state

    @property
    def entries(self) -> dict[int, StepEntry]:
        return dict(self._entries)

    def steps(self) -> tuple[Step, ...]:
        """The plan's steps, then the abort steps if it is aborting."""
        return self._plan.steps + self._abort

    def feed(self, entry: StepEntry) -> Decision:
        """Take one journaled event; ValueError if it is not about the step due now."""
        step = self._check(entry)
        self._entries[entry.index] = entry
        match entry.state:
            case StepState.STARTED:
                self._state = effects.started(self._state, step)
            case StepState.DONE:
                self._state = effects.finished(self._state, step, StepState.DONE)
            case StepState.FAILED if step.on_failure is OnFailure.CONTINUE:
                self._state = effects.finished(self._state, step, StepState.FAILED)
            case StepState.FAILED if step.on_failure is OnFailure.ABORT:
                self._state = effects.started(self._state, step)
                self._failed, self._abort = step, self._plan.abort_steps(step.index)
            case StepState.FAILED:  # HALT: whatever it did before failing stays
                self._state = effects.started(self._state, step)
            case StepState.SKIPPED:  # never started
                pass
        self._decision = self._decide()
        return self._decision

    def _check(self, entry: StepEntry) -> Step:
        due = self._decision
        if isinstance(due, RunStep) and entry.index == due.step.index:
            if entry.state is not StepState.SKIPPED:
                return due.step
        elif isinstance(due, Finished) and due.retry and due.retry.index == entry.index:
            if entry.state is StepState.STARTED:
                return due.retry
        elif entry.state is StepState.SKIPPED and self._skippable(entry.index):
            return self._plan.steps[entry.index]
        raise ValueError(f"step {entry.index} cannot be {entry.state.value} now: {due}")

    def _skippable(self, index: int) -> bool:
        failed = self._failed
        return failed is not None and failed.index < index < len(self._plan.steps)

    def _decide(self) -> Decision:
        for step in self._abort if self._failed else self._plan.steps:
            entry = self._entries.get(step.index)
            if entry is None or entry.state is StepState.STARTED:
                return RunStep(step)
            if entry.state is StepState.FAILED and step.on_failure is OnFailure.HALT:
                return Finished(Outcome.FAILED, _failure(step, entry), retry=step)
        if self._failed is None:
            return Finished(Outcome.DONE, "")
        failed = self._failed
        skipped = self._plan.steps[failed.index + 1 :]
        reason = _failure(failed, self._entries[failed.index])
        return Finished(Outcome.ABORTED, reason, skipped=skipped)


def _failure(step: Step, entry: StepEntry) -> str:
    return f"{step.describe()} failed: {entry.error or 'no reason given'}"


def next_step(plan: Plan, entries: Iterable[StepEntry]) -> Decision:
    """Where to resume an operation from its journal entries."""
    return replay(plan, entries).decision


def replay(
    plan: Plan, entries: Iterable[StepEntry], base: TopologyState | None = None
) -> Orchestration:
    """The machine fed with an operation's journal entries, in order: its `decision` says
    where to resume and its `state` where the topology stands."""
    machine = Orchestration(plan, base)
    for entry in sorted(entries, key=_replay_order):
        machine.feed(entry)
    return machine


def _replay_order(entry: StepEntry) -> tuple[bool, int]:
    """Skipped entries are journaled when the operation ends, after its abort steps."""
    return (entry.state is StepState.SKIPPED, entry.index)
