"""The drill workload against a real broker: it records a history the verifier can judge.

A clean run (an idempotent producer, two groups, one of which rebalances as its second member
joins) must come out with no anomaly at all; a run whose broker is SIGKILLed and restarted
mid-way must still lose no acknowledged record, duplicate none and never show two values at
one offset — the broker keeps acked records across SIGKILL and the idempotent producer's
retries are answered, not appended twice.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from chaos.contents import read_topics
from chaos.endpoint import Endpoint
from chaos.findings import Anomaly
from chaos.history import HistoryWriter, read_history
from chaos.invariants import Invariant
from chaos.model import History, SendStatus
from chaos.verifier import Scope, Verdict, verify
from chaos.workload import GroupSpec, ProducerSpec, Workload, WorkloadSpec
from tests.integration.conftest import BrokerProcess
from tests.integration.test_clients import create_topic

TOPIC = "orders"
WAIT_S = 120.0


def _spec(duration_s: float, rate_per_s: float) -> WorkloadSpec:
    run = uuid.uuid4().hex[:6]
    return WorkloadSpec(
        producers=(ProducerSpec(TOPIC, rate_per_s=rate_per_s, max_sends=100_000, keys=8),),
        groups=(
            GroupSpec(f"billing-{run}", (TOPIC,), consumers=2, commit_interval_s=0.3),
            GroupSpec(f"audit-{run}", (TOPIC,), consumers=1, commit_interval_s=0.5),
        ),
        duration_s=duration_s,
        drain_s=30.0,
    )


def _judge(path: Path, *invariants: str) -> tuple[History, Verdict]:
    history = read_history(path)
    scope = Scope(invariants=tuple(Invariant.parse(text) for text in invariants))
    return history, verify(history, scope)


def _finish(workload: Workload, history: HistoryWriter, endpoint: Endpoint) -> None:
    assert workload.wait(WAIT_S), "the workload ends by itself"
    for contents in read_topics(endpoint, [TOPIC]):
        history.contents(contents)


def test_a_clean_run_records_a_history_with_no_anomaly(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    create_topic(broker.bootstrap, TOPIC, partitions=3)
    endpoint = Endpoint("local", broker.bootstrap)
    path = tmp_path / "history.db"
    with HistoryWriter(path) as history:
        workload = Workload(_spec(duration_s=4.0, rate_per_s=150), endpoint, history).start()
        _finish(workload, history, endpoint)

    every = [f"no {anomaly.value}" for anomaly in Anomaly if anomaly is not Anomaly.RPO_LOSS]
    recorded, verdict = _judge(path, *every, "records_acked >= 400", "records_unknown == 0")
    assert verdict.passed, (verdict.invariants, verdict.findings[:10])
    acked = verdict.metrics["records_acked"]
    assert acked == len(recorded.sends), "every send was acknowledged"
    assert len(recorded.polls) >= 2 * len(recorded.sends), "both groups read everything"
    assert {a.group for a in recorded.assignments if a.assigned} == {
        g.group for g in workload.spec.groups
    }
    assert all(not c.error for c in recorded.commits) and recorded.commits
    assert sum(len(c.records) for c in recorded.contents) == acked
    assert recorded.sends[0].value.startswith(f"{history.run_id}:p0:")


def test_a_broker_sigkilled_mid_run_loses_no_acknowledged_record(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    create_topic(broker.bootstrap, TOPIC, partitions=3)
    endpoint = Endpoint("local", broker.bootstrap)
    path = tmp_path / "history.db"
    with HistoryWriter(path) as history:
        workload = Workload(_spec(duration_s=8.0, rate_per_s=300), endpoint, history).start()
        time.sleep(2.5)
        broker.kill()
        killed_ms = time.time_ns() // 1_000_000
        time.sleep(1.0)
        broker.start()
        _finish(workload, history, endpoint)

    recorded, verdict = _judge(
        path, "no lost-write", "no duplicate", "no inconsistent-offsets", "records_acked >= 1000"
    )
    assert verdict.passed, (verdict.invariants, verdict.findings[:10])
    acks = [o.time_ms for o in recorded.outcomes if o.status is SendStatus.OK]
    assert min(acks) < killed_ms < max(acks), "records were acknowledged before and after"
    stored = {r.value for c in recorded.contents for r in c.records}
    assert {o.value for o in recorded.outcomes if o.status is SendStatus.OK} <= stored


def test_clients_told_to_move_finish_with_one_region_and_go_on_in_the_other(
    broker_factory: type[BrokerProcess], tmp_path: Path
) -> None:
    """Two unlinked brokers stand in for regions; west names the topic differently, as
    prefix naming would, so the two logs stay apart."""
    east = broker_factory(tmp_path / "east").start()
    west = broker_factory(tmp_path / "west").start()
    create_topic(east.bootstrap, TOPIC, partitions=2)
    create_topic(west.bootstrap, "east.orders", partitions=2)
    there = Endpoint("west", west.bootstrap, {TOPIC: "east.orders"})
    path = tmp_path / "history.db"
    with HistoryWriter(path) as history:
        start = Endpoint("east", east.bootstrap)
        workload = Workload(_spec(duration_s=5.0, rate_per_s=150), start, history).start()
        time.sleep(2.0)
        assert workload.move(there, timeout_s=30.0)
        _finish(workload, history, there)

    recorded, verdict = _judge(
        path,
        *(f"no {a.value}" for a in Anomaly if a not in (Anomaly.UNSEEN, Anomaly.RPO_LOSS)),
    )
    assert verdict.passed, (verdict.invariants, verdict.findings[:10])
    moved = {e.detail["client"]: e.detail for e in recorded.events}
    clients = [*workload.producers, *workload.consumers]
    assert set(moved) == {c.name for c in clients}
    assert all((d["from"], d["to"]) == ("east", "west") for d in moved.values())
    regions = [s.region for s in recorded.sends]
    assert regions == sorted(regions), "east until the move, west after it"
    assert {(s.region, s.topic) for s in recorded.sends} == {
        ("east", TOPIC),
        ("west", "east.orders"),
    }
    west_polls = {(p.group, p.topic) for p in recorded.polls if p.region == "west"}
    assert west_polls == {(g.group, "east.orders") for g in workload.spec.groups}
    acked_west = {o.value for o in recorded.outcomes if o.status is SendStatus.OK} & {
        s.value for s in recorded.sends if s.region == "west"
    }
    assert acked_west and acked_west <= {p.value for p in recorded.polls if p.region == "west"}
