"""Requests → the ACL checks Kafka makes, through a real single-node broker's handlers.

Each test encodes a real request, hands it to `Broker.dispatch` as a connection of a given
principal would, and reads the decoded answer: the error codes Kafka gives (29 topic, 30
group, 31 cluster, 53 transactional id), and what a listing leaves out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.broker import Broker
from broker.config import BrokerConfig
from broker.kraft.metadata import CreateAcl
from broker.protocol.codec import RequestHeader, decode_response, encode_request_frame
from broker.protocol.errors import ErrorCode
from broker.protocol.link import (
    LinkAppendPartition,
    LinkAppendRequest,
    LinkAppendTopic,
)
from broker.protocol.messages import request_builder
from broker.protocol.records import Record, build_batch
from broker.protocol.versions import SERVED, ApiKey
from broker.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from broker.security.authz import RULES, rules_table
from broker.security.guard import AuthorizerSettings
from broker.server import ConnectionInfo

ADMIN, ALICE = "User:admin", "User:alice"
TOPIC_DENIED = ErrorCode.topic_authorization_failed
GROUP_DENIED = ErrorCode.group_authorization_failed
CLUSTER_DENIED = ErrorCode.cluster_authorization_failed


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def connection(principal: str) -> ConnectionInfo:
    """A connection acting as `principal`, as a verified client certificate makes it."""
    return ConnectionInfo("127.0.0.1", 50000, certificate_principal=principal)


def allow(
    kind: ResourceType,
    name: str,
    op: Operation,
    principal: str = ALICE,
    pattern: PatternType = PatternType.LITERAL,
) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", op, Permission.ALLOW)


class Harness:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._correlation = 0

    async def grant(self, *bindings: AclBinding) -> None:
        await self.broker.security.alter([CreateAcl.of(b) for b in bindings])

    async def ask(
        self, principal: str, api_key: int, version: int, class_name: str, **fields: Any
    ) -> Any:
        body = request_builder(api_key, version).make(class_name, **fields)
        return await self.send(principal, api_key, version, body)

    async def send(self, principal: str, api_key: int, version: int, body: Any) -> Any:
        self._correlation += 1
        header = RequestHeader(api_key, version, self._correlation, "test")
        frame = b"".join(bytes(s) for s in encode_request_frame(header, body))[4:]
        response = await self.broker.dispatch(bytearray(frame), connection(principal))
        if response is None:
            return None
        payload = b"".join(bytes(s) for s in response)[4:]
        return decode_response(api_key, version, payload)[1]

    async def create_topic(self, name: str) -> None:
        await self.broker.create_topic(name, 1, {})

    async def produce(self, principal: str, topic: str, transactional_id: str | None = None) -> Any:
        build = request_builder(ApiKey.PRODUCE, 8)
        batch = build_batch([Record(0, 1000, b"k", b"v")])
        data = build.make("PartitionProduceData", index=0, records=batch)
        topic_data = build.make("TopicProduceData", name=topic, partition_data=(data,))
        response = await self.ask(
            principal,
            ApiKey.PRODUCE,
            8,
            "ProduceRequest",
            acks=1,
            timeout=5000,
            transactional_id=transactional_id,
            topic_data=(topic_data,),
        )
        return response.responses[0].partition_responses[0].error_code

    async def metadata(self, principal: str, topics: list[str] | None) -> dict[str, int]:
        build = request_builder(ApiKey.METADATA, 8)
        named = (
            None
            if topics is None
            else tuple(build.make("MetadataRequestTopic", name=t) for t in topics)
        )
        response = await self.ask(
            principal,
            ApiKey.METADATA,
            8,
            "MetadataRequest",
            topics=named,
            allow_auto_topic_creation=True,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
        return {t.name: t.error_code for t in response.topics if t.name != "__consumer_offsets"}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    config = BrokerConfig(data_dir=tmp_path, authorizer=AuthorizerSettings((ADMIN,)))
    broker = Broker(config)
    try:
        yield Harness(broker)
    finally:
        broker.close()


def test_every_request_served_has_rules_and_the_docs_carry_them() -> None:
    served = set(SERVED) | {ApiKey.LINK_APPEND, ApiKey.LINK_TRUNCATE}
    assert served <= set(RULES), served - set(RULES)
    docs = Path(__file__).parents[2] / "docs" / "security.md"
    assert rules_table() in docs.read_text(), "regenerate the table: rules_table()"


@pytest.mark.anyio
async def test_produce_needs_write_on_the_topic_and_the_transactional_id(harness: Harness) -> None:
    await harness.create_topic("orders")
    assert await harness.produce(ALICE, "orders") == TOPIC_DENIED
    await harness.grant(
        allow(ResourceType.TOPIC, "ord", Operation.WRITE, pattern=PatternType.PREFIXED)
    )
    assert await harness.produce(ALICE, "orders") == ErrorCode.none
    assert (
        await harness.produce(ALICE, "orders", "tx-1")
        == ErrorCode.transactional_id_authorization_failed
    )
    assert await harness.produce(ADMIN, "orders") == ErrorCode.none  # a super user


async def _fetch(harness: Harness, principal: str, topic: str, replica_id: int = -1) -> int:
    build = request_builder(ApiKey.FETCH, 4)
    partition = build.make(
        "FetchPartition", partition=0, fetch_offset=0, partition_max_bytes=1 << 20
    )
    response = await harness.ask(
        principal,
        ApiKey.FETCH,
        4,
        "FetchRequest",
        replica_id=replica_id,
        max_wait=0,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        topics=(build.make("FetchTopic", topic=topic, partitions=(partition,)),),
    )
    return response.responses[0].partitions[0].error_code


@pytest.mark.anyio
async def test_fetch_needs_read_and_a_follower_cluster_action(harness: Harness) -> None:
    await harness.create_topic("orders")
    assert await _fetch(harness, ALICE, "orders") == TOPIC_DENIED
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.READ))
    assert await _fetch(harness, ALICE, "orders") == ErrorCode.none
    # As a follower, READ is not enough: CLUSTER_ACTION, answered as Kafka does (29).
    assert await _fetch(harness, ALICE, "orders", replica_id=2) == TOPIC_DENIED
    await harness.grant(allow(ResourceType.CLUSTER, CLUSTER_NAME, Operation.CLUSTER_ACTION))
    assert await _fetch(harness, ALICE, "orders", replica_id=2) == ErrorCode.none


@pytest.mark.anyio
async def test_metadata_shows_only_what_may_be_described(harness: Harness) -> None:
    for name in ("orders", "payments"):
        await harness.create_topic(name)
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.READ))  # implies DESCRIBE
    assert await harness.metadata(ALICE, None) == {"orders": 0}
    assert await harness.metadata(ADMIN, None) == {"orders": 0, "payments": 0}
    named = await harness.metadata(ALICE, ["orders", "payments", "missing"])
    assert named == {"orders": 0, "payments": TOPIC_DENIED, "missing": TOPIC_DENIED}
    # DESCRIBE on a missing topic, but auto-creating it needs CREATE.
    await harness.grant(
        allow(ResourceType.TOPIC, "new-", Operation.DESCRIBE, pattern=PatternType.PREFIXED)
    )
    assert await harness.metadata(ALICE, ["new-a"]) == {"new-a": TOPIC_DENIED}
    assert "new-a" not in harness.broker.topics
    await harness.grant(
        allow(ResourceType.TOPIC, "new-", Operation.CREATE, pattern=PatternType.PREFIXED)
    )
    assert await harness.metadata(ALICE, ["new-a"]) == {"new-a": ErrorCode.leader_not_available}
    assert "new-a" in harness.broker.topics


@pytest.mark.anyio
async def test_list_offsets_and_offset_for_leader_epoch_need_describe(harness: Harness) -> None:
    await harness.create_topic("orders")
    build = request_builder(ApiKey.LIST_OFFSETS, 5)
    query = build.make(
        "ListOffsetsPartition", partition_index=0, current_leader_epoch=-1, timestamp=-1
    )

    async def list_offsets() -> int:
        response = await harness.ask(
            ALICE,
            ApiKey.LIST_OFFSETS,
            5,
            "ListOffsetsRequest",
            replica_id=-1,
            isolation_level=0,
            topics=(build.make("ListOffsetsTopic", name="orders", partitions=(query,)),),
        )
        return response.topics[0].partitions[0].error_code

    epochs = request_builder(ApiKey.OFFSET_FOR_LEADER_EPOCH, 3)
    asked = epochs.make(
        "OffsetForLeaderPartition", partition=0, current_leader_epoch=-1, leader_epoch=0
    )

    async def epoch_end() -> int:
        response = await harness.ask(
            ALICE,
            ApiKey.OFFSET_FOR_LEADER_EPOCH,
            3,
            "OffsetForLeaderEpochRequest",
            replica_id=-1,
            topics=(epochs.make("OffsetForLeaderTopic", topic="orders", partitions=(asked,)),),
        )
        return response.topics[0].partitions[0].error_code

    assert (await list_offsets(), await epoch_end()) == (TOPIC_DENIED, TOPIC_DENIED)
    await harness.grant(allow(ResourceType.CLUSTER, CLUSTER_NAME, Operation.CLUSTER_ACTION))
    assert await epoch_end() == ErrorCode.none  # a follower's right covers every topic
    assert await list_offsets() == TOPIC_DENIED
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.DESCRIBE))
    assert await list_offsets() == ErrorCode.none


async def _commit(harness: Harness, principal: str, group: str, topic: str) -> int:
    build = request_builder(ApiKey.OFFSET_COMMIT, 7)
    partition = build.make(
        "OffsetCommitRequestPartition",
        partition_index=0,
        committed_offset=1,
        committed_leader_epoch=-1,
        committed_metadata="",
    )
    response = await harness.ask(
        principal,
        ApiKey.OFFSET_COMMIT,
        7,
        "OffsetCommitRequest",
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        group_instance_id=None,
        topics=(build.make("OffsetCommitRequestTopic", name=topic, partitions=(partition,)),),
    )
    return response.topics[0].partitions[0].error_code


async def _offset_fetch(
    harness: Harness, principal: str, group: str, topics: list[str] | None
) -> Any:
    build = request_builder(ApiKey.OFFSET_FETCH, 7)
    asked = (
        None
        if topics is None
        else tuple(
            build.make("OffsetFetchRequestTopic", name=t, partition_indexes=(0,)) for t in topics
        )
    )
    return await harness.ask(
        principal,
        ApiKey.OFFSET_FETCH,
        7,
        "OffsetFetchRequest",
        group_id=group,
        topics=asked,
        require_stable=False,
    )


@pytest.mark.anyio
async def test_commit_needs_read_on_group_then_topic_and_fetch_describe(harness: Harness) -> None:
    for name in ("orders", "payments"):
        await harness.create_topic(name)
        assert await _commit(harness, ADMIN, "billing", name) == ErrorCode.none
    assert await _commit(harness, ALICE, "billing", "orders") == GROUP_DENIED
    await harness.grant(allow(ResourceType.GROUP, "billing", Operation.READ))
    assert await _commit(harness, ALICE, "billing", "orders") == TOPIC_DENIED
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.READ))
    assert await _commit(harness, ALICE, "billing", "orders") == ErrorCode.none

    assert (await _offset_fetch(harness, ALICE, "other", None)).error_code == GROUP_DENIED
    everything = await _offset_fetch(harness, ALICE, "billing", None)  # READ implies DESCRIBE
    assert [t.name for t in everything.topics] == ["orders"]  # payments left out
    named = await _offset_fetch(harness, ALICE, "billing", ["orders", "payments"])
    errors = {t.name: t.partitions[0].error_code for t in named.topics}
    assert errors == {"orders": ErrorCode.none, "payments": TOPIC_DENIED}


@pytest.mark.anyio
async def test_group_membership_needs_read_and_listing_describe(harness: Harness) -> None:
    await harness.create_topic("orders")
    for group in ("billing", "audit"):
        assert await _commit(harness, ADMIN, group, "orders") == ErrorCode.none
    found = await harness.ask(
        ALICE, ApiKey.FIND_COORDINATOR, 2, "FindCoordinatorRequest", key="billing", key_type=0
    )
    assert found.error_code == GROUP_DENIED
    joined = await harness.ask(
        ALICE,
        ApiKey.JOIN_GROUP,
        5,
        "JoinGroupRequest",
        group_id="billing",
        session_timeout=10000,
        rebalance_timeout=10000,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=(),
    )
    assert joined.error_code == GROUP_DENIED
    beat = await harness.ask(
        ALICE,
        ApiKey.HEARTBEAT,
        3,
        "HeartbeatRequest",
        group_id="billing",
        generation_id=1,
        member_id="m",
        group_instance_id=None,
    )
    assert beat.error_code == GROUP_DENIED

    async def listed(principal: str) -> list[str]:
        response = await harness.ask(
            principal, ApiKey.LIST_GROUPS, 4, "ListGroupsRequest", states_filter=()
        )
        return sorted(g.group_id for g in response.groups)

    assert await listed(ALICE) == []
    await harness.grant(allow(ResourceType.GROUP, "billing", Operation.DESCRIBE))
    assert await listed(ALICE) == ["billing"]
    assert await listed(ADMIN) == ["audit", "billing"]
    await harness.grant(allow(ResourceType.CLUSTER, CLUSTER_NAME, Operation.DESCRIBE))
    assert await listed(ALICE) == ["audit", "billing"]
    described = await harness.ask(
        ALICE,
        ApiKey.DESCRIBE_GROUPS,
        4,
        "DescribeGroupsRequest",
        groups=("billing", "audit"),
        include_authorized_operations=True,
    )
    assert [(g.group_id, g.error_code) for g in described.groups] == [
        ("billing", 0),
        ("audit", GROUP_DENIED),
    ]
    assert described.groups[0].authorized_operations == 1 << Operation.DESCRIBE
    found = await harness.ask(
        ALICE, ApiKey.FIND_COORDINATOR, 2, "FindCoordinatorRequest", key="billing", key_type=0
    )
    assert found.error_code == ErrorCode.none


@pytest.mark.anyio
async def test_topic_admin_requests(harness: Harness) -> None:
    await harness.create_topic("orders")
    build = request_builder(ApiKey.CREATE_TOPICS, 4)
    new = build.make(
        "CreatableTopic",
        name="events",
        num_partitions=1,
        replication_factor=-1,
        assignments=(),
        configs=(),
    )

    async def create() -> int:
        response = await harness.ask(
            ALICE,
            ApiKey.CREATE_TOPICS,
            4,
            "CreateTopicsRequest",
            topics=(new,),
            timeout=5000,
            validate_only=False,
        )
        return response.topics[0].error_code

    async def delete(name: str) -> int:
        response = await harness.ask(
            ALICE, ApiKey.DELETE_TOPICS, 4, "DeleteTopicsRequest", topic_names=(name,), timeout=5000
        )
        return response.responses[0].error_code

    async def add_partitions() -> int:
        grow = request_builder(ApiKey.CREATE_PARTITIONS, 2)
        topic = grow.make("CreatePartitionsTopic", name="orders", count=2, assignments=None)
        response = await harness.ask(
            ALICE,
            ApiKey.CREATE_PARTITIONS,
            2,
            "CreatePartitionsRequest",
            topics=(topic,),
            timeout=5000,
            validate_only=True,
        )
        return response.results[0].error_code

    assert (await create(), await delete("orders"), await delete("nowhere")) == (TOPIC_DENIED,) * 3
    assert await add_partitions() == TOPIC_DENIED
    await harness.grant(
        allow(ResourceType.CLUSTER, CLUSTER_NAME, Operation.CREATE),
        allow(ResourceType.TOPIC, "orders", Operation.ALTER),
    )
    assert await create() == ErrorCode.none
    assert await add_partitions() == ErrorCode.none
    await harness.grant(allow(ResourceType.TOPIC, "*", Operation.DELETE))
    assert await delete("orders") == ErrorCode.none


@pytest.mark.anyio
async def test_init_producer_id_needs_idempotent_write_or_write_on_any_topic(
    harness: Harness,
) -> None:
    async def init(transactional_id: str | None = None) -> int:
        response = await harness.ask(
            ALICE,
            ApiKey.INIT_PRODUCER_ID,
            4,
            "InitProducerIdRequest",
            transactional_id=transactional_id,
            transaction_timeout=60000,
            producer_id=-1,
            producer_epoch=-1,
        )
        return response.error_code

    assert await init() == CLUSTER_DENIED
    assert await init("tx-1") == ErrorCode.transactional_id_authorization_failed
    await harness.grant(
        allow(ResourceType.TOPIC, "logs-", Operation.WRITE, pattern=PatternType.PREFIXED)
    )
    assert await init() == ErrorCode.none


@pytest.mark.anyio
async def test_configs_need_describe_and_alter_configs(harness: Harness) -> None:
    await harness.create_topic("orders")
    describe = request_builder(ApiKey.DESCRIBE_CONFIGS, 1)
    resources = (
        describe.make(
            "DescribeConfigsResource",
            resource_type=2,
            resource_name="orders",
            configuration_keys=None,
        ),
        describe.make(
            "DescribeConfigsResource", resource_type=4, resource_name="", configuration_keys=None
        ),
    )
    described = await harness.ask(
        ALICE,
        ApiKey.DESCRIBE_CONFIGS,
        1,
        "DescribeConfigsRequest",
        resources=resources,
        include_synonyms=False,
    )
    assert [r.error_code for r in described.results] == [TOPIC_DENIED, CLUSTER_DENIED]
    alter = request_builder(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1)
    change = alter.make("AlterableConfig", name="retention.ms", config_operation=0, value="1000")
    resource = alter.make(
        "AlterConfigsResource", resource_type=2, resource_name="orders", configs=(change,)
    )
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.DESCRIBE_CONFIGS))

    async def altered() -> int:
        response = await harness.ask(
            ALICE,
            ApiKey.INCREMENTAL_ALTER_CONFIGS,
            1,
            "IncrementalAlterConfigsRequest",
            resources=(resource,),
            validate_only=True,
        )
        return response.responses[0].error_code

    assert await altered() == TOPIC_DENIED
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.ALTER_CONFIGS))
    assert await altered() == ErrorCode.none
    described = await harness.ask(
        ALICE,
        ApiKey.DESCRIBE_CONFIGS,
        1,
        "DescribeConfigsRequest",
        resources=resources[:1],
        include_synonyms=False,
    )
    assert described.results[0].error_code == ErrorCode.none


@pytest.mark.anyio
async def test_link_append_needs_cluster_action(harness: Harness) -> None:
    await harness.create_topic("orders")
    body = LinkAppendRequest(
        "us-east",
        0,
        1000,
        (
            LinkAppendTopic(
                "orders", (LinkAppendPartition(0, 0, build_batch([Record(0, 1, None, b"v")])),)
            ),
        ),
    )
    response = await harness.send(ALICE, ApiKey.LINK_APPEND, 0, body)
    assert response.topics[0].partitions[0].error_code == CLUSTER_DENIED
    partition = harness.broker.partition("orders", 0)
    assert partition is not None and partition.log.log_end_offset == 0  # nothing written


@pytest.mark.anyio
async def test_acl_requests_need_alter_and_describe_on_the_cluster(harness: Harness) -> None:
    create = request_builder(ApiKey.CREATE_ACLS, 1)
    wanted = create.make(
        "AclCreation",
        resource_type=2,
        resource_name="orders",
        resource_pattern_type=3,
        principal=ALICE,
        host="*",
        operation=Operation.READ,
        permission_type=Permission.ALLOW,
    )
    bad = dataclasses.replace(wanted, resource_type=ResourceType.CLUSTER)  # named "orders"
    refused = await harness.ask(
        ALICE, ApiKey.CREATE_ACLS, 1, "CreateAclsRequest", creations=(wanted,)
    )
    assert refused.results[0].error_code == CLUSTER_DENIED
    created = await harness.ask(
        ADMIN, ApiKey.CREATE_ACLS, 1, "CreateAclsRequest", creations=(wanted, bad)
    )
    assert [r.error_code for r in created.results] == [ErrorCode.none, ErrorCode.invalid_request]
    assert harness.broker.security.acls() == {allow(ResourceType.TOPIC, "orders", Operation.READ)}

    describe = dict(
        resource_type_filter=ResourceType.ANY,
        resource_name_filter=None,
        pattern_type_filter=PatternType.ANY,
        principal_filter=None,
        host_filter=None,
        operation=Operation.ANY,
        permission_type=Permission.ANY,
    )
    denied = await harness.ask(ALICE, ApiKey.DESCRIBE_ACLS, 1, "DescribeAclsRequest", **describe)
    assert denied.error_code == CLUSTER_DENIED and denied.resources == ()
    found = await harness.ask(ADMIN, ApiKey.DESCRIBE_ACLS, 1, "DescribeAclsRequest", **describe)
    assert [(r.resource_name, [a.principal for a in r.acls]) for r in found.resources] == [
        ("orders", [ALICE])
    ]

    delete = request_builder(ApiKey.DELETE_ACLS, 1)
    everything = delete.make("DeleteAclsFilter", **describe)
    deleted = await harness.ask(
        ADMIN, ApiKey.DELETE_ACLS, 1, "DeleteAclsRequest", filters=(everything,)
    )
    assert [m.resource_name for m in deleted.filter_results[0].matching_acls] == ["orders"]
    assert harness.broker.security.acls() == frozenset()


@pytest.mark.anyio
async def test_without_an_authorizer_everything_is_allowed_and_acls_are_disabled(
    tmp_path: Path,
) -> None:
    broker = Broker(BrokerConfig(data_dir=tmp_path))
    try:
        harness = Harness(broker)
        await harness.create_topic("orders")
        assert broker.access(connection(ALICE)) is None
        assert await harness.produce(ALICE, "orders") == ErrorCode.none
        response = await harness.ask(
            ALICE, ApiKey.CREATE_ACLS, 1, "CreateAclsRequest", creations=()
        )
        assert response.results == ()
        describe = await harness.ask(
            ALICE,
            ApiKey.DESCRIBE_ACLS,
            1,
            "DescribeAclsRequest",
            resource_type_filter=1,
            resource_name_filter=None,
            pattern_type_filter=1,
            principal_filter=None,
            host_filter=None,
            operation=1,
            permission_type=1,
        )
        assert describe.error_code == ErrorCode.security_disabled
    finally:
        broker.close()


@pytest.mark.anyio
async def test_the_authorizer_is_rebuilt_only_when_the_acls_change(harness: Harness) -> None:
    first = harness.broker.access(connection(ALICE))
    again = harness.broker.access(connection(ALICE))
    assert first is not None and again is not None
    assert first._authorizer is again._authorizer
    await harness.grant(allow(ResourceType.TOPIC, "orders", Operation.READ))
    changed = harness.broker.access(connection(ALICE))
    assert changed is not None and changed._authorizer is not first._authorizer


@pytest.mark.anyio
async def test_scram_user_admin_needs_describe_and_alter_on_the_cluster(harness: Harness) -> None:
    async def describe(principal: str) -> int:
        response = await harness.ask(
            principal,
            ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS,
            0,
            "DescribeUserScramCredentialsRequest",
            users=None,
        )
        return response.error_code

    alter = request_builder(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0)
    deletion = alter.make("ScramCredentialDeletion", name="bob", mechanism=1)

    async def delete_bob(principal: str) -> int:
        response = await harness.ask(
            principal,
            ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
            0,
            "AlterUserScramCredentialsRequest",
            deletions=(deletion,),
            upsertions=(),
        )
        return response.results[0].error_code

    assert (await describe(ALICE), await delete_bob(ALICE)) == (CLUSTER_DENIED, CLUSTER_DENIED)
    assert await describe(ADMIN) == ErrorCode.none
    assert await delete_bob(ADMIN) == ErrorCode.resource_not_found  # allowed; no such user
