"""The failover planner, its state machine and its report (pure): every refusal, every plan."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mirror.failover.model import (
    OperationKind,
    Outcome,
    RegionRole,
    Role,
    Step,
    StepEntry,
    StepState,
    TopologyState,
)
from mirror.failover.planner import Plan, Refusal, Request, plan_operation
from mirror.failover.progress import Finished, Orchestration, RunStep, next_step, replay
from mirror.failover.report import build_report

US, EU = "us-east", "eu-west"
SWITCHOVER, FAILOVER, FAILBACK = list(OperationKind)


def initial(*reachable: str) -> TopologyState:
    return TopologyState.initial(US, EU).with_reachable(reachable or (US, EU))


def after_forced_failover(*reachable: str) -> TopologyState:
    """eu-west promoted by force at epoch 1; us-east wanted fenced, not confirmed."""
    return TopologyState(
        epoch=1,
        primary=EU,
        standby=US,
        roles={EU: RegionRole(Role.PRIMARY, 1), US: RegionRole(Role.STANDBY, 1, pending=True)},
        flows={},
        promoted_at_epoch=1,
        reachable=frozenset(reachable or (US, EU)),
    )


def plan(state: TopologyState, kind: OperationKind, to: str, **options: object) -> Plan:
    result = plan_operation(state, Request(kind, to, **options))  # type: ignore[arg-type]
    assert isinstance(result, Plan), result
    return result


def refusal(state: TopologyState, kind: OperationKind, to: str, force: bool = False) -> str:
    result = plan_operation(state, Request(kind, to, force=force))
    assert isinstance(result, Refusal), result
    return result.reason


def shape(steps: tuple[Step, ...]) -> list[tuple[str, str, str, int, str]]:
    return [(s.kind.value, s.region, s.peer, s.epoch, s.on_failure.value) for s in steps]


# -- refusals -------------------------------------------------------------------------------


def test_unknown_region_is_refused() -> None:
    assert refusal(initial(), SWITCHOVER, "ap-south") == (
        "unknown region 'ap-south': the failover pair is us-east (primary) and eu-west (standby)"
    )


@pytest.mark.parametrize("kind", list(OperationKind))
def test_the_primary_is_refused_as_a_destination(kind: OperationKind) -> None:
    assert refusal(initial(), kind, US, force=True) == "us-east is already primary at epoch 0"
    state = replace(after_forced_failover(), epoch=3)
    assert refusal(state, kind, EU, force=True) == "eu-west is already primary at epoch 3"


def test_nothing_is_planned_while_no_region_is_primary() -> None:
    fenced = replace(initial(), epoch=1, roles={**initial().roles, US: RegionRole(Role.STANDBY, 1)})
    assert refusal(fenced, SWITCHOVER, EU) == (
        "no region is primary at epoch 1 (us-east is fenced): finish the unfinished operation first"
    )


def test_switchover_refusals() -> None:
    assert refusal(after_forced_failover(), SWITCHOVER, US) == (
        "switchover to us-east needs the flow eu-west->us-east running, and it is not "
        "(after a forced failover, use `regionlink failback --to us-east`)"
    )
    assert refusal(initial(EU), SWITCHOVER, EU) == (
        "switchover needs us-east reachable, to fence it and drain what it has; "
        "if it is down, use `regionlink failover --to eu-west --force`"
    )
    assert refusal(initial(US), SWITCHOVER, EU) == "switchover needs eu-west reachable"


def test_failover_refusals() -> None:
    assert refusal(initial(), FAILOVER, EU) == (
        "failover without --force refused: us-east is reachable; "
        "use `regionlink switchover --to eu-west` for a planned move"
    )
    assert refusal(initial(EU), FAILOVER, EU) == (
        "failover without --force refused: promoting eu-west loses what us-east has not "
        "mirrored yet; add --force to accept that (the loss is reported)"
    )
    assert refusal(after_forced_failover(US), FAILOVER, US, force=True) == (
        "failover to us-east needs the flow eu-west->us-east, which is not running: "
        "us-east holds no current copy of eu-west's writes"
    )
    assert refusal(initial(US), FAILOVER, EU, force=True) == "failover needs eu-west reachable"


def test_failback_refusals() -> None:
    assert refusal(initial(), FAILBACK, EU) == (
        "us-east already mirrors to eu-west, so there is nothing to fail back; "
        "use `regionlink switchover --to eu-west` for a planned move"
    )
    assert refusal(after_forced_failover(EU), FAILBACK, US) == "failback needs us-east reachable"
    assert refusal(after_forced_failover(US), FAILBACK, US) == "failback needs eu-west reachable"


# -- plans ----------------------------------------------------------------------------------


def test_switchover_plan() -> None:
    p = plan(initial(), SWITCHOVER, EU, drain_timeout_s=12.5)
    assert (p.operation, p.from_region, p.to_region, p.epoch) == (SWITCHOVER, US, EU, 1)
    assert shape(p.steps) == [
        ("fence_source", US, EU, 1, "abort"),
        ("drain", US, EU, 1, "abort"),
        ("sync_groups", US, EU, 1, "abort"),
        ("promote", EU, US, 1, "halt"),
        ("stop_flow", US, EU, 1, "halt"),
        ("demote_topics", US, EU, 1, "halt"),
        ("start_flow", EU, US, 1, "halt"),
    ]
    assert p.steps[1].timeout_s == 12.5
    end = p.end_state()
    assert (end.epoch, end.primary, end.standby, dict(end.flows)) == (1, EU, US, {(EU, US): 1})
    assert end.roles == {EU: RegionRole(Role.PRIMARY, 1), US: RegionRole(Role.STANDBY, 1)}
    assert p.start.reachable == frozenset()  # not journaled


def test_forced_failover_plan_with_the_primary_down() -> None:
    p = plan(initial(EU), FAILOVER, EU, force=True)
    assert shape(p.steps) == [
        ("stop_flow", US, EU, 1, "abort"),
        ("measure_loss", US, EU, 1, "abort"),
        ("promote", EU, US, 1, "halt"),
        ("fence_source", US, EU, 1, "continue"),
    ]
    end = p.end_state()
    assert (end.primary, end.standby, dict(end.flows), end.promoted_at_epoch) == (EU, US, {}, 1)
    assert end.role(US) == RegionRole(Role.STANDBY, 1)


def test_forced_failover_with_the_primary_reachable_fences_it_first() -> None:
    p = plan(initial(), FAILOVER, EU, force=True)
    assert shape(p.steps) == [
        ("fence_source", US, EU, 1, "abort"),
        ("stop_flow", US, EU, 1, "abort"),
        ("measure_loss", US, EU, 1, "abort"),
        ("promote", EU, US, 1, "halt"),
    ]


def test_failback_plan_ends_with_a_switchover_back() -> None:
    p = plan(after_forced_failover(), FAILBACK, US, catch_up_timeout_s=90.0)
    assert (p.operation, p.from_region, p.to_region, p.epoch) == (FAILBACK, EU, US, 3)
    assert shape(p.steps) == [
        ("fence_source", US, EU, 2, "abort"),
        ("demote_topics", US, EU, 2, "abort"),
        ("save_divergent", US, EU, 2, "abort"),
        ("truncate", US, EU, 2, "abort"),
        ("start_flow", EU, US, 2, "abort"),
        ("catch_up", EU, US, 2, "abort"),
        ("fence_source", EU, US, 3, "abort"),
        ("drain", EU, US, 3, "abort"),
        ("sync_groups", EU, US, 3, "abort"),
        ("promote", US, EU, 3, "halt"),
        ("stop_flow", EU, US, 3, "halt"),
        ("demote_topics", EU, US, 3, "halt"),
        ("start_flow", US, EU, 3, "halt"),
    ]
    assert p.steps[2].since_epoch == p.steps[3].since_epoch == 1
    assert p.steps[5].timeout_s == 90.0
    end = p.end_state()
    assert (end.epoch, end.primary, end.standby, dict(end.flows)) == (3, US, EU, {(US, EU): 3})
    assert end.pending() == []


def test_plan_json_round_trip() -> None:
    p = plan(after_forced_failover(), FAILBACK, US)
    assert Plan.from_json(p.to_json()) == p


# -- abort plans ----------------------------------------------------------------------------


def test_switchover_aborts_by_unfencing_the_old_primary() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    for failed in (0, 1, 2):
        assert shape(p.abort_steps(failed)) == [("unfence", US, EU, 1, "continue")]
        assert p.abort_steps(failed)[0].index == len(p.steps)
    with pytest.raises(AssertionError):
        p.abort_steps(3)  # from the promotion on, a failure halts


def test_forced_failover_aborts_by_restarting_the_flow_at_its_epoch() -> None:
    down = plan(initial(EU), FAILOVER, EU, force=True)
    assert shape(down.abort_steps(0)) == [("start_flow", US, EU, 0, "continue")]
    assert shape(down.abort_steps(1)) == [("start_flow", US, EU, 0, "continue")]
    up = plan(initial(), FAILOVER, EU, force=True)
    assert shape(up.abort_steps(0)) == [("unfence", US, EU, 1, "continue")]
    assert shape(up.abort_steps(2)) == [
        ("start_flow", US, EU, 0, "continue"),
        ("unfence", US, EU, 1, "continue"),
    ]


def test_failback_aborts_keep_the_new_primary() -> None:
    p = plan(after_forced_failover(), FAILBACK, US)
    for failed in range(6):  # us-east stays fenced; a started flow keeps mirroring
        assert p.abort_steps(failed) == ()
    for failed in (6, 7, 8):
        assert shape(p.abort_steps(failed)) == [("unfence", EU, US, 3, "continue")]


# -- the state machine ----------------------------------------------------------------------


def run(machine: Orchestration, *outcomes: StepState, error: str = "boom") -> None:
    """Start and end the next steps with these outcomes."""
    for outcome in outcomes:
        decision = machine.decision
        assert isinstance(decision, RunStep), decision
        index = decision.step.index
        machine.feed(StepEntry(index, StepState.STARTED))
        detail = {"error": error} if outcome is StepState.FAILED else {}
        machine.feed(StepEntry(index, outcome, detail=detail))


DONE, FAILED = StepState.DONE, StepState.FAILED


def test_a_switchover_runs_its_steps_in_order() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    machine = Orchestration(p)
    for step in p.steps:
        assert machine.decision == RunStep(step)
        run(machine, DONE)
    assert machine.decision == Finished(Outcome.DONE, "")
    assert machine.state == p.end_state()


def test_resume_skips_done_steps_and_reruns_a_started_one() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    entries = [StepEntry(0, DONE), StepEntry(1, DONE), StepEntry(2, StepState.STARTED)]
    assert next_step(p, entries) == RunStep(p.steps[2])
    assert next_step(p, entries[:2]) == RunStep(p.steps[2])
    assert next_step(p, []) == RunStep(p.steps[0])


def test_a_started_step_takes_its_epoch_for_good() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    machine = replay(p, [StepEntry(0, StepState.STARTED)])
    assert machine.state.epoch == 1
    assert machine.state.role(US) == RegionRole(Role.PRIMARY, 0)  # not known fenced yet


def test_a_drain_timeout_aborts_and_unfences() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    machine = Orchestration(p)
    run(machine, DONE, FAILED, error="lag 12 records after 30 s")
    assert machine.decision == RunStep(p.abort_steps(1)[0])
    run(machine, DONE)
    assert machine.decision == Finished(
        Outcome.ABORTED,
        "drain us-east->eu-west failed: lag 12 records after 30 s",
        skipped=p.steps[2:],
    )
    state = machine.state
    assert (state.epoch, state.primary, dict(state.flows)) == (1, US, {(US, EU): 0})
    assert state.roles == {US: RegionRole(Role.PRIMARY, 1), EU: RegionRole(Role.STANDBY, 0)}


def test_an_aborted_operation_replays_with_its_skipped_steps() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    entries = [
        StepEntry(0, DONE),
        StepEntry(1, FAILED, detail={"error": "timeout"}),
        *(StepEntry(i, StepState.SKIPPED) for i in range(2, 7)),
        StepEntry(7, DONE),
    ]
    decision = next_step(p, entries)
    assert isinstance(decision, Finished) and decision.outcome is Outcome.ABORTED


def test_a_failed_unfence_leaves_the_old_primary_pending() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    machine = Orchestration(p)
    run(machine, FAILED, FAILED)
    decision = machine.decision
    assert isinstance(decision, Finished) and decision.outcome is Outcome.ABORTED
    assert machine.state.role(US) == RegionRole(Role.PRIMARY, 1, pending=True)


def test_a_failure_past_the_promotion_halts_and_a_rerun_resumes() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    machine = Orchestration(p)
    run(machine, DONE, DONE, DONE, DONE, FAILED, error="supervisor unreachable")
    assert machine.decision == Finished(
        Outcome.FAILED,
        "stop_flow us-east->eu-west failed: supervisor unreachable",
        retry=p.steps[4],
    )
    assert machine.state.primary == EU  # promoted: there is no going back
    machine.feed(StepEntry(4, StepState.STARTED))
    assert machine.decision == RunStep(p.steps[4])
    run(machine, DONE, DONE, DONE)
    assert machine.decision == Finished(Outcome.DONE, "")


def test_a_best_effort_fence_that_fails_stays_pending() -> None:
    p = plan(initial(EU), FAILOVER, EU, force=True)
    machine = Orchestration(p)
    run(machine, DONE, DONE, DONE, FAILED, error="us-east unreachable")
    assert machine.decision == Finished(Outcome.DONE, "")
    assert machine.state.pending() == [US]
    assert machine.state.role(US) == RegionRole(Role.STANDBY, 1, pending=True)


def test_events_out_of_order_are_refused() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    machine = Orchestration(p)
    with pytest.raises(ValueError, match="step 1 cannot be started"):
        machine.feed(StepEntry(1, StepState.STARTED))
    run(machine, DONE)
    with pytest.raises(ValueError, match="step 0 cannot be started"):
        machine.feed(StepEntry(0, StepState.STARTED))  # never repeat a done step
    with pytest.raises(ValueError, match="step 3 cannot be skipped"):
        machine.feed(StepEntry(3, StepState.SKIPPED))


# -- the report -----------------------------------------------------------------------------


LOSS = {
    "observed_at_ms": 10_000,
    "observed_age_s": 2.5,
    "partitions": [
        {"topic": "orders", "partition": 0, "first_offset": 40, "last_offset": 49,
         "records": 10, "first_timestamp_ms": 7_000, "last_timestamp_ms": 9_500},
        {"topic": "orders", "partition": 1, "first_offset": 5, "last_offset": 6, "records": 2},
    ],
    "target_ends": [{"topic": "orders", "partition": 0, "end_offset": 40}],
}  # fmt: skip


def test_forced_failover_report() -> None:
    p = plan(initial(EU), FAILOVER, EU, force=True)
    entries = [
        StepEntry(0, DONE, 1_000, 1_100),
        StepEntry(1, DONE, 1_100, 1_300, LOSS),
        StepEntry(2, DONE, 1_300, 2_000),
        StepEntry(3, FAILED, 2_000, 2_100, {"error": "us-east unreachable"}),
    ]
    report = build_report(replay(p, entries)).to_json()
    assert {k: report[k] for k in ("operation", "from", "to", "epoch", "outcome")} == {
        "operation": "failover", "from": US, "to": EU, "epoch": 1, "outcome": "done",
    }  # fmt: skip
    assert report["rpo_records"] == 12
    assert report["rpo_seconds"] == 3.0  # the oldest lost record, 3 s before the observation
    assert report["rto_seconds"] == 1.0
    assert report["observed_age_s"] == 2.5
    assert [(x["partition"], x["first_offset"], x["records"]) for x in report["loss_manifest"]] == [
        (0, 40, 10),
        (1, 5, 2),
    ]
    assert report["pending"] == [US]
    assert [s["state"] for s in report["steps"]] == ["done", "done", "done", "failed"]
    assert report["steps"][3]["error"] == "us-east unreachable"


def test_switchover_report_while_running() -> None:
    p = plan(initial(), SWITCHOVER, EU)
    report = build_report(replay(p, [StepEntry(0, DONE, 5_000, 5_050)]))
    assert (report.outcome, report.rpo_records, report.rpo_seconds) == (Outcome.RUNNING, 0, 0.0)
    assert report.rto_seconds is None and report.observed_age_s is None
    assert [t.state for t in report.steps] == [DONE] + [None] * 6
