"""The controller's pure decisions: placement, fencing and leader moves, unfencing,
controlled shutdown, AlterPartition checks, producer-id blocks and topic configs."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from broker.kraft.controller import logic
from broker.kraft.controller.config import PolicyConfig
from broker.kraft.metadata import (
    NO_LEADER,
    ChangePartition,
    FenceBroker,
    MetadataImage,
    MetadataRecord,
    PartitionInfo,
    ProducerIdsBlock,
    RegisterBroker,
    SetConfig,
    UnfenceBroker,
    effective_topic_configs,
    topic_resource,
)
from broker.protocol.errors import ErrorCode

POLICY = PolicyConfig()


def apply(image: MetadataImage, records: list[MetadataRecord] | tuple[MetadataRecord, ...]) -> None:
    for record in records:
        image.apply(record)


def cluster(brokers: int = 3, fenced: tuple[int, ...] = ()) -> MetadataImage:
    image = MetadataImage()
    for b in range(1, brokers + 1):
        image.apply(RegisterBroker(b, f"inc-{b}", "127.0.0.1", 9000 + b, 10 + b))
        if b not in fenced:
            image.apply(UnfenceBroker(b, 10 + b))
    return image


_counter = itertools.count()


def ids() -> Callable[[], str]:
    return lambda: f"tid-{next(_counter)}"


def create(image: MetadataImage, *requests: logic.TopicRequest) -> list[logic.TopicOutcome]:
    outcomes, records = logic.create_topics(image, requests, POLICY, ids())
    apply(image, records)
    return outcomes


def parts(image: MetadataImage, name: str) -> list[PartitionInfo]:
    topic = image.topic(name)
    assert topic is not None
    return [image.partitions(topic.topic_id)[i] for i in sorted(image.partitions(topic.topic_id))]


# ----------------------------------------------------------------------------- topics


def test_create_topic_places_round_robin_with_rotating_start() -> None:
    image = cluster(3)
    assert create(image, logic.TopicRequest("a", 4, 2)) == [logic.TopicOutcome("a", 0)]
    assert [p.replicas for p in parts(image, "a")] == [(1, 2), (2, 3), (3, 1), (1, 2)]
    assert all(p.leader == p.replicas[0] and p.isr == p.replicas for p in parts(image, "a"))
    create(image, logic.TopicRequest("b", 1, 3))  # the start moved on by 4 partitions
    assert [p.replicas for p in parts(image, "b")] == [(2, 3, 1)]


def test_create_topic_defaults_and_only_unfenced_brokers() -> None:
    image = cluster(4, fenced=(2,))
    create(image, logic.TopicRequest("a"))  # 1 partition, RF min(3, 3 unfenced)
    (p,) = parts(image, "a")
    assert len(p.replicas) == 3 and 2 not in p.replicas
    image2 = cluster(2)
    create(image2, logic.TopicRequest("a"))
    assert len(parts(image2, "a")[0].replicas) == 2


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (logic.TopicRequest("bad name"), ErrorCode.invalid_topic_exception),
        (logic.TopicRequest("."), ErrorCode.invalid_topic_exception),
        (logic.TopicRequest(".."), ErrorCode.invalid_topic_exception),
        (logic.TopicRequest("x" * 250), ErrorCode.invalid_topic_exception),
        (logic.TopicRequest("exists"), ErrorCode.topic_already_exists),
        (logic.TopicRequest("a", 0), ErrorCode.invalid_partitions),
        (logic.TopicRequest("a", -2), ErrorCode.invalid_partitions),
        (logic.TopicRequest("a", 1, 4), ErrorCode.invalid_replication_factor),
        (logic.TopicRequest("a", 1, 0), ErrorCode.invalid_replication_factor),
        (logic.TopicRequest("a", 1, 1, {"k": 5}), ErrorCode.invalid_config),
    ],
)
def test_create_topic_errors(request_: logic.TopicRequest, code: ErrorCode) -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("exists"))
    outcomes, records = logic.create_topics(image, [request_], POLICY, ids())
    assert [o.error_code for o in outcomes] == [code] and records == []


def test_create_topics_some_fail_and_duplicates_are_rejected() -> None:
    image = cluster(3)
    outcomes = create(
        image,
        logic.TopicRequest("ok", 2, 1, {"retention.ms": "5"}),
        logic.TopicRequest("dup"),
        logic.TopicRequest("dup"),
        logic.TopicRequest("x/y"),
    )
    assert [o.error_code for o in outcomes] == [0, 42, 42, 17]
    assert image.topic("ok") is not None
    assert image.topic("dup") is None
    assert effective_topic_configs(image, "ok") == {"retention.ms": "5"}


def test_no_unfenced_brokers_means_no_topics() -> None:
    image = cluster(3, fenced=(1, 2, 3))
    outcomes, _ = logic.create_topics(image, [logic.TopicRequest("a")], POLICY, ids())
    assert outcomes[0].error_code == ErrorCode.invalid_replication_factor


def test_delete_topic_also_deletes_its_config_overrides() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 1, 1))
    topic = image.topic("a")
    assert topic is not None
    decision = logic.set_topic_configs(image, "a", {"cleanup.policy": "compact"})
    assert not isinstance(decision, logic.Rejected)
    apply(image, decision)
    outcomes, records = logic.delete_topics(image, ["a", "missing"])
    assert [o.error_code for o in outcomes] == [0, ErrorCode.unknown_topic_or_partition]
    apply(image, records)
    assert image.topic("a") is None and image.config_resources == ()


def test_create_partitions_grows_with_same_rf() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 1, 2))
    decision = logic.create_partitions(image, "a", 3)
    assert not isinstance(decision, logic.Rejected)
    apply(image, decision)
    assert [len(p.replicas) for p in parts(image, "a")] == [2, 2, 2]
    assert [p.partition for p in parts(image, "a")] == [0, 1, 2]
    for name, total, code in [
        ("a", 3, ErrorCode.invalid_partitions),
        ("a", 2, ErrorCode.invalid_partitions),
        ("nope", 5, ErrorCode.unknown_topic_or_partition),
    ]:
        rejected = logic.create_partitions(image, name, total)
        assert isinstance(rejected, logic.Rejected) and rejected.error_code == code
    apply(image, logic.fence_records(image, 1))
    apply(image, logic.fence_records(image, 2))
    rejected = logic.create_partitions(image, "a", 4)
    assert isinstance(rejected, logic.Rejected)
    assert rejected.error_code == ErrorCode.invalid_replication_factor


def test_set_topic_configs_replaces_the_override_set() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 1, 1, {"retention.ms": "1", "segment.bytes": "9"}))
    topic = image.topic("a")
    assert topic is not None
    first = logic.set_topic_configs(image, "a", {"retention.ms": "2", "x": "1"})
    assert not isinstance(first, logic.Rejected)
    apply(image, first)
    assert effective_topic_configs(image, topic) == {
        "retention.ms": "2",
        "segment.bytes": "9",
        "x": "1",
    }
    second = logic.set_topic_configs(image, "a", {"retention.ms": "2"})
    assert second == [SetConfig(topic_resource(topic.topic_id), "x", None)]
    apply(image, second)
    assert dict(image.configs(topic_resource(topic.topic_id))) == {"retention.ms": "2"}
    bad = logic.set_topic_configs(image, "a", {"k": 1})
    assert isinstance(bad, logic.Rejected) and bad.error_code == ErrorCode.invalid_config
    missing = logic.set_topic_configs(image, "b", {})
    assert isinstance(missing, logic.Rejected)
    assert missing.error_code == ErrorCode.unknown_topic_or_partition


# ----------------------------------------------------------------------------- brokers


def test_register_uses_the_index_as_epoch_and_starts_fenced() -> None:
    image = MetadataImage()
    decision = logic.register_broker(image, 7, "inc", "h", 9092, epoch=42)
    assert decision == [RegisterBroker(7, "inc", "h", 9092, 42)]
    apply(image, decision)
    broker = image.broker(7)
    assert broker is not None and broker.fenced and broker.epoch == 42
    assert isinstance(logic.register_broker(image, 7, "inc", "h", 0, 50), logic.Rejected)
    assert isinstance(logic.register_broker(image, 7, "inc", "h", 9092, 42), logic.Rejected)


def test_register_records_named_listeners_and_refuses_bad_ones() -> None:
    image = MetadataImage()
    listeners = {"from-us-east": "127.0.0.1:9300"}
    decision = logic.register_broker(image, 7, "inc", "h", 9092, 42, listeners)
    assert decision == [RegisterBroker(7, "inc", "h", 9092, 42, listeners)]
    bad = logic.register_broker(image, 7, "inc", "h", 9092, 42, {"from-us-east": "9300"})
    assert isinstance(bad, logic.Rejected) and bad.error_code == ErrorCode.invalid_request


def test_reregistration_moves_the_old_incarnations_leaderships() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 1, 3))
    decision = logic.register_broker(image, 1, "inc-new", "h", 9001, 100)
    assert not isinstance(decision, logic.Rejected)
    apply(image, decision)
    (p,) = parts(image, "a")
    assert p.leader == 2 and p.isr == (2, 3) and p.leader_epoch == 1


def test_heartbeat_unfences_once_caught_up_and_elects_leaderless() -> None:
    image = cluster(2)
    create(image, logic.TopicRequest("a", 1, 2))
    apply(image, logic.fence_records(image, 2))
    apply(image, logic.fence_records(image, 1))  # last ISR member: stays, leader -1
    (p,) = parts(image, "a")
    assert p.leader == NO_LEADER and p.isr == (1,)
    behind = logic.heartbeat(image, 1, 11, metadata_offset=10, want_shutdown=False)
    assert behind == logic.HeartbeatDecision((), fenced=True, shutdown_ok=False)
    caught_up = logic.heartbeat(image, 1, 11, metadata_offset=11, want_shutdown=False)
    assert isinstance(caught_up, logic.HeartbeatDecision) and not caught_up.fenced
    apply(image, caught_up.records)
    (p,) = parts(image, "a")
    assert p.leader == 1 and p.leader_epoch == 2 and 1 in image.unfenced_brokers()
    again = logic.heartbeat(image, 1, 11, metadata_offset=11, want_shutdown=False)
    assert again == logic.HeartbeatDecision((), fenced=False, shutdown_ok=False)


def test_heartbeat_with_stale_or_unknown_epoch() -> None:
    image = cluster(1)
    for broker, epoch in ((1, 10), (1, 12), (9, 1)):
        rejected = logic.heartbeat(image, broker, epoch, 100, want_shutdown=False)
        assert isinstance(rejected, logic.Rejected)
        assert rejected.error_code == ErrorCode.stale_broker_epoch


def test_fencing_moves_leaders_and_shrinks_isrs_but_never_empties_them() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 3, 3), logic.TopicRequest("solo", 1, 1))
    records = logic.fence_records(image, 1)
    assert records[0] == FenceBroker(1, 11)
    apply(image, records)
    a = parts(image, "a")
    assert [p.leader for p in a] == [2, 2, 3]
    assert all(1 not in p.isr for p in a)
    assert [p.leader_epoch for p in a] == [1, 0, 0]  # only a moved leader bumps it
    assert all(p.partition_epoch == 1 for p in a)
    (solo,) = parts(image, "solo")
    assert solo.replicas == (1,)  # placed at start 3 = broker 1
    assert solo.leader == NO_LEADER and solo.isr == (1,)


def test_leader_moves_only_to_unfenced_isr_members() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 1, 3))
    apply(image, logic.fence_records(image, 2))  # ISR (1, 3)
    apply(image, [FenceBroker(3, 13)])  # fenced but still in the ISR
    apply(image, logic.fence_records(image, 1))
    (p,) = parts(image, "a")
    assert p.leader == NO_LEADER and p.isr == (3,)


def test_controlled_shutdown_moves_work_away_then_reports_ok() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 3, 2))
    decision = logic.heartbeat(image, 2, 12, 1000, want_shutdown=True)
    assert isinstance(decision, logic.HeartbeatDecision)
    assert decision.fenced and decision.shutdown_ok and decision.records[0] == FenceBroker(2, 12)
    apply(image, decision.records)
    assert all(p.leader != 2 and 2 not in p.isr for p in parts(image, "a"))
    repeat = logic.heartbeat(image, 2, 12, 1000, want_shutdown=True)
    assert repeat == logic.HeartbeatDecision((), fenced=True, shutdown_ok=True)


def test_expired_sessions() -> None:
    image = cluster(3, fenced=(3,))
    seen = {1: 1_000, 2: 5_000, 3: 0}
    assert logic.expired_sessions(image, seen, 10_000, 9_000) == [1]
    assert logic.expired_sessions(image, {}, 10_000, 9_000) == []


# ----------------------------------------------------------------------------- AlterPartition


def _alter(image: MetadataImage, **changes: object) -> object:
    topic = image.topic("a")
    assert topic is not None
    p = image.partition(topic.topic_id, 0)
    assert p is not None
    args: dict[str, object] = {
        "broker_id": p.leader,
        "broker_epoch": 10 + p.leader,
        "topic_id": topic.topic_id,
        "partition": 0,
        "leader_epoch": p.leader_epoch,
        "partition_epoch": p.partition_epoch,
        "new_isr": (1, 2),
    }
    args.update(changes)
    return logic.alter_partition(image, **args)  # type: ignore[arg-type]


def test_alter_partition_shrinks_and_expands_the_isr() -> None:
    image = cluster(3)
    create(image, logic.TopicRequest("a", 1, 3))
    result = _alter(image, new_isr=(1, 2))
    assert not isinstance(result, logic.Rejected)
    records, expected = result  # type: ignore[misc]
    assert isinstance(records[0], ChangePartition)
    apply(image, records)
    assert parts(image, "a")[0] == expected
    assert expected.isr == (1, 2) and expected.partition_epoch == 1 and expected.leader_epoch == 0
    same = _alter(image, new_isr=(1, 2))
    assert same == ([], expected)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"broker_epoch": 5}, ErrorCode.stale_broker_epoch),
        ({"broker_id": 2, "broker_epoch": 12}, ErrorCode.not_leader_or_follower),
        ({"leader_epoch": 3}, ErrorCode.fenced_leader_epoch),
        ({"partition_epoch": 9}, ErrorCode.invalid_update_version),
        ({"new_isr": (2, 3)}, ErrorCode.ineligible_replica),
        ({"new_isr": (1, 4)}, ErrorCode.ineligible_replica),
        ({"new_isr": (1, 1)}, ErrorCode.ineligible_replica),
        ({"new_isr": (1, 3)}, ErrorCode.ineligible_replica),  # 3 is fenced
        ({"topic_id": "nope"}, ErrorCode.unknown_topic_id),
        ({"partition": 7}, ErrorCode.unknown_topic_or_partition),
    ],
)
def test_alter_partition_checks(changes: dict[str, object], code: ErrorCode) -> None:
    image = cluster(4)
    create(image, logic.TopicRequest("a", 1, 3))
    apply(image, [FenceBroker(3, 13)])
    rejected = _alter(image, **changes)
    assert isinstance(rejected, logic.Rejected) and rejected.error_code == code


# ----------------------------------------------------------------------------- producer ids


def test_producer_id_blocks_never_overlap_and_survive_snapshots() -> None:
    image = cluster(2)
    blocks = []
    for broker in (1, 2, 1):
        decision = logic.allocate_producer_ids(image, broker, 10 + broker, 1000)
        assert isinstance(decision, list) and isinstance(decision[0], ProducerIdsBlock)
        blocks.append((decision[0].first_id, decision[0].count))
        apply(image, decision)
    assert blocks == [(1000, 1000), (2000, 1000), (3000, 1000)]
    restored = MetadataImage.from_snapshot(image.snapshot())
    assert restored.next_producer_id == 4000 and restored == image
    stale = logic.allocate_producer_ids(image, 1, 99, 1000)
    assert isinstance(stale, logic.Rejected)
    assert stale.error_code == ErrorCode.stale_broker_epoch
