"""The controller's decisions as pure functions: the committed image and a request in, the
metadata records to propose (or a Kafka error) out. No I/O, no clock (time is passed in),
so every rule below is unit-tested without a quorum.

Rules, after Kafka's KRaft controller:

* Placement: replicas round-robin over the unfenced brokers (sorted by id), the start
  rotating with the number of partitions already in the cluster; leader = first replica,
  ISR = replicas.
* Fencing a broker (session expiry, controlled shutdown, re-registration) moves each of its
  leaderships to the first replica that is in the ISR and unfenced (leader epoch + 1), and
  removes it from every ISR it is not the last member of. No unclean election: a partition
  whose ISR has no other live member keeps the ISR and gets leader -1.
* Unfencing (a heartbeat from a fenced broker that has caught up to its registration record)
  makes it leader of leaderless partitions whose ISR holds it.
* A broker's epoch is the Raft index of its RegisterBroker record, so a new registration
  always has a higher epoch and "caught up to my registration" is `metadata_offset >= epoch`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from broker.kraft.controller.config import PolicyConfig
from broker.kraft.metadata import (
    CLUSTER_RESOURCE,
    NO_LEADER,
    BrokerInfo,
    ChangePartition,
    CreateAcl,
    CreatePartition,
    CreateTopic,
    DeleteAcl,
    DeleteScramCredential,
    DeleteTopic,
    FenceBroker,
    MetadataError,
    MetadataImage,
    MetadataRecord,
    PartitionInfo,
    ProducerIdsBlock,
    RegisterBroker,
    SetConfig,
    SetScramCredential,
    UnfenceBroker,
    check_listeners,
    topic_resource,
)
from broker.protocol.errors import ErrorCode
from broker.topology import checked_update, with_changes

_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


@dataclass(frozen=True, slots=True)
class Rejected:
    error_code: int
    message: str


@dataclass(frozen=True, slots=True)
class TopicRequest:
    name: str
    partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicOutcome:
    name: str
    error_code: int
    message: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatDecision:
    records: tuple[MetadataRecord, ...]
    fenced: bool
    shutdown_ok: bool


Decision = Rejected | list[MetadataRecord]


def _reject(code: ErrorCode, message: str) -> Rejected:
    return Rejected(int(code), message)


def topic_name_error(name: str) -> str | None:
    """Why `name` is not a legal topic name (Kafka's rules), or None."""
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed"
    if not _TOPIC_NAME.fullmatch(name):
        return f"topic name {name!r} must be 1-249 characters of [a-zA-Z0-9._-]"
    return None


def placement_start(image: MetadataImage) -> int:
    """Where the next round-robin placement starts: rotates as partitions are created."""
    return sum(len(image.partitions(t)) for t in image.topics)


def place_replicas(
    brokers: Sequence[int], first_partition: int, count: int, rf: int, start: int
) -> list[tuple[int, ...]]:
    """Replica lists for partitions first_partition.. (count of them), round-robin."""
    n = len(brokers)
    assert 0 < rf <= n, (rf, brokers)
    return [
        tuple(brokers[(start + p + j) % n] for j in range(rf))
        for p in range(first_partition, first_partition + count)
    ]


def _create_partitions(
    topic_id: str, first: int, placements: list[tuple[int, ...]]
) -> list[MetadataRecord]:
    return [
        CreatePartition(topic_id, first + i, replicas, replicas, replicas[0], 0, 0)
        for i, replicas in enumerate(placements)
    ]


def _config_error(configs: Mapping[Any, object]) -> str | None:
    for key, value in configs.items():
        if not isinstance(key, str) or not key:
            return f"config name {key!r} must be a non-empty string"
        if not isinstance(value, str):
            return f"config {key} must be a string, got {type(value).__name__}"
    return None


def create_topics(
    image: MetadataImage,
    requests: Sequence[TopicRequest],
    policy: PolicyConfig,
    new_topic_id: Callable[[], str],
) -> tuple[list[TopicOutcome], list[MetadataRecord]]:
    """Per-topic outcomes, and the records creating the topics that succeed."""
    brokers = image.unfenced_brokers()
    names = [r.name for r in requests]
    start = placement_start(image)
    outcomes: list[TopicOutcome] = []
    records: list[MetadataRecord] = []
    for request in requests:
        name = request.name
        error = _topic_error(image, request, names, policy, len(brokers))
        if error is not None:
            outcomes.append(TopicOutcome(name, error.error_code, error.message))
            continue
        partitions = request.partitions if request.partitions != -1 else policy.default_partitions
        rf = request.replication_factor
        if rf == -1:
            rf = min(policy.default_replication_factor, len(brokers))
        topic_id = new_topic_id()
        configs = {str(k): str(v) for k, v in request.configs.items()}
        records.append(CreateTopic(name, topic_id, configs))
        records += _create_partitions(
            topic_id, 0, place_replicas(brokers, 0, partitions, rf, start)
        )
        start += partitions
        outcomes.append(TopicOutcome(name, int(ErrorCode.none)))
    return outcomes, records


def _topic_error(
    image: MetadataImage,
    request: TopicRequest,
    names: Sequence[str],
    policy: PolicyConfig,
    live: int,
) -> Rejected | None:
    name = request.name
    if names.count(name) > 1:
        return _reject(ErrorCode.invalid_request, f"topic {name!r} is listed more than once")
    why = topic_name_error(name)
    if why is not None:
        return _reject(ErrorCode.invalid_topic_exception, why)
    if image.topic(name) is not None:
        return _reject(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
    if request.partitions == 0 or request.partitions < -1:
        return _reject(ErrorCode.invalid_partitions, "partitions must be positive (or -1)")
    rf = request.replication_factor
    if rf == 0 or rf < -1:
        return _reject(ErrorCode.invalid_replication_factor, "replication factor must be >= 1")
    if rf == -1:
        rf = min(policy.default_replication_factor, live)
    if rf == 0 or rf > live:
        return _reject(
            ErrorCode.invalid_replication_factor,
            f"replication factor {rf} is larger than the {live} available brokers",
        )
    why = _config_error(request.configs)
    if why is not None:
        return _reject(ErrorCode.invalid_config, why)
    return None


def delete_topics(
    image: MetadataImage, names: Sequence[str]
) -> tuple[list[TopicOutcome], list[MetadataRecord]]:
    """Deleting a topic also deletes its config overrides (SetConfig to None first)."""
    outcomes: list[TopicOutcome] = []
    records: list[MetadataRecord] = []
    for name in names:
        topic = image.topic(name)
        if names.count(name) > 1:
            code, message = ErrorCode.invalid_request, f"topic {name!r} is listed more than once"
            outcomes.append(TopicOutcome(name, int(code), message))
            continue
        if topic is None:
            code, message = ErrorCode.unknown_topic_or_partition, f"no topic {name!r}"
            outcomes.append(TopicOutcome(name, int(code), message))
            continue
        resource = topic_resource(topic.topic_id)
        records += [SetConfig(resource, key, None) for key in sorted(image.configs(resource))]
        records.append(DeleteTopic(topic.topic_id))
        outcomes.append(TopicOutcome(name, int(ErrorCode.none)))
    return outcomes, records


def create_partitions(image: MetadataImage, name: str, total_count: int) -> Decision:
    """Grow a topic to `total_count` partitions with the replication factor of partition 0."""
    topic = image.topic(name)
    if topic is None:
        return _reject(ErrorCode.unknown_topic_or_partition, f"no topic {name!r}")
    current = image.partitions(topic.topic_id)
    if total_count <= len(current):
        return _reject(
            ErrorCode.invalid_partitions,
            f"topic {name!r} has {len(current)} partitions; {total_count} would not add any",
        )
    brokers = image.unfenced_brokers()
    rf = len(current[0].replicas) if 0 in current else 1
    if rf > len(brokers):
        return _reject(
            ErrorCode.invalid_replication_factor,
            f"replication factor {rf} is larger than the {len(brokers)} available brokers",
        )
    first = len(current)
    start = placement_start(image)
    placements = place_replicas(brokers, first, total_count - first, rf, start)
    return _create_partitions(topic.topic_id, first, placements)


def set_topic_configs(image: MetadataImage, name: str, configs: Mapping[str, object]) -> Decision:
    """Replace the topic's overrides by `configs` (keys not given are removed)."""
    topic = image.topic(name)
    if topic is None:
        return _reject(ErrorCode.unknown_topic_or_partition, f"no topic {name!r}")
    why = _config_error(configs)
    if why is not None:
        return _reject(ErrorCode.invalid_config, why)
    resource = topic_resource(topic.topic_id)
    current = image.configs(resource)
    records: list[MetadataRecord] = [
        SetConfig(resource, key, None) for key in sorted(current) if key not in configs
    ]
    for key in sorted(configs):
        value = configs[key]
        assert isinstance(value, str)
        if current.get(key) != value:
            records.append(SetConfig(resource, key, value))
    return records


def set_cluster_configs(image: MetadataImage, changes: Mapping[str, str | None]) -> Decision:
    """Set (None: delete) cluster-level configs, checked against the committed ones: the
    topology epoch never goes back, however many brokers forward changes at once."""
    current = image.configs(CLUSTER_RESOURCE)
    try:
        checked_update(current, with_changes(current, changes))
    except ValueError as exc:
        return _reject(ErrorCode.invalid_config, str(exc))
    return [
        SetConfig(CLUSTER_RESOURCE, key, value)
        for key, value in sorted(changes.items())
        if current.get(key) != value
    ]


# ----------------------------------------------------------------------------- brokers


def _current_broker(image: MetadataImage, broker_id: int, epoch: int) -> BrokerInfo | Rejected:
    info = image.broker(broker_id)
    if info is None:
        return _reject(ErrorCode.stale_broker_epoch, f"broker {broker_id} is not registered")
    if info.epoch != epoch:
        return _reject(
            ErrorCode.stale_broker_epoch,
            f"broker {broker_id} epoch {epoch} is not the current epoch {info.epoch}",
        )
    return info


def register_broker(
    image: MetadataImage,
    broker_id: int,
    incarnation_id: str,
    host: str,
    port: int,
    epoch: int,
    listeners: Mapping[str, str] | None = None,
) -> Decision:
    """Register (fenced) at `epoch`, the Raft index the record will have, with its named
    listeners (name -> advertised "host:port"). A re-registration first moves the old
    incarnation's leaderships away, as fencing would."""
    if broker_id < 0 or not host or not 0 < port < 65536:
        return _reject(ErrorCode.invalid_request, f"bad registration {broker_id}@{host}:{port}")
    named = dict(listeners or {})
    try:
        check_listeners(named)
    except MetadataError as exc:
        return _reject(ErrorCode.invalid_request, f"broker {broker_id}: {exc}")
    current = image.broker(broker_id)
    if current is not None and epoch <= current.epoch:
        return _reject(ErrorCode.invalid_request, f"epoch {epoch} <= {current.epoch}")
    moves = fence_records(image, broker_id)[1:] if current is not None else []
    return [*moves, RegisterBroker(broker_id, incarnation_id, host, port, epoch, named)]


def _leaderless_to(image: MetadataImage, broker_id: int) -> list[MetadataRecord]:
    records: list[MetadataRecord] = []
    for topic_id in sorted(image.topics):
        for p in sorted(image.partitions(topic_id).values(), key=lambda p: p.partition):
            if p.leader == NO_LEADER and broker_id in p.isr:
                records.append(
                    ChangePartition(
                        topic_id,
                        p.partition,
                        None,
                        broker_id,
                        p.leader_epoch + 1,
                        p.partition_epoch + 1,
                    )
                )
    return records


def fence_records(image: MetadataImage, broker_id: int) -> list[MetadataRecord]:
    """FenceBroker, then the partition changes that take the broker out of service."""
    info = image.broker(broker_id)
    assert info is not None, broker_id
    live = set(image.unfenced_brokers()) - {broker_id}
    records: list[MetadataRecord] = [FenceBroker(broker_id, info.epoch)]
    for topic_id in sorted(image.topics):
        for p in sorted(image.partitions(topic_id).values(), key=lambda p: p.partition):
            change = _without(p, broker_id, live)
            if change is not None:
                records.append(change)
    return records


def _without(p: PartitionInfo, broker_id: int, live: set[int]) -> ChangePartition | None:
    if broker_id not in p.isr and p.leader != broker_id:
        return None
    isr = tuple(b for b in p.isr if b != broker_id) or p.isr  # never empty the ISR
    leader = p.leader
    if leader in (broker_id, NO_LEADER):
        eligible = [r for r in p.replicas if r in isr and r in live]
        leader = eligible[0] if eligible else NO_LEADER
    if isr == p.isr and leader == p.leader:
        return None
    leader_epoch = p.leader_epoch + 1 if leader != p.leader else p.leader_epoch
    return ChangePartition(
        p.topic_id,
        p.partition,
        isr if isr != p.isr else None,
        leader if leader != p.leader else None,
        leader_epoch,
        p.partition_epoch + 1,
    )


def heartbeat(
    image: MetadataImage,
    broker_id: int,
    epoch: int,
    metadata_offset: int,
    want_shutdown: bool,
) -> HeartbeatDecision | Rejected:
    """Unfence a caught-up broker; on `want_shutdown` move its work away and fence it."""
    info = _current_broker(image, broker_id, epoch)
    if isinstance(info, Rejected):
        return info
    if want_shutdown:
        records = () if info.fenced else tuple(fence_records(image, broker_id))
        return HeartbeatDecision(records, fenced=True, shutdown_ok=True)
    if info.fenced and metadata_offset >= info.epoch:
        unfence = (UnfenceBroker(broker_id, epoch), *_leaderless_to(image, broker_id))
        return HeartbeatDecision(unfence, fenced=False, shutdown_ok=False)
    return HeartbeatDecision((), fenced=info.fenced, shutdown_ok=False)


def expired_sessions(
    image: MetadataImage, last_heartbeat_ms: Mapping[int, int], now_ms: int, timeout_ms: int
) -> list[int]:
    """Unfenced brokers whose last heartbeat is `timeout_ms` old (missing = never expires:
    the caller starts every broker's session when it becomes the leader)."""
    return [
        b
        for b in image.unfenced_brokers()
        if b in last_heartbeat_ms and now_ms - last_heartbeat_ms[b] >= timeout_ms
    ]


def alter_partition(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    topic_id: str,
    partition: int,
    leader_epoch: int,
    partition_epoch: int,
    new_isr: Sequence[int],
) -> tuple[list[MetadataRecord], PartitionInfo] | Rejected:
    """An ISR change asked by the partition's leader: the records and the resulting state."""
    info = _current_broker(image, broker_id, broker_epoch)
    if isinstance(info, Rejected):
        return info
    if image.topic_by_id(topic_id) is None:
        return _reject(ErrorCode.unknown_topic_id, f"no topic id {topic_id!r}")
    p = image.partition(topic_id, partition)
    if p is None:
        return _reject(ErrorCode.unknown_topic_or_partition, f"no partition {partition}")
    where = f"{topic_id}-{partition}"
    if p.leader != broker_id:
        return _reject(ErrorCode.not_leader_or_follower, f"{where}: leader is {p.leader}")
    if leader_epoch != p.leader_epoch:
        return _reject(
            ErrorCode.fenced_leader_epoch,
            f"{where}: leader epoch {leader_epoch}, current {p.leader_epoch}",
        )
    if partition_epoch != p.partition_epoch:
        return _reject(
            ErrorCode.invalid_update_version,
            f"{where}: partition epoch {partition_epoch}, current {p.partition_epoch}",
        )
    isr = tuple(new_isr)
    live = set(image.unfenced_brokers())
    if (
        broker_id not in isr
        or len(set(isr)) != len(isr)
        or not set(isr) <= set(p.replicas)
        or not set(isr) <= live
    ):
        return _reject(
            ErrorCode.ineligible_replica,
            f"{where}: ISR {list(isr)} must hold the leader and only live replicas of "
            f"{list(p.replicas)}",
        )
    if isr == p.isr:
        return [], p
    change = ChangePartition(topic_id, partition, isr, None, p.leader_epoch, p.partition_epoch + 1)
    return [change], replace(p, isr=isr, partition_epoch=p.partition_epoch + 1)


def allocate_producer_ids(
    image: MetadataImage, broker_id: int, broker_epoch: int, block_size: int
) -> Decision:
    info = _current_broker(image, broker_id, broker_epoch)
    if isinstance(info, Rejected):
        return info
    return [ProducerIdsBlock(broker_id, image.next_producer_id, block_size)]


# ----------------------------------------------------------------------------- security

SECURITY_RECORDS = (CreateAcl, DeleteAcl, SetScramCredential, DeleteScramCredential)


def alter_security(image: MetadataImage, records: Sequence[MetadataRecord]) -> Decision:
    """ACL and SCRAM credential records, checked all together against the committed image
    (applied in order to a copy): any refusal refuses them all, naming the first."""
    trial = image.copy()
    for index, record in enumerate(records):
        if not isinstance(record, SECURITY_RECORDS):
            return _reject(ErrorCode.invalid_request, f"record {index} is not an ACL or user")
        try:
            trial.apply(record)
        except MetadataError as exc:
            return _reject(ErrorCode.invalid_request, f"record {index}: {exc}")
    return list(records)
