"""KRaft-style metadata records carried in the controller quorum's Raft entries, and the image.

Records are frozen dataclasses. `encode` turns one into compact JSON bytes with a "type" tag (the
`data` of a Raft entry); `decode` reverses it and rejects unknown types, missing or extra fields
and wrongly typed values with `MetadataError`.

`MetadataImage` is the state machine: `apply(record)` checks every invariant first and either
raises `MetadataError` (leaving the image untouched) or applies the record whole. `snapshot()`
serialises the image as the list of records that rebuild it; `from_snapshot` replays them, so
a snapshot passes the same checks as the log. Pure code: no I/O, no clock.

Semantics:

* A broker registers fenced, with its named listeners (name -> advertised "host:port", as
  Kafka's advertised.listeners; its `host`/`port` are the default listener's). Records
  written before listeners existed decode with none. Re-registering an existing broker needs
  a higher epoch and fences it again. Fence, unfence and unregister must carry the broker's
  current epoch; fencing a fenced broker (or unfencing an unfenced one) is a no-op.
* Topic names and topic ids are unique. `DeleteTopic` drops the topic with its partitions.
* A partition's replicas are distinct non-negative broker ids; its ISR is a duplicate-free
  subset of them; its leader is in the ISR, or -1 (no leader).
* `ChangePartition` (None = unchanged) must carry `partition_epoch == current + 1` and
  `leader_epoch >= current`, strictly greater when the leader changes.
* `SetConfig` resources are opaque strings (e.g. "broker:1"); a `None` value deletes the key.
  A topic's overrides live on resource `topic_resource(topic_id)` ("topic:<id>"); its
  effective configuration (`effective_topic_configs`) is its CreateTopic configs overlaid by
  those overrides. The region's cluster-level configs (topology epoch and role,
  broker/topology.py) live on resource `CLUSTER_RESOURCE`.
* `ProducerIdsBlock` hands out producer ids `[first_id, first_id + count)`; blocks must be
  contiguous from `next_producer_id` (1000 in an empty image), so they never overlap. A
  snapshot keeps only the high-water mark, as one block of `broker_id` -1 from 1000.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Self, TypeAlias

from broker.security.acl import (
    AclBinding,
    AclError,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from broker.security.scram import MAX_ITERATIONS, MIN_ITERATIONS, ScramCredential, ScramMechanism

NO_LEADER = -1
FIRST_PRODUCER_ID = 1000


class MetadataError(ValueError):
    """A metadata record (or snapshot) that cannot be decoded or must not be applied."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class RegisterBroker:
    broker_id: int
    incarnation_id: str
    host: str
    port: int
    epoch: int
    listeners: dict[str, str] = field(default_factory=dict)  # name -> advertised "host:port"


@dataclass(frozen=True, slots=True)
class UnregisterBroker:
    broker_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class FenceBroker:
    broker_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class UnfenceBroker:
    broker_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class CreateTopic:
    name: str
    topic_id: str
    configs: dict[str, str]


@dataclass(frozen=True, slots=True)
class DeleteTopic:
    topic_id: str


@dataclass(frozen=True, slots=True)
class CreatePartition:
    topic_id: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int


@dataclass(frozen=True, slots=True)
class ChangePartition:
    topic_id: str
    partition: int
    isr: tuple[int, ...] | None
    leader: int | None
    leader_epoch: int
    partition_epoch: int


@dataclass(frozen=True, slots=True)
class SetConfig:
    resource: str
    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class ProducerIdsBlock:
    broker_id: int
    first_id: int
    count: int


@dataclass(frozen=True, slots=True)
class _AclRecord:
    """An ACL binding (broker/security/acl.py), its enums as Kafka's wire values."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def binding(self) -> AclBinding:
        try:
            return AclBinding(
                ResourceType(self.resource_type),
                self.resource_name,
                PatternType(self.pattern_type),
                self.principal,
                self.host,
                Operation(self.operation),
                Permission(self.permission),
            ).validate()
        except (ValueError, AclError) as exc:
            raise MetadataError(f"invalid ACL {self!r}: {exc}") from None

    @classmethod
    def of(cls, binding: AclBinding) -> Self:
        return cls(*_acl_fields(binding))


@dataclass(frozen=True, slots=True)
class CreateAcl(_AclRecord):
    pass


@dataclass(frozen=True, slots=True)
class DeleteAcl(_AclRecord):
    pass


def _acl_fields(binding: AclBinding) -> tuple[int, str, int, str, str, int, int]:
    return (
        int(binding.resource_type),
        binding.resource_name,
        int(binding.pattern_type),
        binding.principal,
        binding.host,
        int(binding.operation),
        int(binding.permission),
    )


@dataclass(frozen=True, slots=True)
class SetScramCredential:
    """A user's SCRAM credential for one mechanism (Kafka's ScramMechanism type); the
    binary fields in base64. Never a password."""

    user: str
    mechanism: int
    salt: str
    iterations: int
    stored_key: str
    server_key: str


@dataclass(frozen=True, slots=True)
class DeleteScramCredential:
    user: str
    mechanism: int


MetadataRecord: TypeAlias = (
    RegisterBroker
    | UnregisterBroker
    | FenceBroker
    | UnfenceBroker
    | CreateTopic
    | DeleteTopic
    | CreatePartition
    | ChangePartition
    | SetConfig
    | ProducerIdsBlock
    | CreateAcl
    | DeleteAcl
    | SetScramCredential
    | DeleteScramCredential
)

_RECORD_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        RegisterBroker,
        UnregisterBroker,
        FenceBroker,
        UnfenceBroker,
        CreateTopic,
        DeleteTopic,
        CreatePartition,
        ChangePartition,
        SetConfig,
        ProducerIdsBlock,
        CreateAcl,
        DeleteAcl,
        SetScramCredential,
        DeleteScramCredential,
    )
}

_ACL_FIELD_KINDS = {
    "resource_type": "int",
    "resource_name": "str",
    "pattern_type": "int",
    "principal": "str",
    "host": "str",
    "operation": "int",
    "permission": "int",
}

# Field kinds used by the decoder: "int", "str", "ints" (tuple of int), "str_map", and an
# "?" suffix for optional (None allowed).
_FIELD_KINDS: dict[str, dict[str, str]] = {
    "RegisterBroker": {
        "broker_id": "int",
        "incarnation_id": "str",
        "host": "str",
        "port": "int",
        "epoch": "int",
        "listeners": "str_map",
    },
    "UnregisterBroker": {"broker_id": "int", "epoch": "int"},
    "FenceBroker": {"broker_id": "int", "epoch": "int"},
    "UnfenceBroker": {"broker_id": "int", "epoch": "int"},
    "CreateTopic": {"name": "str", "topic_id": "str", "configs": "str_map"},
    "DeleteTopic": {"topic_id": "str"},
    "CreatePartition": {
        "topic_id": "str",
        "partition": "int",
        "replicas": "ints",
        "isr": "ints",
        "leader": "int",
        "leader_epoch": "int",
        "partition_epoch": "int",
    },
    "ChangePartition": {
        "topic_id": "str",
        "partition": "int",
        "isr": "ints?",
        "leader": "int?",
        "leader_epoch": "int",
        "partition_epoch": "int",
    },
    "SetConfig": {"resource": "str", "key": "str", "value": "str?"},
    "ProducerIdsBlock": {"broker_id": "int", "first_id": "int", "count": "int"},
    "CreateAcl": _ACL_FIELD_KINDS,
    "DeleteAcl": _ACL_FIELD_KINDS,
    "SetScramCredential": {
        "user": "str",
        "mechanism": "int",
        "salt": "str",
        "iterations": "int",
        "stored_key": "str",
        "server_key": "str",
    },
    "DeleteScramCredential": {"user": "str", "mechanism": "int"},
}

# Fields added after records were first written, with the value a record written without them
# means: metadata logs and snapshots on disk from earlier versions must still decode.
_ADDED_FIELDS: dict[str, dict[str, object]] = {"RegisterBroker": {"listeners": {}}}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _convert(type_name: str, name: str, kind: str, value: object) -> object:
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    bad = MetadataError(f"{type_name}.{name}: expected {kind}, got {value!r}")
    if kind == "int":
        if not _is_int(value):
            raise bad
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "ints":
        if not isinstance(value, list | tuple) or not all(_is_int(v) for v in value):
            raise bad
        return tuple(value)
    if kind == "str_map":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad
        return dict(value)
    raise AssertionError(kind)  # pragma: no cover


def _to_dict(record: MetadataRecord) -> dict[str, object]:
    type_name = type(record).__name__
    if _RECORD_TYPES.get(type_name) is not type(record):
        raise MetadataError(f"not a metadata record: {record!r}")
    out: dict[str, object] = {"type": type_name}
    kinds = _FIELD_KINDS[type_name]
    for f in fields(record):
        value = _convert(type_name, f.name, kinds[f.name], getattr(record, f.name))
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _from_dict(obj: object) -> MetadataRecord:
    if not isinstance(obj, dict):
        raise MetadataError(f"metadata record must be a JSON object, got {type(obj).__name__}")
    type_name = obj.get("type")
    if not isinstance(type_name, str) or type_name not in _RECORD_TYPES:
        raise MetadataError(f"unknown metadata record type: {type_name!r}")
    kinds = _FIELD_KINDS[type_name]
    obj = {**_ADDED_FIELDS.get(type_name, {}), **obj}
    given = set(obj) - {"type"}
    if given != set(kinds):
        missing = sorted(set(kinds) - given)
        extra = sorted(given - set(kinds))
        raise MetadataError(f"{type_name}: missing fields {missing}, unknown fields {extra}")
    args = {name: _convert(type_name, name, kind, obj[name]) for name, kind in kinds.items()}
    record: MetadataRecord = _RECORD_TYPES[type_name](**args)
    return record


def encode(record: MetadataRecord) -> bytes:
    """The record as compact, deterministic JSON bytes (for a Raft entry's `data`)."""
    return json.dumps(_to_dict(record), sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> MetadataRecord:
    """The record `encode` produced; `MetadataError` for anything else."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataError(f"metadata record is not valid JSON: {exc}") from exc
    return _from_dict(obj)


# --------------------------------------------------------------------------- image


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (a registered listener's address); MetadataError if it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MetadataError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def check_listeners(listeners: Mapping[str, str]) -> None:
    """MetadataError unless every named listener has a name and a `host:port` address."""
    for name, address in listeners.items():
        if not name:
            raise MetadataError(f"a listener without a name (at {address!r})")
        parse_address(address)


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    broker_id: int
    incarnation_id: str
    host: str
    port: int
    epoch: int
    fenced: bool
    listeners: Mapping[str, str] = field(default_factory=dict)  # name -> advertised address

    def listener_address(self, name: str) -> tuple[str, int] | None:
        """Where clients that came in on listener `name` reach this broker, if it has one."""
        address = self.listeners.get(name)
        return None if address is None else parse_address(address)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: str
    configs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    topic_id: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int


_SNAPSHOT_VERSION = 1


class MetadataImage:
    """The cluster metadata the log describes. `apply` is all-or-nothing."""

    def __init__(self) -> None:
        self._brokers: dict[int, BrokerInfo] = {}
        self._topics_by_id: dict[str, TopicInfo] = {}
        self._topic_ids_by_name: dict[str, str] = {}
        self._partitions: dict[str, dict[int, PartitionInfo]] = {}
        self._configs: dict[str, dict[str, str]] = {}
        self._next_producer_id = FIRST_PRODUCER_ID
        # Replaced, never changed in place: `acls` is the same object until the ACLs change,
        # so a broker rebuilds its authorizer only then (broker/security/guard.py).
        self._acls: frozenset[AclBinding] = frozenset()
        self._scram: dict[tuple[str, int], SetScramCredential] = {}

    # ----------------------------------------------------------------- reads

    @property
    def acls(self) -> frozenset[AclBinding]:
        return self._acls

    def scram_credential(self, mechanism: ScramMechanism, user: str) -> ScramCredential | None:
        record = self._scram.get((user, mechanism.kafka_type))
        if record is None:
            return None
        return ScramCredential(
            base64.b64decode(record.salt),
            record.iterations,
            base64.b64decode(record.stored_key),
            base64.b64decode(record.server_key),
        )

    def scram_users(self) -> dict[str, list[tuple[ScramMechanism, int]]]:
        """Every user with a credential: its mechanisms and iterations (DescribeUserScram)."""
        out: dict[str, list[tuple[ScramMechanism, int]]] = {}
        for (user, kafka_type), record in sorted(self._scram.items()):
            mechanism = ScramMechanism.of_type(kafka_type)
            assert mechanism is not None  # checked when applied
            out.setdefault(user, []).append((mechanism, record.iterations))
        return out

    @property
    def next_producer_id(self) -> int:
        """The first producer id no block has handed out yet."""
        return self._next_producer_id

    @property
    def brokers(self) -> Mapping[int, BrokerInfo]:
        return MappingProxyType(self._brokers)

    def broker(self, broker_id: int) -> BrokerInfo | None:
        return self._brokers.get(broker_id)

    def unfenced_brokers(self) -> tuple[int, ...]:
        return tuple(sorted(b for b, info in self._brokers.items() if not info.fenced))

    @property
    def topics(self) -> Mapping[str, TopicInfo]:
        """Topics by id."""
        return MappingProxyType(self._topics_by_id)

    def topic(self, name: str) -> TopicInfo | None:
        topic_id = self._topic_ids_by_name.get(name)
        return None if topic_id is None else self._topics_by_id[topic_id]

    def topic_by_id(self, topic_id: str) -> TopicInfo | None:
        return self._topics_by_id.get(topic_id)

    def partitions(self, topic_id: str) -> Mapping[int, PartitionInfo]:
        return MappingProxyType(self._partitions.get(topic_id, {}))

    def partition(self, topic_id: str, partition: int) -> PartitionInfo | None:
        return self._partitions.get(topic_id, {}).get(partition)

    def configs(self, resource: str) -> Mapping[str, str]:
        return MappingProxyType(self._configs.get(resource, {}))

    @property
    def config_resources(self) -> tuple[str, ...]:
        return tuple(sorted(self._configs))

    def copy(self) -> MetadataImage:
        image = MetadataImage()
        image._brokers = dict(self._brokers)
        image._topics_by_id = dict(self._topics_by_id)
        image._topic_ids_by_name = dict(self._topic_ids_by_name)
        image._partitions = {t: dict(ps) for t, ps in self._partitions.items()}
        image._configs = {r: dict(c) for r, c in self._configs.items()}
        image._next_producer_id = self._next_producer_id
        image._acls = self._acls
        image._scram = dict(self._scram)
        return image

    def _state(self) -> tuple[object, ...]:
        topics = {t: (info.name, dict(info.configs)) for t, info in self._topics_by_id.items()}
        return (
            self._brokers,
            topics,
            self._partitions,
            self._configs,
            self._next_producer_id,
            self._acls,
            self._scram,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetadataImage):
            return NotImplemented
        return self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MetadataImage(brokers={len(self._brokers)}, topics={len(self._topics_by_id)}, "
            f"partitions={sum(len(p) for p in self._partitions.values())})"
        )

    # ----------------------------------------------------------------- apply

    def apply(self, record: MetadataRecord) -> None:
        """Apply one record, or raise `MetadataError` and change nothing."""
        match record:
            case RegisterBroker():
                self._register(record)
            case UnregisterBroker():
                self._current_broker(record.broker_id, record.epoch, "unregister")
                del self._brokers[record.broker_id]
            case FenceBroker() | UnfenceBroker():
                info = self._current_broker(record.broker_id, record.epoch, "fence/unfence")
                fenced = isinstance(record, FenceBroker)
                self._brokers[record.broker_id] = replace(info, fenced=fenced)
            case CreateTopic():
                self._create_topic(record)
            case DeleteTopic():
                topic = self._topic(record.topic_id)
                del self._topics_by_id[topic.topic_id]
                del self._topic_ids_by_name[topic.name]
                self._partitions.pop(topic.topic_id, None)
            case CreatePartition():
                self._create_partition(record)
            case ChangePartition():
                self._change_partition(record)
            case SetConfig():
                if not record.resource or not record.key:
                    raise MetadataError(f"empty config resource or key: {record!r}")
                if record.value is None:
                    current = self._configs.get(record.resource, {})
                    current.pop(record.key, None)
                    if not current:
                        self._configs.pop(record.resource, None)
                else:
                    self._configs.setdefault(record.resource, {})[record.key] = record.value
            case ProducerIdsBlock():
                if record.first_id != self._next_producer_id or record.count < 1:
                    raise MetadataError(
                        f"producer id block {record!r} does not start at "
                        f"{self._next_producer_id} or is empty"
                    )
                self._next_producer_id = record.first_id + record.count
            case CreateAcl():
                self._acls = self._acls | {record.binding()}
            case DeleteAcl():
                binding = record.binding()
                if binding not in self._acls:
                    raise MetadataError(f"no such ACL: {record!r}")
                self._acls = self._acls - {binding}
            case SetScramCredential():
                _check_scram(record)
                self._scram[(record.user, record.mechanism)] = record
            case DeleteScramCredential():
                if self._scram.pop((record.user, record.mechanism), None) is None:
                    raise MetadataError(f"no such SCRAM credential: {record!r}")
            case _:
                raise MetadataError(f"not a metadata record: {record!r}")

    def _register(self, record: RegisterBroker) -> None:
        if record.broker_id < 0 or record.epoch < 0:
            raise MetadataError(f"negative broker id or epoch: {record!r}")
        if not 0 < record.port < 65536:
            raise MetadataError(f"invalid port: {record!r}")
        check_listeners(record.listeners)
        current = self._brokers.get(record.broker_id)
        if current is not None and record.epoch <= current.epoch:
            raise MetadataError(
                f"broker {record.broker_id} re-registered with epoch {record.epoch}, "
                f"current epoch is {current.epoch}"
            )
        self._brokers[record.broker_id] = BrokerInfo(
            record.broker_id,
            record.incarnation_id,
            record.host,
            record.port,
            record.epoch,
            True,
            MappingProxyType(dict(record.listeners)),
        )

    def _current_broker(self, broker_id: int, epoch: int, what: str) -> BrokerInfo:
        info = self._brokers.get(broker_id)
        if info is None:
            raise MetadataError(f"cannot {what} unknown broker {broker_id}")
        if info.epoch != epoch:
            raise MetadataError(
                f"cannot {what} broker {broker_id}: epoch {epoch}, current epoch {info.epoch}"
            )
        return info

    def _topic(self, topic_id: str) -> TopicInfo:
        topic = self._topics_by_id.get(topic_id)
        if topic is None:
            raise MetadataError(f"unknown topic id {topic_id!r}")
        return topic

    def _create_topic(self, record: CreateTopic) -> None:
        if not record.name or not record.topic_id:
            raise MetadataError(f"empty topic name or id: {record!r}")
        if record.name in self._topic_ids_by_name:
            raise MetadataError(f"topic {record.name!r} already exists")
        if record.topic_id in self._topics_by_id:
            raise MetadataError(f"topic id {record.topic_id!r} already exists")
        configs = MappingProxyType(dict(record.configs))
        self._topics_by_id[record.topic_id] = TopicInfo(record.name, record.topic_id, configs)
        self._topic_ids_by_name[record.name] = record.topic_id
        self._partitions[record.topic_id] = {}

    @staticmethod
    def _check_assignment(
        where: str, replicas: tuple[int, ...], isr: tuple[int, ...], leader: int
    ) -> None:
        if len(set(isr)) != len(isr):
            raise MetadataError(f"{where}: duplicate broker in ISR {isr}")
        if not set(isr) <= set(replicas):
            raise MetadataError(f"{where}: ISR {isr} not a subset of replicas {replicas}")
        if leader != NO_LEADER and leader not in isr:
            raise MetadataError(f"{where}: leader {leader} not in ISR {isr}")

    def _create_partition(self, record: CreatePartition) -> None:
        self._topic(record.topic_id)
        where = f"{record.topic_id}-{record.partition}"
        if record.partition < 0:
            raise MetadataError(f"{where}: negative partition index")
        if record.partition in self._partitions[record.topic_id]:
            raise MetadataError(f"{where}: partition already exists")
        if not record.replicas:
            raise MetadataError(f"{where}: no replicas")
        if len(set(record.replicas)) != len(record.replicas) or min(record.replicas) < 0:
            raise MetadataError(f"{where}: invalid replicas {record.replicas}")
        if record.leader_epoch < 0 or record.partition_epoch < 0:
            raise MetadataError(f"{where}: negative epoch")
        self._check_assignment(where, record.replicas, record.isr, record.leader)
        self._partitions[record.topic_id][record.partition] = PartitionInfo(
            record.topic_id,
            record.partition,
            tuple(record.replicas),
            tuple(record.isr),
            record.leader,
            record.leader_epoch,
            record.partition_epoch,
        )

    def _change_partition(self, record: ChangePartition) -> None:
        self._topic(record.topic_id)
        where = f"{record.topic_id}-{record.partition}"
        current = self._partitions[record.topic_id].get(record.partition)
        if current is None:
            raise MetadataError(f"{where}: unknown partition")
        if record.partition_epoch != current.partition_epoch + 1:
            raise MetadataError(
                f"{where}: partition epoch {record.partition_epoch}, "
                f"expected {current.partition_epoch + 1}"
            )
        leader = current.leader if record.leader is None else record.leader
        isr = current.isr if record.isr is None else tuple(record.isr)
        if record.leader_epoch < current.leader_epoch:
            raise MetadataError(
                f"{where}: leader epoch {record.leader_epoch} < current {current.leader_epoch}"
            )
        if leader != current.leader and record.leader_epoch <= current.leader_epoch:
            raise MetadataError(
                f"{where}: leader changed {current.leader} -> {leader} without bumping "
                f"leader epoch {current.leader_epoch}"
            )
        self._check_assignment(where, current.replicas, isr, leader)
        self._partitions[record.topic_id][record.partition] = replace(
            current,
            isr=isr,
            leader=leader,
            leader_epoch=record.leader_epoch,
            partition_epoch=record.partition_epoch,
        )

    # ----------------------------------------------------------------- snapshots

    def records(self) -> list[MetadataRecord]:
        """Records that rebuild this image from empty, in a deterministic order."""
        out: list[MetadataRecord] = []
        for broker_id in sorted(self._brokers):
            b = self._brokers[broker_id]
            out.append(
                RegisterBroker(
                    b.broker_id, b.incarnation_id, b.host, b.port, b.epoch, dict(b.listeners)
                )
            )
            if not b.fenced:
                out.append(UnfenceBroker(b.broker_id, b.epoch))
        for topic_id in sorted(self._topics_by_id):
            t = self._topics_by_id[topic_id]
            out.append(CreateTopic(t.name, t.topic_id, dict(t.configs)))
            for index in sorted(self._partitions[topic_id]):
                p = self._partitions[topic_id][index]
                out.append(
                    CreatePartition(
                        p.topic_id,
                        p.partition,
                        p.replicas,
                        p.isr,
                        p.leader,
                        p.leader_epoch,
                        p.partition_epoch,
                    )
                )
        for resource in sorted(self._configs):
            for key, value in sorted(self._configs[resource].items()):
                out.append(SetConfig(resource, key, value))
        if self._next_producer_id > FIRST_PRODUCER_ID:
            used = self._next_producer_id - FIRST_PRODUCER_ID
            out.append(ProducerIdsBlock(NO_LEADER, FIRST_PRODUCER_ID, used))
        out.extend(CreateAcl.of(binding) for binding in sorted(self._acls))
        out.extend(self._scram[key] for key in sorted(self._scram))
        return out

    def snapshot(self) -> bytes:
        """The image as bytes for Raft compaction; `from_snapshot` reverses it."""
        body = {"version": _SNAPSHOT_VERSION, "records": [_to_dict(r) for r in self.records()]}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_snapshot(cls, data: bytes) -> MetadataImage:
        """Rebuild an image from `snapshot()` bytes; empty bytes give an empty image."""
        image = cls()
        if not data:
            return image
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MetadataError(f"metadata snapshot is not valid JSON: {exc}") from exc
        if not isinstance(body, dict) or set(body) != {"version", "records"}:
            raise MetadataError("malformed metadata snapshot")
        if body["version"] != _SNAPSHOT_VERSION:
            raise MetadataError(f"unsupported metadata snapshot version {body['version']!r}")
        if not isinstance(body["records"], list):
            raise MetadataError("malformed metadata snapshot records")
        for obj in body["records"]:
            image.apply(_from_dict(obj))
        return image


def _check_scram(record: SetScramCredential) -> None:
    if not record.user or ScramMechanism.of_type(record.mechanism) is None:
        raise MetadataError(f"invalid SCRAM user or mechanism: {record!r}")
    if not MIN_ITERATIONS <= record.iterations <= MAX_ITERATIONS:
        raise MetadataError(f"SCRAM iterations out of range: {record!r}")
    try:
        for text in (record.salt, record.stored_key, record.server_key):
            base64.b64decode(text, validate=True)
    except ValueError:
        raise MetadataError(f"SCRAM credential fields must be base64: {record.user}") from None


def scram_record(
    user: str, mechanism: ScramMechanism, credential: ScramCredential
) -> SetScramCredential:
    """The metadata record that stores `credential`."""
    return SetScramCredential(
        user,
        mechanism.kafka_type,
        base64.b64encode(credential.salt).decode(),
        credential.iterations,
        base64.b64encode(credential.stored_key).decode(),
        base64.b64encode(credential.server_key).decode(),
    )


CLUSTER_RESOURCE = "cluster"


def topic_resource(topic_id: str) -> str:
    """The `SetConfig` resource that holds a topic's config overrides."""
    return f"topic:{topic_id}"


def effective_topic_configs(image: MetadataImage, topic: TopicInfo | str) -> dict[str, str]:
    """A topic's configuration: its CreateTopic configs overlaid by its SetConfig overrides.

    `topic` is a `TopicInfo` or a topic name; an unknown name raises `MetadataError`.
    """
    info = image.topic(topic) if isinstance(topic, str) else topic
    if info is None:
        raise MetadataError(f"unknown topic {topic!r}")
    return {**info.configs, **image.configs(topic_resource(info.topic_id))}
