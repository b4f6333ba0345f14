"""Failover between foreign-style pairs (pure parts): offset-mapped flows (prefix naming, or onto
an external cluster) and external regions whose roles regionlink cannot enforce."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.copy.policy import ReplicationPolicy, should_mirror_topic
from mirror.failover.driver import pair_facts
from mirror.failover.journal import Journal
from mirror.failover.mapped import Mirrored
from mirror.failover.model import (
    OperationKind,
    PairFacts,
    RegionRole,
    Role,
    Step,
    StepEntry,
    StepKind,
    StepState,
    TopologyState,
)
from mirror.failover.planner import Plan, Refusal, Request, plan_operation
from mirror.failover.progress import replay
from mirror.failover.report import build_report
from mirror.offsets.offset_map import PartitionOffsetMap, RunStart
from mirror.runtime.links import flow_between, writes_mirror_topics
from mirror.runtime.topology import TopologyConfig

US, EU, TANSU = "us-east", "eu-west", "tansu"
SWITCHOVER, FAILOVER, FAILBACK = list(OperationKind)
DONE = StepState.DONE

PREFIX = PairFacts(mapped=frozenset({(US, EU), (EU, US)}))
TANSU_STANDBY = PairFacts(external=frozenset({TANSU}), mapped=frozenset({(US, TANSU), (TANSU, US)}))
TANSU_PRIMARY = PairFacts(external=frozenset({TANSU}), mapped=frozenset({(TANSU, US), (US, TANSU)}))


def initial(primary: str = US, standby: str = EU) -> TopologyState:
    return TopologyState.initial(primary, standby).with_reachable((primary, standby))


def after_forced_failover() -> TopologyState:
    return TopologyState(
        epoch=1,
        primary=EU,
        standby=US,
        roles={EU: RegionRole(Role.PRIMARY, 1), US: RegionRole(Role.STANDBY, 1, pending=True)},
        flows={},
        promoted_at_epoch=1,
        reachable=frozenset((US, EU)),
    )


def plan(
    state: TopologyState, kind: OperationKind, to: str, facts: PairFacts, **options: object
) -> Plan:
    result = plan_operation(state, Request(kind, to, **options), facts)  # type: ignore[arg-type]
    assert isinstance(result, Plan), result
    return result


def shape(steps: tuple[Step, ...]) -> list[tuple[str, str, str, int, bool]]:
    return [(s.kind.value, s.region, s.peer, s.epoch, s.enforced) for s in steps]


# -- prefix naming between two regionlink regions --------------------------------------------


def test_a_prefix_switchover_has_the_same_steps_all_enforced() -> None:
    mapped = plan(initial(), SWITCHOVER, EU, PREFIX)
    mirrored = plan(initial(), SWITCHOVER, EU, PairFacts())
    assert shape(mapped.steps) == shape(mirrored.steps)
    assert all(step.enforced and step.note() == "" for step in mapped.steps)


def test_a_prefix_failback_recovers_instead_of_truncating() -> None:
    p = plan(after_forced_failover(), FAILBACK, US, PREFIX, catch_up_timeout_s=90.0)
    assert (p.operation, p.from_region, p.to_region, p.epoch) == (FAILBACK, EU, US, 3)
    assert [(s.kind.value, s.region, s.peer, s.epoch, s.on_failure.value) for s in p.steps] == [
        ("fence_source", US, EU, 2, "abort"),
        ("start_flow", US, EU, 2, "abort"),  # the forward flow, from where it stopped
        ("recover", US, EU, 2, "abort"),
        ("start_flow", EU, US, 2, "abort"),
        ("catch_up", EU, US, 2, "abort"),
        ("fence_source", EU, US, 3, "abort"),
        ("drain", EU, US, 3, "abort"),
        ("sync_groups", EU, US, 3, "abort"),
        ("promote", US, EU, 3, "halt"),
        ("stop_flow", EU, US, 3, "halt"),
        ("demote_topics", EU, US, 3, "halt"),
        ("start_flow", US, EU, 3, "halt"),  # already running: re-stamped at epoch 3
    ]
    recover = p.steps[2]
    assert (recover.since_epoch, recover.timeout_s) == (1, 90.0)
    assert recover.describe() == "recover us-east->eu-west"
    end = p.end_state()
    assert (end.epoch, end.primary, end.standby, dict(end.flows)) == (3, US, EU, {(US, EU): 3})
    assert end.pending() == []
    # Aborted before the switchover back: us-east stays fenced, the flows keep mirroring.
    assert all(p.abort_steps(failed) == () for failed in range(5))
    assert Plan.from_json(p.to_json()) == p


def test_a_mirror_topic_failback_is_unchanged_by_default() -> None:
    kinds = [s.kind for s in plan(after_forced_failover(), FAILBACK, US, PairFacts()).steps]
    assert kinds[:4] == [
        StepKind.FENCE_SOURCE,
        StepKind.DEMOTE_TOPICS,
        StepKind.SAVE_DIVERGENT,
        StepKind.TRUNCATE,
    ]
    assert StepKind.RECOVER not in kinds


# -- external regions ------------------------------------------------------------------------


def test_promoting_an_external_standby_is_not_enforced() -> None:
    p = plan(initial(US, TANSU), SWITCHOVER, TANSU, TANSU_STANDBY)
    assert shape(p.steps) == [
        ("fence_source", US, TANSU, 1, True),
        ("drain", US, TANSU, 1, True),
        ("sync_groups", US, TANSU, 1, True),
        ("promote", TANSU, US, 1, False),
        ("stop_flow", US, TANSU, 1, True),
        ("demote_topics", US, TANSU, 1, True),
        ("start_flow", TANSU, US, 1, True),
    ]
    assert p.steps[3].note() == (
        "not enforced on tansu (external cluster): its clients could always write; "
        "point producers at it yourself"
    )
    data = p.to_json()["steps"][3]
    assert (data["enforced"], data["note"]) == (False, p.steps[3].note())
    assert Plan.from_json(p.to_json()) == p


def test_fencing_an_external_primary_is_not_enforced_and_neither_is_its_abort() -> None:
    p = plan(initial(TANSU, US), SWITCHOVER, US, TANSU_PRIMARY)
    fence = p.steps[0]
    assert (fence.kind, fence.region, fence.enforced) == (StepKind.FENCE_SOURCE, TANSU, False)
    assert fence.note() == "not enforced on tansu (external cluster): stop its producers yourself"
    assert [s.enforced for s in p.steps if s.kind is StepKind.PROMOTE] == [True]  # us-east
    (unfence,) = p.abort_steps(1)
    assert (unfence.kind, unfence.region, unfence.enforced) == (StepKind.UNFENCE, TANSU, False)
    assert unfence.note().endswith("restart its producers yourself if you stopped them")


def test_a_forced_failover_from_an_unreachable_external_primary() -> None:
    state = TopologyState.initial(TANSU, US).with_reachable((US,))
    p = plan(state, FAILOVER, US, TANSU_PRIMARY, force=True)
    assert shape(p.steps) == [
        ("stop_flow", TANSU, US, 1, True),
        ("measure_loss", TANSU, US, 1, True),
        ("promote", US, TANSU, 1, True),
        ("fence_source", TANSU, US, 1, False),
    ]


def test_identity_naming_with_an_external_region_refuses_a_switchover_but_not_a_failover() -> None:
    # identity: us-east -> tansu keeps the map (foreign target), tansu -> us-east would
    # write mirror topics on us-east at Tansu's (translated) offsets.
    facts = PairFacts(external=frozenset({TANSU}), mapped=frozenset({(US, TANSU)}))
    refused = plan_operation(initial(US, TANSU), Request(SWITCHOVER, TANSU), facts)
    assert isinstance(refused, Refusal)
    assert refused.reason == (
        'switchover between us-east and tansu is not supported with naming = "identity" and '
        "tansu an external cluster: tansu->us-east would write mirror topics at tansu's "
        "offsets, but us-east->tansu keeps an offset map, so they differ; use naming = "
        '"prefix" for this pair (a forced failover works, since it starts no reverse flow)'
    )
    forced = plan(initial(US, TANSU), FAILOVER, TANSU, facts, force=True)
    assert [s.kind for s in forced.steps][-1] is StepKind.PROMOTE
    state = TopologyState(
        epoch=1,
        primary=TANSU,
        standby=US,
        roles={TANSU: RegionRole(Role.PRIMARY, 1), US: RegionRole(Role.STANDBY, 1)},
        flows={},
        promoted_at_epoch=1,
        reachable=frozenset((US, TANSU)),
    )
    failback = plan_operation(state, Request(FAILBACK, US), facts)
    assert isinstance(failback, Refusal) and failback.reason.startswith("failback between tansu")


def test_old_journals_read_steps_as_enforced() -> None:
    data = plan(initial(), SWITCHOVER, EU, PREFIX).to_json()
    for step in data["steps"]:
        del step["enforced"], step["note"]
    assert all(step.enforced for step in Plan.from_json(data).steps)


# -- reports ---------------------------------------------------------------------------------


def test_the_report_lists_external_regions_from_the_plan() -> None:
    p = plan(initial(US, TANSU), SWITCHOVER, TANSU, TANSU_STANDBY)
    entries = [StepEntry(i, DONE, 1_000 + i, 1_001 + i) for i in range(len(p.steps))]
    report = build_report(replay(p, entries)).to_json()
    assert (report["outcome"], report["not_enforced"]) == ("done", [TANSU])
    promote = report["steps"][3]
    assert (promote["kind"], promote["enforced"]) == ("promote", False)
    assert promote["note"].startswith("not enforced on tansu (external cluster): ")
    before = build_report(replay(p, [])).to_json()  # known before anything ran
    assert before["not_enforced"] == [TANSU] and before["outcome"] == "running"
    assert build_report(replay(plan(initial(), SWITCHOVER, EU, PREFIX), [])).not_enforced == ()


def test_a_prefix_failback_report_counts_the_recovered_records() -> None:
    p = plan(after_forced_failover(), FAILBACK, US, PREFIX)
    recovered = {
        "partitions": [
            {"topic": "orders", "partition": 0, "first_offset": 32, "last_offset": 51,
             "records": 20, "into": "us-east.orders"},
            {"topic": "orders", "partition": 2, "first_offset": 33, "last_offset": 54,
             "records": 19, "into": "us-east.orders"},  # a marker among them: 19 of 22
        ],
        "records": 39,
    }  # fmt: skip
    entries = [
        StepEntry(i, DONE, 1_000 + i, 1_001 + i, recovered if i == 2 else {})
        for i in range(len(p.steps))
    ]
    report = build_report(replay(p, entries))
    assert report.recovered_records == 39 and report.diverged == ()
    data = report.to_json()
    assert data["recovered_records"] == 39
    assert [(x["partition"], x["records"], x["into"]) for x in data["recovered"]] == [
        (0, 20, "us-east.orders"),
        (2, 19, "us-east.orders"),
    ]
    assert data["loss_manifest"] == [] and data["not_enforced"] == []


def test_a_prefix_forced_failover_keeps_the_resume_positions_a_failback_counts_from(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    journal.acquire("test")
    try:
        state = journal.state(TopologyState.initial(US, EU)).with_reachable((EU,))
        p = plan(state, FAILOVER, EU, PREFIX, force=True)
        operation_id = journal.begin(p)
        detail = {
            "observed_at_ms": 900, "observed_age_s": 0.2, "partitions": [],
            "target_ends": [{"topic": "us-east.orders", "partition": 0, "end_offset": 30}],
            "source_resume": [{"topic": "orders", "partition": 0, "end_offset": 32}],
        }  # fmt: skip
        for step in p.steps:
            journal.step_started(operation_id, step)
            journal.step_done(
                operation_id, step, detail if step.kind is StepKind.MEASURE_LOSS else {}
            )
        journal.finish(operation_id)
        assert journal.promotion_ends(1) == {("us-east.orders", 0): 30}
        assert journal.promotion_ends(1, "source_resume") == {("orders", 0): 32}
    finally:
        journal.release()
        journal.close()


# -- the map arithmetic of drain, loss and recovery ------------------------------------------


def test_records_between_source_offsets_skip_the_gaps() -> None:
    # source 0-9 -> target 0-9; source 10-11 a gap (a marker); source 12-19 -> target 10-17
    offset_map = PartitionOffsetMap([RunStart(0, 0), RunStart(12, 10)])
    state = Mirrored({("orders", 0): 18}, {("orders", 0): offset_map})
    assert state.position(("orders", 0)) == 20
    assert state.records(("orders", 0), 5, 20) == 13  # 5-9 and 12-19
    assert state.records(("orders", 0), 10, 12) == 0
    assert state.records(("orders", 0), 20, 20) == 0
    assert state.position(("orders", 1)) is None and state.records(("orders", 1), 0, 5) == 0
    behind = Mirrored({("orders", 0): 12}, {("orders", 0): offset_map})
    assert behind.position(("orders", 0)) == 14  # target end 12: source 12-13 copied


# -- facts from the topology file ------------------------------------------------------------


def topology(naming: str, standby: dict[str, object]) -> TopologyConfig:
    return TopologyConfig.model_validate(
        {
            "name": "pair",
            "regions": {US: {"brokers": 1}, "standby": standby},
            "flows": [{"source": US, "target": "standby", "naming": naming}],
            "failover": {"primary": US, "standby": "standby"},
        }
    )


@pytest.mark.parametrize(
    ("naming", "standby", "external", "mapped"),
    [
        ("identity", {"brokers": 1}, set(), set()),
        ("prefix", {"brokers": 1}, set(), {(US, "standby"), ("standby", US)}),
        ("identity", {"bootstrap": "127.0.0.1:9092"}, {"standby"}, {(US, "standby")}),
        (
            "prefix",
            {"bootstrap": "127.0.0.1:9092"},
            {"standby"},
            {(US, "standby"), ("standby", US)},
        ),
    ],
)
def test_pair_facts(
    naming: str, standby: dict[str, object], external: set[str], mapped: set[tuple[str, str]]
) -> None:
    file = topology(naming, standby)
    assert pair_facts(file) == PairFacts(frozenset(external), frozenset(mapped))
    assert writes_mirror_topics(file, US, "standby") == ((US, "standby") not in mapped)


def test_the_reverse_prefix_flow_never_sends_a_remote_topic_back() -> None:
    file = topology("prefix", {"brokers": 1})
    reverse = flow_between(file, "standby", US)
    policy = ReplicationPolicy.for_flow(reverse, file.regions)
    assert not should_mirror_topic(f"{US}.orders", reverse, policy)  # came from us-east
    assert should_mirror_topic("orders", reverse, policy)
    assert policy.remote_topic("orders") == "standby.orders"
