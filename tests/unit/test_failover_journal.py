"""The failover journal on a real sqlite file: operations, steps, state, the orchestrator lock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.failover.journal import Journal, LockHeld, OperationPending
from mirror.failover.model import OperationKind, Outcome, StepState, TopologyState
from mirror.failover.planner import Plan, Request, plan_operation
from mirror.failover.progress import Finished, RunStep

US, EU = "us-east", "eu-west"
INITIAL = TopologyState.initial(US, EU)


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        self.now_ms += 10
        return self.now_ms


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path, clock_ms=Clock())
    journal.acquire("test")
    yield journal
    journal.close()


def new_plan(journal: Journal, kind: OperationKind, to: str, *reachable: str) -> Plan:
    state = journal.state(INITIAL).with_reachable(reachable or (US, EU))
    plan = plan_operation(state, Request(kind, to, force=True))
    assert isinstance(plan, Plan), plan
    return plan


def run_steps(journal: Journal, operation_id: int, count: int) -> None:
    for _ in range(count):
        decision = journal.replay(operation_id).decision
        assert isinstance(decision, RunStep), decision
        journal.step_started(operation_id, decision.step)
        journal.step_done(operation_id, decision.step, {"figure": decision.step.index})


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_database_is_in_wal_mode_next_to_state_db(journal: Journal, tmp_path: Path) -> None:
    assert (tmp_path / "failover.db").exists()
    assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_switchover_journaled_step_by_step(journal: Journal) -> None:
    plan = new_plan(journal, OperationKind.SWITCHOVER, EU)
    operation_id = journal.begin(plan)
    assert journal.holder() is not None and journal.holder().operation_id == operation_id  # type: ignore[union-attr]
    run_steps(journal, operation_id, len(plan.steps))
    report = journal.finish(operation_id)
    assert report.outcome is Outcome.DONE and report.to_json()["to"] == EU
    record = journal.operation(operation_id)
    assert (record.state, record.epoch, record.plan) == (Outcome.DONE, 1, plan)
    assert record.finished_ms is not None and journal.unfinished() is None
    entries = journal.entries(operation_id)
    assert [(e.state, e.attempts, e.detail) for e in entries] == [
        (StepState.DONE, 1, {"figure": i}) for i in range(len(plan.steps))
    ]
    assert all(e.started_ms is not None and e.finished_ms is not None for e in entries)
    assert journal.state(INITIAL) == plan.end_state()
    stored = journal.db.execute("SELECT report FROM operations").fetchone()[0]
    assert json.loads(stored) == report.to_json()


def test_state_folds_every_operation(journal: Journal) -> None:
    first = journal.begin(new_plan(journal, OperationKind.SWITCHOVER, EU))
    run_steps(journal, first, 7)
    journal.finish(first)
    back = new_plan(journal, OperationKind.SWITCHOVER, US)
    assert back.epoch == 2
    second = journal.begin(back)
    run_steps(journal, second, 2)  # fenced eu-west, drained: still eu-west's topology
    state = journal.state(INITIAL)
    assert (state.epoch, state.primary, state.role(EU).role.value) == (2, EU, "standby")
    assert [r.id for r in journal.history()] == [second, first]
    assert journal.operation_at_epoch(1).id == first  # type: ignore[union-attr]
    assert journal.operation_at_epoch(3) is None


def test_an_aborted_operation_records_its_skipped_steps(journal: Journal) -> None:
    plan = new_plan(journal, OperationKind.SWITCHOVER, EU)
    operation_id = journal.begin(plan)
    run_steps(journal, operation_id, 1)
    journal.step_started(operation_id, plan.steps[1])
    journal.step_failed(operation_id, plan.steps[1], "lag 3 records after 30 s", {"lag": 3})
    unfence = plan.abort_steps(1)[0]
    assert journal.replay(operation_id).decision == RunStep(unfence)
    journal.step_started(operation_id, unfence)
    journal.step_done(operation_id, unfence)
    report = journal.finish(operation_id)
    assert report.outcome is Outcome.ABORTED
    assert report.reason == "drain us-east->eu-west failed: lag 3 records after 30 s"
    states = [e.state.value for e in journal.entries(operation_id)]
    assert states == ["done", "failed"] + ["skipped"] * 5 + ["done"]
    assert journal.entries(operation_id)[1].detail == {
        "lag": 3,
        "error": "lag 3 records after 30 s",
    }
    assert journal.report(operation_id) == report  # replayed with its skipped rows
    assert journal.state(INITIAL).primary == US


def test_a_halted_operation_is_resumed_by_rerunning_its_step(journal: Journal) -> None:
    plan = new_plan(journal, OperationKind.SWITCHOVER, EU)
    operation_id = journal.begin(plan)
    run_steps(journal, operation_id, 4)
    journal.step_started(operation_id, plan.steps[4])
    journal.step_failed(operation_id, plan.steps[4], "supervisor gone")
    assert journal.finish(operation_id).outcome is Outcome.FAILED
    assert journal.unfinished().state is Outcome.FAILED  # type: ignore[union-attr]
    with pytest.raises(OperationPending, match=r"operation 1 \(switchover us-east -> eu-west\)"):
        journal.begin(plan)
    decision = journal.replay(operation_id).decision
    assert isinstance(decision, Finished) and decision.retry == plan.steps[4]
    journal.step_started(operation_id, plan.steps[4])
    assert journal.operation(operation_id).state is Outcome.RUNNING
    run_steps(journal, operation_id, 0)
    journal.step_done(operation_id, plan.steps[4])
    run_steps(journal, operation_id, 2)
    assert journal.finish(operation_id).outcome is Outcome.DONE
    assert journal.entries(operation_id)[4].attempts == 2


def test_writes_out_of_order_are_refused_and_leave_nothing(journal: Journal) -> None:
    plan = new_plan(journal, OperationKind.SWITCHOVER, EU)
    operation_id = journal.begin(plan)
    with pytest.raises(ValueError, match="step 2 cannot be started"):
        journal.step_started(operation_id, plan.steps[2])
    run_steps(journal, operation_id, 1)
    with pytest.raises(ValueError, match="step 0 cannot be started"):
        journal.step_started(operation_id, plan.steps[0])
    with pytest.raises(ValueError, match="not finished"):
        journal.finish(operation_id)
    assert [e.index for e in journal.entries(operation_id)] == [0]


def test_a_forced_failover_keeps_the_ends_a_failback_needs(journal: Journal) -> None:
    plan = new_plan(journal, OperationKind.FAILOVER, EU, EU)
    operation_id = journal.begin(plan)
    run_steps(journal, operation_id, 1)
    ends = [{"topic": "orders", "partition": 0, "end_offset": 40}]
    detail = {"observed_at_ms": 900, "observed_age_s": 0.2, "partitions": [], "target_ends": ends}
    journal.step_started(operation_id, plan.steps[1])
    journal.step_done(operation_id, plan.steps[1], detail)
    run_steps(journal, operation_id, 1)
    journal.step_started(operation_id, plan.steps[3])
    journal.step_failed(operation_id, plan.steps[3], "us-east unreachable")
    report = journal.finish(operation_id)
    assert (report.outcome, report.pending, report.observed_age_s) == (Outcome.DONE, (US,), 0.2)
    assert journal.promotion_ends(1) == {("orders", 0): 40}
    failback = new_plan(journal, OperationKind.FAILBACK, US)
    assert failback.steps[2].since_epoch == 1 and failback.epoch == 3


def test_the_rerun_start_time_is_the_first_one(journal: Journal) -> None:
    plan = new_plan(journal, OperationKind.SWITCHOVER, EU)
    operation_id = journal.begin(plan)
    journal.step_started(operation_id, plan.steps[0])
    first = journal.entries(operation_id)[0].started_ms
    journal.step_started(operation_id, plan.steps[0])  # the rerun after a crash
    entry = journal.entries(operation_id)[0]
    assert (entry.state, entry.started_ms, entry.attempts) == (StepState.STARTED, first, 2)


# -- the orchestrator lock ------------------------------------------------------------------


def test_writes_need_the_lock(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    plan = plan_operation(INITIAL.with_reachable((US, EU)), Request(OperationKind.SWITCHOVER, EU))
    assert isinstance(plan, Plan)
    with pytest.raises(LockHeld, match="does not hold the failover lock"):
        journal.begin(plan)
    with journal.locked("switchover --to eu-west"):
        journal.begin(plan)
    assert journal.holder() is None


def test_a_dead_holder_is_taken_over_and_its_operation_resumed(tmp_path: Path) -> None:
    crashed = Journal(tmp_path, pid=dead_pid())
    crashed.acquire("switchover --to eu-west")
    plan = new_plan(crashed, OperationKind.SWITCHOVER, EU)
    operation_id = crashed.begin(plan)
    run_steps(crashed, operation_id, 2)
    crashed.step_started(operation_id, plan.steps[2])  # killed while syncing groups
    crashed.close()

    rerun = Journal(tmp_path)
    rerun.acquire("switchover --to eu-west")
    assert rerun.holder().pid == rerun.pid  # type: ignore[union-attr]
    unfinished = rerun.unfinished()
    assert unfinished is not None and unfinished.id == operation_id
    assert rerun.replay(operation_id).decision == RunStep(plan.steps[2])
    run_steps(rerun, operation_id, 5)
    assert rerun.finish(operation_id).outcome is Outcome.DONE


def test_a_live_holder_refuses_a_second_orchestrator(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from mirror.failover.journal import Journal
        journal = Journal(Path({str(tmp_path)!r}))
        journal.acquire("failover --to eu-west --force")
        journal.db.execute("UPDATE lock SET operation_id = 7")
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        journal = Journal(tmp_path)
        with pytest.raises(LockHeld) as refused:
            journal.acquire("switchover --to eu-west")
        message = str(refused.value)
        assert f"pid {child.pid} (failover --to eu-west --force, operation 7)" in message
        assert message.startswith(f"another orchestrator holds the failover lock of {tmp_path}")
        child.send_signal(signal.SIGKILL)
        child.wait()
        journal.acquire("switchover --to eu-west")  # its holder is dead now
        assert journal.holder().pid == journal.pid  # type: ignore[union-attr]
    finally:
        child.kill()
        child.wait()
