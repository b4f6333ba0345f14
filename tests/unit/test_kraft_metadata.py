"""KRaft metadata records (encode/decode) and the MetadataImage state machine."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.kraft.metadata import (
    NO_LEADER,
    BrokerInfo,
    ChangePartition,
    CreatePartition,
    CreateTopic,
    DeleteTopic,
    FenceBroker,
    MetadataError,
    MetadataImage,
    MetadataRecord,
    PartitionInfo,
    ProducerIdsBlock,
    RegisterBroker,
    SetConfig,
    UnfenceBroker,
    UnregisterBroker,
    decode,
    effective_topic_configs,
    encode,
    topic_resource,
)

TID = "tid-orders"

_ints = st.integers(min_value=-(2**40), max_value=2**40)
_strs = st.text(max_size=12)
_int_tuples = st.lists(_ints, max_size=5).map(tuple)

records: st.SearchStrategy[MetadataRecord] = st.one_of(
    st.builds(
        RegisterBroker, _ints, _strs, _strs, _ints, _ints, st.dictionaries(_strs, _strs, max_size=3)
    ),
    st.builds(UnregisterBroker, _ints, _ints),
    st.builds(FenceBroker, _ints, _ints),
    st.builds(UnfenceBroker, _ints, _ints),
    st.builds(CreateTopic, _strs, _strs, st.dictionaries(_strs, _strs, max_size=4)),
    st.builds(DeleteTopic, _strs),
    st.builds(CreatePartition, _strs, _ints, _int_tuples, _int_tuples, _ints, _ints, _ints),
    st.builds(
        ChangePartition,
        _strs,
        _ints,
        st.none() | _int_tuples,
        st.none() | _ints,
        _ints,
        _ints,
    ),
    st.builds(SetConfig, _strs, _strs, st.none() | _strs),
    st.builds(ProducerIdsBlock, _ints, _ints, _ints),
)


@settings(max_examples=200, deadline=None)
@given(records)
def test_encode_decode_round_trip(record: MetadataRecord) -> None:
    data = encode(record)
    assert decode(data) == record
    assert encode(decode(data)) == data


EXAMPLES: list[MetadataRecord] = [
    RegisterBroker(1, "inc-1", "h1", 9092, 3),
    RegisterBroker(1, "inc-1", "h1", 9092, 3, {"from-us-east": "127.0.0.1:9300"}),
    UnregisterBroker(1, 3),
    FenceBroker(1, 3),
    UnfenceBroker(1, 3),
    CreateTopic("orders", TID, {"cleanup.policy": "compact"}),
    DeleteTopic(TID),
    CreatePartition(TID, 0, (1, 2, 3), (1, 2), 1, 0, 0),
    ChangePartition(TID, 0, None, None, 0, 1),
    ChangePartition(TID, 0, (1,), 1, 2, 1),
    SetConfig("broker:1", "k", None),
    SetConfig("broker:1", "k", "v"),
    ProducerIdsBlock(1, 1000, 1000),
]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_every_record_type_round_trips(record: MetadataRecord) -> None:
    decoded = decode(encode(record))
    assert decoded == record
    assert type(decoded) is type(record)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"broker_id":1,"epoch":1}',
        b'{"type":"Bogus","broker_id":1}',
        b'{"type":"FenceBroker","broker_id":1}',
        b'{"type":"FenceBroker","broker_id":1,"epoch":1,"extra":0}',
        b'{"type":"FenceBroker","broker_id":"1","epoch":1}',
        b'{"type":"FenceBroker","broker_id":true,"epoch":1}',
        b'{"type":"FenceBroker","broker_id":1.5,"epoch":1}',
        b'{"type":"FenceBroker","broker_id":null,"epoch":1}',
        b'{"type":"CreateTopic","name":"t","topic_id":"x","configs":{"a":1}}',
        b'{"type":"CreateTopic","name":"t","topic_id":"x","configs":[]}',
        b'{"type":"ChangePartition","topic_id":"x","partition":0,"isr":[1,"2"],'
        b'"leader":null,"leader_epoch":0,"partition_epoch":1}',
        b'{"type":"SetConfig","resource":"r","key":"k","value":3}',
        b'{"type":"RegisterBroker","broker_id":1,"incarnation_id":"i","host":"h","port":1,'
        b'"epoch":1,"listeners":{"from-us":9300}}',
    ],
)
def test_decode_rejects_malformed(data: bytes) -> None:
    with pytest.raises(MetadataError):
        decode(data)


def test_a_registration_written_before_listeners_existed_decodes_without_them() -> None:
    """Metadata logs and snapshots of earlier versions hold RegisterBroker records with no
    `listeners` field: they decode to a broker with none, and snapshot again with them."""
    old = b'{"broker_id":1,"epoch":3,"host":"h1","incarnation_id":"inc-1","port":9092,'
    old += b'"type":"RegisterBroker"}'
    record = decode(old)
    assert record == RegisterBroker(1, "inc-1", "h1", 9092, 3, {})
    snapshot = json.dumps({"version": 1, "records": [json.loads(old)]}).encode()
    image = MetadataImage.from_snapshot(snapshot)
    assert image.broker(1) == BrokerInfo(1, "inc-1", "h1", 9092, 3, True)
    assert json.loads(image.snapshot())["records"][0]["listeners"] == {}


def test_a_broker_registers_its_listeners_and_snapshots_keep_them() -> None:
    image = MetadataImage()
    listeners = {"from-us-east": "127.0.0.1:9300", "from-ap-south": "proxy.example:19092"}
    image.apply(RegisterBroker(2, "inc-2", "127.0.0.1", 9092, 5, listeners))
    broker = image.broker(2)
    assert broker is not None and broker.listeners == listeners
    assert broker.listener_address("from-us-east") == ("127.0.0.1", 9300)
    assert broker.listener_address("from-ap-south") == ("proxy.example", 19092)
    assert broker.listener_address("from-eu-west") is None
    restored = MetadataImage.from_snapshot(image.snapshot())
    assert restored == image and restored.broker(2) == broker


def test_encode_rejects_non_records_and_bad_types() -> None:
    with pytest.raises(MetadataError):
        encode(BrokerInfo(1, "i", "h", 1, 1, False))  # type: ignore[arg-type]
    with pytest.raises(MetadataError):
        encode(FenceBroker("1", 1))  # type: ignore[arg-type]
    assert issubclass(MetadataError, ValueError)


# --------------------------------------------------------------------------- image


def _cluster() -> MetadataImage:
    image = MetadataImage()
    for b in (1, 2, 3):
        image.apply(RegisterBroker(b, f"inc-{b}", f"host{b}", 9092, 10))
        image.apply(UnfenceBroker(b, 10))
    image.apply(CreateTopic("orders", TID, {"retention.ms": "1000"}))
    image.apply(CreatePartition(TID, 0, (1, 2, 3), (1, 2, 3), 1, 0, 0))
    return image


def test_scenario_gives_expected_image() -> None:
    image = _cluster()
    assert image.unfenced_brokers() == (1, 2, 3)
    # Leader change 1 -> 2 with a leader epoch bump.
    image.apply(ChangePartition(TID, 0, None, 2, 1, 1))
    # Shrink the ISR (leader unchanged), then expand it back.
    image.apply(ChangePartition(TID, 0, (2, 3), None, 1, 2))
    assert image.partition(TID, 0) == PartitionInfo(TID, 0, (1, 2, 3), (2, 3), 2, 1, 2)
    image.apply(ChangePartition(TID, 0, (2, 3, 1), None, 1, 3))
    # Fence broker 3.
    image.apply(FenceBroker(3, 10))
    image.apply(SetConfig("broker:1", "log.dirs", "/d"))

    assert image.brokers == {
        1: BrokerInfo(1, "inc-1", "host1", 9092, 10, False),
        2: BrokerInfo(2, "inc-2", "host2", 9092, 10, False),
        3: BrokerInfo(3, "inc-3", "host3", 9092, 10, True),
    }
    assert image.unfenced_brokers() == (1, 2)
    topic = image.topic("orders")
    assert topic is not None and topic is image.topic_by_id(TID)
    assert topic.name == "orders" and dict(topic.configs) == {"retention.ms": "1000"}
    assert image.partitions(TID) == {0: PartitionInfo(TID, 0, (1, 2, 3), (2, 3, 1), 2, 1, 3)}
    assert dict(image.configs("broker:1")) == {"log.dirs": "/d"}
    assert image.config_resources == ("broker:1",)

    restored = MetadataImage.from_snapshot(image.snapshot())
    assert restored == image
    assert restored.snapshot() == image.snapshot()


def test_register_is_fenced_and_reregister_needs_higher_epoch() -> None:
    image = MetadataImage()
    image.apply(RegisterBroker(1, "a", "h", 9092, 5))
    info = image.broker(1)
    assert info is not None and info.fenced
    image.apply(UnfenceBroker(1, 5))
    with pytest.raises(MetadataError):
        image.apply(RegisterBroker(1, "b", "h", 9092, 5))
    image.apply(RegisterBroker(1, "b", "h2", 9093, 6))
    assert image.broker(1) == BrokerInfo(1, "b", "h2", 9093, 6, True)


def test_unregister_removes_broker() -> None:
    image = _cluster()
    with pytest.raises(MetadataError):
        image.apply(UnregisterBroker(2, 9))
    image.apply(UnregisterBroker(2, 10))
    assert image.broker(2) is None
    with pytest.raises(MetadataError):
        image.apply(UnregisterBroker(2, 10))


def test_delete_topic_drops_partitions_and_frees_name() -> None:
    image = _cluster()
    image.apply(DeleteTopic(TID))
    assert image.topic("orders") is None and image.topic_by_id(TID) is None
    assert image.partition(TID, 0) is None and image.topics == {}
    image.apply(CreateTopic("orders", "tid-2", {}))
    assert image.topic("orders") == image.topic_by_id("tid-2")


def test_set_config_none_deletes() -> None:
    image = MetadataImage()
    image.apply(SetConfig("topic:x", "a", "1"))
    image.apply(SetConfig("topic:x", "a", None))
    image.apply(SetConfig("topic:y", "missing", None))
    assert image.configs("topic:x") == {} and image.config_resources == ()


BAD_RECORDS: list[tuple[str, MetadataRecord]] = [
    ("fence unknown broker", FenceBroker(9, 10)),
    ("fence epoch mismatch", FenceBroker(1, 9)),
    ("unfence epoch mismatch", UnfenceBroker(1, 11)),
    ("unregister epoch mismatch", UnregisterBroker(1, 11)),
    ("register stale epoch", RegisterBroker(1, "x", "h", 9092, 9)),
    ("register bad port", RegisterBroker(7, "x", "h", 0, 1)),
    ("register negative id", RegisterBroker(-1, "x", "h", 9092, 1)),
    ("register listener not host:port", RegisterBroker(7, "x", "h", 9092, 1, {"from-a": "h"})),
    ("register listener bad port", RegisterBroker(7, "x", "h", 9092, 1, {"from-a": "h:0"})),
    ("register unnamed listener", RegisterBroker(7, "x", "h", 9092, 1, {"": "h:9300"})),
    ("duplicate topic name", CreateTopic("orders", "tid-other", {})),
    ("duplicate topic id", CreateTopic("other", TID, {})),
    ("empty topic name", CreateTopic("", "tid-x", {})),
    ("delete unknown topic", DeleteTopic("nope")),
    ("partition unknown topic", CreatePartition("nope", 0, (1,), (1,), 1, 0, 0)),
    ("partition exists", CreatePartition(TID, 0, (1,), (1,), 1, 0, 0)),
    ("negative partition", CreatePartition(TID, -1, (1,), (1,), 1, 0, 0)),
    ("no replicas", CreatePartition(TID, 1, (), (), NO_LEADER, 0, 0)),
    ("duplicate replicas", CreatePartition(TID, 1, (1, 1), (1,), 1, 0, 0)),
    ("isr not subset", CreatePartition(TID, 1, (1, 2), (1, 3), 1, 0, 0)),
    ("duplicate isr", CreatePartition(TID, 1, (1, 2), (1, 1), 1, 0, 0)),
    ("leader not in isr", CreatePartition(TID, 1, (1, 2), (1,), 2, 0, 0)),
    ("negative epoch", CreatePartition(TID, 1, (1, 2), (1,), 1, -1, 0)),
    ("change unknown topic", ChangePartition("nope", 0, None, None, 0, 1)),
    ("change unknown partition", ChangePartition(TID, 5, None, None, 0, 1)),
    ("stale partition epoch", ChangePartition(TID, 0, None, None, 0, 0)),
    ("skipped partition epoch", ChangePartition(TID, 0, None, None, 0, 2)),
    ("leader epoch went back", ChangePartition(TID, 0, None, None, -1, 1)),
    ("leader change w/o epoch bump", ChangePartition(TID, 0, None, 2, 0, 1)),
    ("new leader not in isr", ChangePartition(TID, 0, (1, 3), 2, 1, 1)),
    ("shrunk isr drops leader", ChangePartition(TID, 0, (2, 3), None, 0, 1)),
    ("change isr not subset", ChangePartition(TID, 0, (1, 4), None, 0, 1)),
    ("change duplicate isr", ChangePartition(TID, 0, (1, 1), None, 0, 1)),
    ("empty config key", SetConfig("broker:1", "", "v")),
]


@pytest.mark.parametrize("record", [r for _, r in BAD_RECORDS], ids=[n for n, _ in BAD_RECORDS])
def test_invariant_violation_raises_and_leaves_image_unchanged(record: MetadataRecord) -> None:
    image = _cluster()
    before = image.snapshot()
    with pytest.raises(MetadataError):
        image.apply(record)
    assert image.snapshot() == before
    assert image == MetadataImage.from_snapshot(before)


def test_leaderless_partition_and_leader_epoch_bump_without_change() -> None:
    image = _cluster()
    image.apply(CreatePartition(TID, 1, (1, 2), (), NO_LEADER, 0, 0))
    image.apply(ChangePartition(TID, 1, (2,), 2, 1, 1))
    image.apply(ChangePartition(TID, 1, None, None, 5, 2))  # same leader, epoch may rise
    image.apply(ChangePartition(TID, 1, (), NO_LEADER, 6, 3))
    assert image.partition(TID, 1) == PartitionInfo(TID, 1, (1, 2), (), NO_LEADER, 6, 3)


def test_apply_rejects_non_record() -> None:
    with pytest.raises(MetadataError):
        MetadataImage().apply("nope")  # type: ignore[arg-type]


def test_snapshot_round_trip_empty_and_copy() -> None:
    empty = MetadataImage()
    assert MetadataImage.from_snapshot(empty.snapshot()) == empty
    assert MetadataImage.from_snapshot(b"") == empty
    image = _cluster()
    clone = image.copy()
    clone.apply(FenceBroker(1, 10))
    assert clone != image
    assert image.broker(1) == BrokerInfo(1, "inc-1", "host1", 9092, 10, False)


def test_snapshot_replays_through_invariants() -> None:
    image = _cluster()
    body = json.loads(image.snapshot())
    body["records"].append(body["records"][-1])  # a duplicate CreatePartition
    with pytest.raises(MetadataError):
        MetadataImage.from_snapshot(json.dumps(body).encode())
    for bad in (b"{", b"[]", b'{"version":2,"records":[]}', b'{"version":1,"records":{}}'):
        with pytest.raises(MetadataError):
            MetadataImage.from_snapshot(bad)


_image_ops = st.lists(
    st.tuples(st.sampled_from(["leader", "isr", "fence", "unfence", "config"]), st.integers(1, 3)),
    max_size=30,
)


@settings(max_examples=50, deadline=None)
@given(_image_ops)
def test_random_valid_sequences_snapshot_round_trip(ops: list[tuple[str, int]]) -> None:
    image = _cluster()
    for op, b in ops:
        p = image.partition(TID, 0)
        assert p is not None
        if op == "leader":
            if b in p.isr and b != p.leader:
                image.apply(
                    ChangePartition(TID, 0, None, b, p.leader_epoch + 1, p.partition_epoch + 1)
                )
        elif op == "isr":
            isr = tuple(x for x in p.isr if x != b) if b in p.isr else (*p.isr, b)
            if p.leader in isr:
                image.apply(
                    ChangePartition(TID, 0, isr, None, p.leader_epoch, p.partition_epoch + 1)
                )
        elif op in ("fence", "unfence"):
            cls = FenceBroker if op == "fence" else UnfenceBroker
            image.apply(cls(b, 10))
        else:
            image.apply(SetConfig(f"broker:{b}", "k", None if b == 2 else str(b)))
        assert all(x in (1, 2, 3) for x in image.partitions(TID)[0].isr)
    restored = MetadataImage.from_snapshot(image.snapshot())
    assert restored == image and restored.records() == image.records()


def test_producer_id_blocks_are_contiguous_and_snapshotted() -> None:
    image = _cluster()
    assert image.next_producer_id == 1000
    snapshot_before = image.snapshot()
    image.apply(ProducerIdsBlock(1, 1000, 1000))
    image.apply(ProducerIdsBlock(2, 2000, 500))
    assert image.next_producer_id == 2500
    for bad in (ProducerIdsBlock(1, 1000, 10), ProducerIdsBlock(1, 2600, 10)):
        with pytest.raises(MetadataError):
            image.apply(bad)
    with pytest.raises(MetadataError):
        image.apply(ProducerIdsBlock(1, 2500, 0))
    assert image.next_producer_id == 2500
    assert image.snapshot() != snapshot_before
    restored = MetadataImage.from_snapshot(image.snapshot())
    assert restored == image and restored.next_producer_id == 2500
    assert image.copy().next_producer_id == 2500
    assert MetadataImage.from_snapshot(snapshot_before).next_producer_id == 1000


def test_effective_topic_configs_overlay_overrides_on_create_configs() -> None:
    image = _cluster()
    topic = image.topic("orders")
    assert topic is not None
    assert effective_topic_configs(image, "orders") == {"retention.ms": "1000"}
    image.apply(SetConfig(topic_resource(TID), "retention.ms", "5"))
    image.apply(SetConfig(topic_resource(TID), "cleanup.policy", "compact"))
    expected = {"retention.ms": "5", "cleanup.policy": "compact"}
    assert effective_topic_configs(image, topic) == expected
    assert effective_topic_configs(image, "orders") == expected
    with pytest.raises(MetadataError):
        effective_topic_configs(image, "missing")


def test_acls_and_scram_credentials_live_in_the_metadata_and_its_snapshots() -> None:
    from broker.kraft.metadata import (
        CreateAcl,
        DeleteAcl,
        DeleteScramCredential,
        scram_record,
    )
    from broker.security.acl import AclBinding, Operation, PatternType, Permission, ResourceType
    from broker.security.scram import ScramMechanism, make_credential

    read_orders = AclBinding(
        ResourceType.TOPIC, "orders", PatternType.LITERAL, "User:alice", "*",
        Operation.READ, Permission.ALLOW,
    )  # fmt: skip
    credential = make_credential(ScramMechanism.SHA_512, "wonderland", b"salt", 4096)
    image = MetadataImage()
    for record in (
        CreateAcl.of(read_orders),
        scram_record("alice", ScramMechanism.SHA_512, credential),
    ):
        image.apply(decode(encode(record)))
    assert image.acls == {read_orders}
    assert image.scram_credential(ScramMechanism.SHA_512, "alice") == credential
    assert image.scram_credential(ScramMechanism.SHA_256, "alice") is None
    assert image.scram_users() == {"alice": [(ScramMechanism.SHA_512, 4096)]}
    assert MetadataImage.from_snapshot(image.snapshot()) == image
    assert b"wonderland" not in image.snapshot()
    for bad in (
        DeleteAcl.of(replace(read_orders, principal="User:bob")),  # no such ACL
        CreateAcl(2, "orders", 9, "User:a", "*", 3, 3),  # no such pattern type
        CreateAcl(2, "orders", 3, "alice", "*", 3, 3),  # not TYPE:NAME
        DeleteScramCredential("alice", 1),
        replace(scram_record("bob", ScramMechanism.SHA_256, credential), iterations=10),
        replace(scram_record("bob", ScramMechanism.SHA_256, credential), salt="!!"),
    ):
        with pytest.raises(MetadataError):
            image.copy().apply(bad)
    image.apply(DeleteAcl.of(read_orders))
    image.apply(DeleteScramCredential("alice", ScramMechanism.SHA_512.kafka_type))
    assert image.acls == set() and image.scram_users() == {}
