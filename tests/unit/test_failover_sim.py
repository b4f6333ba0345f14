"""Failover orchestration against a simulated pair of regions, with crashes and failures.

A small model of two regions (role, epoch, topics with logs and mirror flags, mirror flows
between them), a fake driver applying steps to it, and the real planner, state machine and
journal (sqlite on tmpfs). Hypothesis interleaves client writes, mirroring, region outages
and operations; faults hit steps — the orchestrator dies before journaling a start, after it,
after the step ran but before "done" was journaled, or after; or the step fails — and every
death is followed, at once or later, by a rerun from the journal as a new process that takes
over the dead one's lock.

Regions go down and come back only while no operation is unfinished: a region returning
in the middle of a forced failover is the supervisor's case, not the planner's.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from mirror.failover.journal import Journal
from mirror.failover.model import (
    Flow,
    OperationKind,
    Outcome,
    Role,
    Step,
    StepKind,
    TopologyState,
)
from mirror.failover.planner import Plan, Refusal, Request, plan_operation
from mirror.failover.progress import Finished

US, EU = "us-east", "eu-west"
REGIONS = (US, EU)
TOPICS = ("orders", "payments")
INITIAL = TopologyState.initial(US, EU)
FAULTS = ("die_before_start", "die_after_start", "die_after_run", "die_after_done", "fail")


def _dead_pids(count: int) -> Iterator[int]:
    """Pids of exited processes: each orchestrator run poses as a new process."""
    pids = []
    for _ in range(count):
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        pids.append(child.pid)
    return itertools.cycle(pids)


DEAD_PIDS = _dead_pids(3)


class Died(Exception):
    """The orchestrator process was killed."""


class StepFailed(Exception):
    pass


@dataclass
class Region:
    name: str
    role: Role
    mirror_of: dict[str, str | None]
    epoch: int = 0
    up: bool = True
    logs: dict[str, list[int]] = field(default_factory=lambda: {t: [] for t in TOPICS})
    # <topic>.diverged, keyed as its origin headers are: (failover epoch, offset) -> record
    diverged: dict[str, dict[tuple[int, int], int]] = field(
        default_factory=lambda: {t: {} for t in TOPICS}
    )

    def set_role(self, role: Role, epoch: int) -> None:
        assert epoch >= self.epoch, f"{self.name}: epoch {epoch} after {self.epoch}"
        self.role, self.epoch = role, epoch

    def writable(self, topic: str) -> bool:
        return self.up and self.role is Role.PRIMARY and self.mirror_of[topic] is None


@dataclass
class World:
    regions: dict[str, Region]
    flows: dict[Flow, int]  # running flows -> link epoch
    observed: dict[Flow, dict[str, int]] = field(default_factory=dict)  # source ends seen
    acked: list[tuple[str, int]] = field(default_factory=list)
    journaled_done: set[tuple[int, int]] = field(default_factory=set)
    slow: bool = False  # the link is too slow for a drain to finish in time
    now_ms: int = 0
    ids: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def new(cls) -> World:
        us = Region(US, Role.PRIMARY, dict.fromkeys(TOPICS))
        eu = Region(EU, Role.STANDBY, dict.fromkeys(TOPICS, US))
        return cls({US: us, EU: eu}, {(US, EU): 0})

    def clock(self) -> int:
        self.now_ms += 7
        return self.now_ms

    def up(self) -> list[str]:
        return [name for name, region in self.regions.items() if region.up]

    def write(self, name: str, topic: str) -> None:
        region = self.regions[name]
        if region.writable(topic):
            record = next(self.ids)
            region.logs[topic].append(record)
            self.acked.append((topic, record))

    def mirror(self, flow: Flow, limit: int) -> None:
        """What the flow's workers do: observe the source's ends, then LinkAppend."""
        source, target = self.regions[flow[0]], self.regions[flow[1]]
        if not (source.up and target.up) or self.flows[flow] < target.epoch:
            return  # down, or refused as stale
        self.observed[flow] = {topic: len(source.logs[topic]) for topic in TOPICS}
        for topic in TOPICS:
            if target.mirror_of[topic] != source.name:
                continue  # not a mirror topic of this source: refused
            have, want = target.logs[topic], source.logs[topic]
            assert have == want[: len(have)], f"{topic}: {target.name} diverged from {source.name}"
            have.extend(want[len(have) : len(have) + limit])

    def check(self) -> None:
        writable = [r.name for r in self.regions.values() if r.up and r.role is Role.PRIMARY]
        assert len(writable) <= 1, f"two regions take writes: {writable}"


# -- the fake driver ------------------------------------------------------------------------


def need_up(world: World, name: str) -> Region:
    region = world.regions[name]
    if not region.up:
        raise StepFailed(f"{name} unreachable")
    return region


def execute(world: World, plan: Plan, step: Step, journal: Journal) -> dict[str, Any]:
    region = need_up(world, step.region) if step.kind in _NEEDS_REGION else None
    match step.kind:
        case StepKind.FENCE_SOURCE | StepKind.UNFENCE:
            assert region is not None
            role = Role.STANDBY if step.kind is StepKind.FENCE_SOURCE else Role.PRIMARY
            region.set_role(role, step.epoch)
        case StepKind.DRAIN | StepKind.CATCH_UP:
            return drain(world, step)
        case StepKind.SYNC_GROUPS:
            need_up(world, step.peer)
        case StepKind.PROMOTE:
            assert region is not None
            promote(region, plan, step, world.regions[step.peer])
        case StepKind.STOP_FLOW:
            world.flows.pop(step.flow, None)
        case StepKind.START_FLOW:
            world.flows[step.flow] = step.epoch
        case StepKind.DEMOTE_TOPICS:
            assert region is not None
            region.mirror_of = dict.fromkeys(TOPICS, step.peer)
        case StepKind.MEASURE_LOSS:
            return measure_loss(world, step)
        case StepKind.SAVE_DIVERGENT | StepKind.TRUNCATE:
            assert region is not None and step.since_epoch is not None
            ends = journal.promotion_ends(step.since_epoch)
            cut = step.kind is StepKind.TRUNCATE
            divergent(region, need_up(world, step.peer), ends, step.since_epoch, cut)
    return {}


_NEEDS_REGION = {
    StepKind.FENCE_SOURCE,
    StepKind.UNFENCE,
    StepKind.DRAIN,
    StepKind.SYNC_GROUPS,
    StepKind.PROMOTE,
    StepKind.DEMOTE_TOPICS,
    StepKind.SAVE_DIVERGENT,
    StepKind.TRUNCATE,
    StepKind.CATCH_UP,
}


def drain(world: World, step: Step) -> dict[str, Any]:
    need_up(world, step.peer)
    if step.flow not in world.flows:
        raise StepFailed(f"flow {step.flow} is not running")
    world.mirror(step.flow, limit=1 if world.slow else 10**9)
    source, target = world.regions[step.region], world.regions[step.peer]
    if source.logs != target.logs:
        raise StepFailed("lag left after the timeout")
    return {"lag_records": 0}


def promote(region: Region, plan: Plan, step: Step, peer: Region) -> None:
    drained = any(s.kind is StepKind.DRAIN and s.epoch == step.epoch for s in plan.steps)
    rerun = (region.role, region.epoch) == (Role.PRIMARY, step.epoch)  # may have taken writes
    if drained and not rerun:  # a planned move loses nothing: RPO 0
        assert region.logs == peer.logs, (region.logs, peer.logs)
    region.set_role(Role.PRIMARY, step.epoch)
    region.mirror_of = {t: None if m == peer.name else m for t, m in region.mirror_of.items()}


def measure_loss(world: World, step: Step) -> dict[str, Any]:
    target = need_up(world, step.peer)
    observed = world.observed.get(step.flow, {})
    losses = [
        {"topic": t, "partition": 0, "first_offset": len(target.logs[t]),
         "last_offset": observed[t] - 1, "records": observed[t] - len(target.logs[t])}
        for t in TOPICS
        if observed.get(t, 0) > len(target.logs[t])
    ]  # fmt: skip
    ends = [{"topic": t, "partition": 0, "end_offset": len(target.logs[t])} for t in TOPICS]
    return {"observed_at_ms": world.now_ms, "observed_age_s": 0.0, "partitions": losses,
            "target_ends": ends}  # fmt: skip


def divergent(
    old: Region, new: Region, ends: dict[tuple[str, int], int], since_epoch: int, cut: bool
) -> None:
    for topic in TOPICS:
        end = ends.get((topic, 0))
        if end is None:  # promoted by a switchover: drained, nothing diverged
            continue
        if cut:
            del old.logs[topic][end:]
        else:  # keyed by origin: a rerun saves nothing twice, a later failback its own
            saved = enumerate(old.logs[topic][end:], start=end)
            new.diverged[topic].update(((since_epoch, offset), r) for offset, r in saved)


# -- the orchestrator -----------------------------------------------------------------------


def orchestrate(
    world: World, state_dir: Path, request: Request | None, faults: dict[int, str]
) -> None:
    """One orchestrator process: resume the unfinished operation, or start `request`."""
    journal = Journal(state_dir, clock_ms=world.clock, pid=next(DEAD_PIDS))
    try:
        journal.acquire("simulated orchestrator")
        record = journal.unfinished()
        if record is not None:
            plan, operation_id = record.plan, record.id
            retry = journal.replay(operation_id).decision
            if isinstance(retry, Finished) and retry.retry is not None:
                journal.step_started(operation_id, retry.retry)
        elif request is None:
            return
        else:
            state = journal.state(INITIAL).with_reachable(world.up())
            planned = plan_operation(state, request)
            if isinstance(planned, Refusal):
                event(f"refused {request.kind.value}")
                return
            plan, operation_id = planned, journal.begin(planned)
        outcome = drive(world, journal, plan, operation_id, faults)
        check_outcome(world, journal, plan, outcome)
        journal.release()
    except Died:
        event("orchestrator died")
    finally:
        journal.close()


def drive(
    world: World, journal: Journal, plan: Plan, operation_id: int, faults: dict[int, str]
) -> Outcome:
    for count in itertools.count():
        decision = journal.replay(operation_id).decision
        if isinstance(decision, Finished):
            return journal.finish(operation_id).outcome
        step = decision.step
        assert (operation_id, step.index) not in world.journaled_done, f"{step} ran again"
        run_step(world, journal, plan, operation_id, step, faults.get(count))
        world.check()
    raise AssertionError("unreachable")


def run_step(
    world: World, journal: Journal, plan: Plan, operation_id: int, step: Step, fault: str | None
) -> None:
    if fault == "die_before_start":
        raise Died
    journal.step_started(operation_id, step)
    if fault == "die_after_start":
        raise Died
    try:
        if fault == "fail":
            raise StepFailed("injected failure")
        detail = execute(world, plan, step, journal)
    except StepFailed as failure:
        journal.step_failed(operation_id, step, str(failure))
        return
    if fault == "die_after_run":
        raise Died
    journal.step_done(operation_id, step, detail)
    world.journaled_done.add((operation_id, step.index))
    if fault == "die_after_done":
        raise Died


def check_outcome(world: World, journal: Journal, plan: Plan, outcome: Outcome) -> None:
    event(f"{plan.operation.value} {outcome.value}")
    state = journal.state(INITIAL)
    if outcome is Outcome.DONE:
        end = plan.end_state()
        assert (state.epoch, state.primary, state.standby) == (end.epoch, end.primary, end.standby)
        assert state.flows == end.flows == world.flows
        assert (state.primary, state.standby) == (plan.to_region, plan.from_region)
        assert state.flows == {(plan.to_region, plan.from_region): plan.epoch} or (
            plan.operation is OperationKind.FAILOVER and not state.flows
        )
        for name, wanted in state.roles.items():
            region = world.regions[name]
            if not wanted.pending:
                assert (region.role, region.epoch) == (wanted.role, wanted.epoch), name
    elif outcome is Outcome.ABORTED:
        old = world.regions[plan.from_region]
        writable = old.role is Role.PRIMARY and not any(old.mirror_of.values())  # once up
        assert writable or state.role(old.name).pending, "the old primary stays fenced"
        assert state.primary == plan.from_region


# -- the program ----------------------------------------------------------------------------


regions = st.sampled_from(REGIONS)
destinations = st.sampled_from(["standby", "standby", "standby", US, EU])
faults = st.dictionaries(
    st.integers(0, 6) | st.integers(0, 13), st.sampled_from((*FAULTS, "fail")), max_size=3
)
operations = st.tuples(
    st.just("operate"), st.sampled_from(OperationKind), destinations, st.booleans(), faults
)
actions = st.one_of(
    operations,
    *[st.tuples(st.just("next"), faults)] * 3,  # weights: mostly operations that can run
    *[st.tuples(st.just("write"), regions, st.sampled_from(TOPICS))] * 2,
    st.tuples(st.just("mirror"), st.integers(0, 3)),
    st.tuples(st.just("slow"), st.booleans()),
    st.tuples(st.just("crash"), regions),
    st.tuples(st.just("recover"), regions),
    st.tuples(st.just("resume"), faults),
)


class Simulation:
    def __init__(self, state_dir: Path) -> None:
        self.world = World.new()
        self.state_dir = state_dir
        self.reader = Journal(state_dir)  # as `failover status` and the supervisor read it
        self.epoch = 0

    def act(self, action: tuple[Any, ...]) -> None:
        match action:
            case ("write", region, topic):
                self.world.write(region, topic)
            case ("slow", slow):
                self.world.slow = slow
            case ("mirror", limit):
                for flow in list(self.world.flows):
                    self.world.mirror(flow, limit)
            case ("crash", region) if self.idle():
                self.world.regions[region].up = False
            case ("recover", region) if self.idle():
                self.recover(region)
            case ("operate", kind, to, force, faults):
                to = self.wanted().standby if to == "standby" else to
                orchestrate(self.world, self.state_dir, Request(kind, to, force), faults)
            case ("next", faults):
                orchestrate(self.world, self.state_dir, self.sensible(), faults)
            case ("resume", faults):
                orchestrate(self.world, self.state_dir, None, faults)
        self.check()

    def sensible(self) -> Request:
        """The operation an operator would run now."""
        state = self.wanted()
        if not self.world.regions[state.primary].up:
            return Request(OperationKind.FAILOVER, state.standby, force=True)
        if (state.primary, state.standby) not in state.flows:
            return Request(OperationKind.FAILBACK, state.standby)
        return Request(OperationKind.SWITCHOVER, state.standby)

    def idle(self) -> bool:
        return self.reader.unfinished() is None

    def wanted(self) -> TopologyState:
        return self.reader.state(INITIAL)

    def recover(self, name: str) -> None:
        """The supervisor restarts a region with the newest role it should have."""
        region, wanted = self.world.regions[name], self.wanted().role(name)
        region.up = True
        if wanted.epoch > region.epoch:
            region.set_role(wanted.role, wanted.epoch)

    def check(self) -> None:
        self.world.check()
        epoch = self.wanted().epoch
        assert epoch >= self.epoch, f"topology epoch {epoch} after {self.epoch}"
        self.epoch = epoch

    def settle(self) -> None:
        """Finish what is unfinished, bring everything back, fail back if needed: then
        every acknowledged write is in the primary's log or saved as divergent."""
        self.world.slow = False
        for _ in range(20):
            if self.idle():
                break
            orchestrate(self.world, self.state_dir, None, {})
        assert self.idle(), "an operation cannot finish without faults"
        for name in REGIONS:
            self.recover(name)
        state = self.wanted()
        for name, wanted in state.roles.items():  # pending role changes, enforced
            region = self.world.regions[name]
            if wanted.to_tell(region.role.value, region.epoch):  # the supervisor's rule
                region.set_role(wanted.role, wanted.epoch)
        if (state.primary, state.standby) not in state.flows:
            failback = Request(OperationKind.FAILBACK, state.standby)
            orchestrate(self.world, self.state_dir, failback, {})
        self.check()
        self.check_converged()

    def check_converged(self) -> None:
        state = self.wanted()
        primary, standby = self.world.regions[state.primary], self.world.regions[state.standby]
        assert state.flows == self.world.flows and list(state.flows) == [
            (primary.name, standby.name)
        ]
        self.world.mirror((primary.name, standby.name), limit=10**9)
        assert standby.logs == primary.logs
        assert (primary.role, standby.role) == (Role.PRIMARY, Role.STANDBY)
        assert all(m == primary.name for m in standby.mirror_of.values())
        for topic, record in self.world.acked:
            saved = any(record in r.diverged[topic].values() for r in self.world.regions.values())
            assert record in primary.logs[topic] or saved, f"acked {topic} {record} lost"


# Seeded, so CI is reproducible; explore wider with `max_examples=4000` and no
# `derandomize` (4000 random programs pass, ~2 min).
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(program=st.lists(actions, min_size=10, max_size=40))
@example(  # a failback aborted at epoch E+1 had planned E+2, the next failover's epoch
    program=[
        ("operate", OperationKind.FAILOVER, "standby", True, {}),
        ("next", {2: "die_before_start"}),
        ("operate", OperationKind.SWITCHOVER, "standby", False, {3: "fail"}),
        ("write", EU, "orders"),
        ("operate", OperationKind.FAILOVER, "standby", True, {}),
    ]
)
@example(  # two failbacks save records diverged from the same offset: both kept
    program=[
        ("write", US, "orders"),
        ("crash", US),
        ("next", {}),
        ("recover", US),
        ("next", {}),
        ("write", US, "orders"),
        ("operate", OperationKind.FAILOVER, "standby", True, {}),
    ]
)
@example(  # an aborted switchover whose unfence failed: the old primary is unfenced later
    program=[
        ("next", {}),
        ("next", {1: "fail", 2: "fail"}),
    ]
)
def test_orchestration_survives_crashes_and_failures(program: list[tuple[Any, ...]]) -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="failover-sim-", dir=_tmpfs()))
    try:
        simulation = Simulation(state_dir)
        try:
            for action in program:
                simulation.act(action)
            simulation.settle()
        finally:
            simulation.reader.close()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _tmpfs() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
