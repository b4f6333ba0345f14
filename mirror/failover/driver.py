"""Run a failover operation: plan it, journal every step, execute it, resume after a crash.

The thin I/O shell around the pure parts: `planner.plan_operation` decides the steps,
`progress.Orchestration` (through the journal) decides what comes next, `steps.run_step`
does one step. The driver only moves between them: it journals a step as started before
running it and as done (with its figures) or failed after, hands the resulting topology to
the supervisor (`mirror/runtime/links.py`), and reports progress to whoever watches.

An operation left unfinished (its orchestrator was killed, or a step past the point of no
return failed) is resumed by the next run, whatever that run asked for: `run` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio

from broker.client.security import ClientSecurity
from mirror.errors import CliError
from mirror.failover import effects
from mirror.failover.journal import Journal, LockHeld, OperationPending, OperationRecord
from mirror.failover.model import (
    OperationReport,
    PairFacts,
    RegionRole,
    Step,
    StepState,
    TopologyState,
)
from mirror.failover.planner import Plan, Refusal, Request, plan_operation
from mirror.failover.progress import Orchestration, RunStep
from mirror.failover.steps import (
    Context,
    StepError,
    held_role,
    link_state,
    reachable,
    run_step,
)
from mirror.runtime.links import save_links, writes_mirror_topics
from mirror.runtime.secure import admin_client
from mirror.runtime.state import StateDB
from mirror.runtime.status import running_topology
from mirror.runtime.topology import TopologyConfig


@dataclass(frozen=True)
class StepEvent:
    step: Step
    state: StepState
    elapsed_s: float  # since the step started (0 when it starts)
    detail: dict[str, object]


Watcher = Callable[[StepEvent], None]


def initial_state(topology: TopologyConfig) -> TopologyState:
    if topology.failover is None:
        raise CliError(
            f"topology {topology.name!r} has no [failover] section: add primary and standby "
            "regions to use switchover, failover and failback"
        )
    return TopologyState.initial(topology.failover.primary, topology.failover.standby)


def pair_facts(topology: TopologyConfig) -> PairFacts:
    """Which regions of the failover pair are external, and which of its two flows (the
    file's and its reverse) keep the exact offset map instead of writing mirror topics."""
    assert topology.failover is not None
    pair = (topology.failover.primary, topology.failover.standby)
    flows = (pair, pair[::-1])
    return PairFacts(
        external=frozenset(r for r in pair if not topology.regions[r].managed),
        mapped=frozenset(f for f in flows if not writes_mirror_topics(topology, *f)),
    )


def region_bootstraps(state_dir: Path, topology: TopologyConfig) -> dict[str, str]:
    """Where each region's brokers are: the running topology's, or an external bootstrap."""
    rows = StateDB(state_dir).processes()
    out = {}
    for region, config in topology.regions.items():
        if config.bootstrap is not None:
            out[region] = config.bootstrap
        else:
            brokers = [r.address for r in rows if r.kind == "broker" and r.region == region]
            out[region] = ",".join(a for a in brokers if a)
    return out


async def current_state(
    journal: Journal,
    topology: TopologyConfig,
    bootstraps: dict[str, str],
    security: ClientSecurity | None = None,
) -> TopologyState:
    """The journal's topology, with which regions answer right now."""
    state = journal.state(initial_state(topology))
    answers: dict[str, bool] = {}

    async def probe(region: str) -> None:
        answers[region] = bool(bootstraps.get(region)) and await reachable(
            bootstraps[region], security
        )

    async with anyio.create_task_group() as tg:
        for region in state.roles:
            tg.start_soon(probe, region)
    return state.with_reachable(r for r, ok in answers.items() if ok)


async def confirmed_roles(
    state: TopologyState, bootstraps: dict[str, str], security: ClientSecurity | None = None
) -> dict[str, bool | None]:
    """Per region: whether it holds the role the journal gives it. A role set while the
    region was unreachable stays pending in the journal; the supervisor tells the region
    when it is back, so ask the region itself (None: it does not answer)."""
    answers: dict[str, bool | None] = {}

    async def probe(region: str, wanted: RegionRole) -> None:
        held = await held_role(bootstraps[region], security) if bootstraps.get(region) else None
        answers[region] = None if held is None else not wanted.to_tell(held.role, held.epoch)

    async with anyio.create_task_group() as tg:
        for region, wanted in state.roles.items():
            if wanted.pending:
                tg.start_soon(probe, region, wanted)
            else:
                answers[region] = True
    return answers


async def plan_only(state_dir: Path, request: Request) -> Plan:
    """`--dry-run`: the plan the operation would follow now (or CliError, why not)."""
    topology = running_topology(state_dir)
    journal = Journal(state_dir)
    try:
        if (pending := journal.unfinished()) is not None:
            return pending.plan
        bootstraps = region_bootstraps(state_dir, topology)
        security = admin_client(topology, state_dir)
        state = await current_state(journal, topology, bootstraps, security)
    finally:
        journal.close()
    return _checked(plan_operation(state, request, pair_facts(topology)))


def _checked(plan: Plan | Refusal) -> Plan:
    if isinstance(plan, Refusal):
        raise CliError(plan.reason)
    return plan


async def run(state_dir: Path, request: Request, watch: Watcher) -> OperationReport:
    """Run `request` (or resume the unfinished operation) to its end; its report."""
    topology = running_topology(state_dir)
    bootstraps = region_bootstraps(state_dir, topology)
    security = admin_client(topology, state_dir)
    journal = Journal(state_dir)
    try:
        journal.acquire(f"{request.kind.value} --to {request.to_region}")
    except LockHeld as exc:
        journal.close()
        raise CliError(str(exc)) from None
    try:
        operation_id = await _begin(journal, topology, bootstraps, request, security)
        async with AsyncExitStack() as stack:
            ctx = Context(
                state_dir,
                topology,
                bootstraps,
                stack,
                journal.promotion_ends,
                clients={},
                security=security,
            )
            return await _drive(ctx, journal, operation_id, watch)
    finally:
        journal.release()
        journal.close()


async def _begin(
    journal: Journal,
    topology: TopologyConfig,
    bootstraps: dict[str, str],
    request: Request,
    security: ClientSecurity | None,
) -> int:
    pending: OperationRecord | None = journal.unfinished()
    if pending is not None:
        return pending.id  # resume it, whatever was asked
    state = await current_state(journal, topology, bootstraps, security)
    try:
        return journal.begin(_checked(plan_operation(state, request, pair_facts(topology))))
    except OperationPending as exc:
        raise CliError(str(exc)) from None


async def _drive(
    ctx: Context, journal: Journal, operation_id: int, watch: Watcher
) -> OperationReport:
    failed_now: set[int] = set()  # a step that fails in this run halts it; a rerun resumes
    while True:
        machine = journal.replay(operation_id)
        decision = machine.decision
        if isinstance(decision, RunStep):
            step = decision.step
        elif decision.retry is not None and decision.retry.index not in failed_now:
            step = decision.retry  # halted in an earlier run: this run resumes it
        else:
            return journal.finish(operation_id)
        if not await _one_step(ctx, journal, operation_id, machine, step, watch):
            failed_now.add(step.index)


async def _one_step(
    ctx: Context,
    journal: Journal,
    operation_id: int,
    machine: Orchestration,
    step: Step,
    watch: Watcher,
) -> bool:
    """Journal, run and journal one step; whether it succeeded."""
    journal.step_started(operation_id, step)
    watch(StepEvent(step, StepState.STARTED, 0.0, {}))
    started_s = time.monotonic()
    after = effects.finished(machine.state, step, StepState.DONE)
    try:
        detail = await run_step(ctx, step, after)
    except StepError as exc:
        journal.step_failed(operation_id, step, str(exc))
        watch(StepEvent(step, StepState.FAILED, time.monotonic() - started_s, {"error": str(exc)}))
        ok = False
    else:
        journal.step_done(operation_id, step, detail)
        watch(StepEvent(step, StepState.DONE, time.monotonic() - started_s, detail))
        ok = True
    # What the supervisor runs and enforces follows every step.
    save_links(StateDB(ctx.state_dir), link_state(journal.replay(operation_id).state))
    return ok
