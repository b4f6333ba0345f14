"""Consumer group APIs, served by the leader of `__consumer_offsets` (NOT_COORDINATOR elsewhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker import links
from broker.clock import now_ms
from broker.groups import OffsetAndMetadata
from broker.handlers import handles
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, millis, response_builder
from broker.protocol.versions import ApiKey
from broker.security import authz
from broker.security.acl import ResourceType
from broker.security.authz import (
    DESCRIBE_CLUSTER,
    DESCRIBE_GROUP,
    DESCRIBE_TOPIC,
    DESCRIBE_TRANSACTIONAL_ID,
    READ_GROUP,
    READ_TOPIC,
    Access,
    allowed,
)

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

KIP394_JOIN_VERSION = 4
TRANSACTION_KEY_TYPE = 1
NOT_REQUESTED = -2147483648  # authorized operations a client did not ask for (Kafka's default)


def _group_refusal(broker: Broker, info: ConnectionInfo, group_id: str) -> int:
    """GROUP_AUTHORIZATION_FAILED unless the principal may READ the group (JoinGroup,
    SyncGroup, Heartbeat, LeaveGroup, OffsetCommit), else 0."""
    return 0 if allowed(broker.access(info), READ_GROUP, group_id) else READ_GROUP.error


def _coordinator_refusal(access: Access | None, body: Any) -> int:
    """DESCRIBE on the group, or on the transactional id for a transaction coordinator."""
    if getattr(body, "key_type", 0) == TRANSACTION_KEY_TYPE:
        check = DESCRIBE_TRANSACTIONAL_ID
    else:
        check = DESCRIBE_GROUP
    return 0 if allowed(access, check, body.key) else check.error


@handles(ApiKey.FIND_COORDINATOR)
async def find_coordinator(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.FIND_COORDINATOR, request.header.api_version)
    if error := _coordinator_refusal(broker.access(info), request.body):
        return build.make(
            "FindCoordinatorResponse",
            throttle_time=0,
            error_code=error,
            error_message=None,
            node_id=-1,
            host="",
            port=-1,
        )
    found = await broker.group_coordinator_address(info.listener)
    node_id, (host, port) = found or (-1, ("", -1))
    return build.make(
        "FindCoordinatorResponse",
        throttle_time=0,
        error_code=ErrorCode.none if found else ErrorCode.coordinator_not_available,
        error_message=None if found else "the group coordinator is moving; retry",
        node_id=node_id,
        host=host,
        port=port,
    )


@handles(ApiKey.JOIN_GROUP)
async def join_group(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body, version = request.body, request.header.api_version
    build = response_builder(ApiKey.JOIN_GROUP, version)
    session_timeout_ms = millis(body.session_timeout)
    refusal = _group_refusal(broker, info, body.group_id)
    if refusal or broker.groups is None:
        return build.make(
            "JoinGroupResponse",
            throttle_time=0,
            error_code=refusal or ErrorCode.not_coordinator,
            generation_id=-1,
            protocol_name="",  # Kafka's NoProtocol: the field is not nullable below v7
            leader="",
            member_id="",
            members=(),
        )
    result = await broker.groups.join_group(
        body.group_id,
        body.member_id,
        getattr(body, "group_instance_id", None),
        body.protocol_type,
        [(p.name, p.metadata) for p in body.protocols],
        session_timeout_ms,
        millis(getattr(body, "rebalance_timeout", None), session_timeout_ms),
        request.header.client_id or "",
        info.peer_host,
        version >= KIP394_JOIN_VERSION,
    )
    members = tuple(
        build.make("JoinGroupResponseMember", member_id=m, group_instance_id=i, metadata=meta)
        for m, i, meta in result.members
    )
    return build.make(
        "JoinGroupResponse",
        throttle_time=0,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_name=result.protocol_name,
        leader=result.leader,
        member_id=result.member_id,
        members=members,
    )


@handles(ApiKey.SYNC_GROUP)
async def sync_group(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.SYNC_GROUP, request.header.api_version)
    refusal = _group_refusal(broker, info, body.group_id)
    if refusal or broker.groups is None:
        return build.make(
            "SyncGroupResponse",
            throttle_time=0,
            error_code=refusal or ErrorCode.not_coordinator,
            assignment=b"",
        )
    result = await broker.groups.sync_group(
        body.group_id,
        body.generation_id,
        body.member_id,
        {a.member_id: a.assignment for a in body.assignments},
        group_instance_id=getattr(body, "group_instance_id", None),
    )
    return build.make(
        "SyncGroupResponse", throttle_time=0, error_code=result.error, assignment=result.assignment
    )


@handles(ApiKey.HEARTBEAT)
async def heartbeat(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.HEARTBEAT, request.header.api_version)
    error = _group_refusal(broker, info, body.group_id) or (
        broker.groups.heartbeat(
            body.group_id,
            body.generation_id,
            body.member_id,
            getattr(body, "group_instance_id", None),
        )
        if broker.groups is not None
        else ErrorCode.not_coordinator
    )
    return build.make("HeartbeatResponse", throttle_time=0, error_code=error)


@handles(ApiKey.LEAVE_GROUP)
async def leave_group(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.LEAVE_GROUP, request.header.api_version)
    batched = build.has_field("LeaveGroupResponse", "members")  # v3+: many members, each answered
    identities = (
        [(m.member_id, m.group_instance_id) for m in body.members]
        if batched
        else [(body.member_id, None)]
    )
    refusal = _group_refusal(broker, info, body.group_id)
    if refusal or broker.groups is None:
        return build.make(
            "LeaveGroupResponse",
            throttle_time=0,
            error_code=refusal or ErrorCode.not_coordinator,
            members=(),
        )
    result = broker.groups.leave_group(body.group_id, identities)
    members = tuple(
        build.make(
            "MemberResponse",
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            error_code=m.error,
        )
        for m in result.members
        if batched
    )
    top_error = result.error or (0 if batched else result.members[0].error)
    return build.make("LeaveGroupResponse", throttle_time=0, error_code=top_error, members=members)


@handles(ApiKey.OFFSET_COMMIT)
async def offset_commit(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.OFFSET_COMMIT, request.header.api_version)
    timestamp_ms = now_ms()
    offsets = {
        (topic.name, p.partition_index): OffsetAndMetadata(
            p.committed_offset,
            getattr(p, "committed_leader_epoch", -1),
            p.committed_metadata or "",
            timestamp_ms,
        )
        for topic in body.topics
        for p in topic.partitions
    }
    errors = await _commit(broker, body, offsets, _commit_refusals(broker, info, body, offsets))
    topics = tuple(
        build.make(
            "OffsetCommitResponseTopic",
            name=topic.name,
            partitions=tuple(
                build.make(
                    "OffsetCommitResponsePartition",
                    partition_index=p.partition_index,
                    error_code=errors[(topic.name, p.partition_index)],
                )
                for p in topic.partitions
            ),
        )
        for topic in body.topics
    )
    return build.make("OffsetCommitResponse", throttle_time=0, topics=topics)


def _commit_refusals(
    broker: Broker,
    info: ConnectionInfo,
    body: Any,
    offsets: dict[tuple[str, int], OffsetAndMetadata],
) -> dict[tuple[str, int], int]:
    """Partitions the ACLs refuse: all of them without READ on the group, else those of
    topics without READ (Kafka's checks, in that order)."""
    access = broker.access(info)
    if access is None:
        return {}
    if not access.allows(READ_GROUP, body.group_id):
        return dict.fromkeys(offsets, int(READ_GROUP.error))
    unauthorized = access.refused(READ_TOPIC, (topic for topic, _ in offsets))
    return {tp: int(READ_TOPIC.error) for tp in offsets if tp[0] in unauthorized}


async def _commit(
    broker: Broker,
    body: Any,
    offsets: dict[tuple[str, int], OffsetAndMetadata],
    unauthorized: dict[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """Commit, then (multi-broker region) wait until the ISR holds it, as Kafka does."""
    if unauthorized and len(unauthorized) == len(offsets):
        return unauthorized  # the coordinator is not even asked
    if broker.groups is None:
        return {tp: int(ErrorCode.not_coordinator) for tp in offsets} | unauthorized
    refused = {**_refused_commits(broker, offsets), **unauthorized}
    errors = broker.groups.commit_offsets(
        body.group_id,
        body.generation_id_or_member_epoch,
        body.member_id,
        {tp: offset for tp, offset in offsets.items() if tp not in refused},
        group_instance_id=getattr(body, "group_instance_id", None),
    )
    replicated = await broker.group_log_replicated()
    if replicated != ErrorCode.none:
        errors = {tp: error or replicated for tp, error in errors.items()}
    return {**errors, **refused}


def _refused_commits(
    broker: Broker, offsets: dict[tuple[str, int], OffsetAndMetadata]
) -> dict[tuple[str, int], int]:
    """Partitions whose commit the region's role refuses (see links.client_commit_refusal)."""
    refused = {}
    for topic, partition in offsets:
        info = broker.topics.get(topic)
        if info is not None and links.client_commit_refusal(topic, info.configs, broker.topology):
            refused[(topic, partition)] = int(ErrorCode.policy_violation)
    return refused


@handles(ApiKey.OFFSET_FETCH)
async def offset_fetch(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.OFFSET_FETCH, request.header.api_version)
    wanted = (
        None
        if body.topics is None
        else [(t.name, p) for t in body.topics for p in t.partition_indexes]
    )
    access = broker.access(info)
    error = 0 if allowed(access, DESCRIBE_GROUP, body.group_id) else DESCRIBE_GROUP.error
    if error or broker.groups is None:
        error = error or ErrorCode.not_coordinator
        # v1 has no request-level error: Kafka answers it on each partition asked for.
        per_partition = not build.has_field("OffsetFetchResponse", "error_code")
        errors: dict[tuple[str, int], tuple[int, OffsetAndMetadata | None]] = (
            dict.fromkeys(wanted or (), (error, None)) if per_partition else {}
        )
        return build.make(
            "OffsetFetchResponse",
            throttle_time=0,
            topics=_offset_fetch_topics(build, errors),
            error_code=error,
        )
    # Offsets of topics the principal may not describe: refused when named, left out of all.
    asked = {topic for topic, _ in wanted} if wanted is not None else None
    committed = broker.groups.fetch_offsets(body.group_id, wanted)
    unauthorized = authz.refused(access, DESCRIBE_TOPIC, asked or {t for t, _ in committed})
    results: dict[tuple[str, int], tuple[int, OffsetAndMetadata | None]] = {
        tp: (0, value) for tp, value in committed.items() if tp[0] not in unauthorized
    }
    if wanted is not None:
        results |= {tp: (DESCRIBE_TOPIC.error, None) for tp in wanted if tp[0] in unauthorized}
    return build.make(
        "OffsetFetchResponse",
        throttle_time=0,
        topics=_offset_fetch_topics(build, results),
        error_code=0,
    )


def _offset_fetch_topics(
    build: MessageBuilder, results: dict[tuple[str, int], tuple[int, OffsetAndMetadata | None]]
) -> tuple[Any, ...]:
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), (error, value) in sorted(results.items()):
        by_topic.setdefault(topic, []).append(
            build.make(
                "OffsetFetchResponsePartition",
                partition_index=partition,
                committed_offset=value.offset if value else -1,
                committed_leader_epoch=value.leader_epoch if value else -1,
                metadata=value.metadata if value else "",
                error_code=error,
            )
        )
    return tuple(
        build.make("OffsetFetchResponseTopic", name=name, partitions=tuple(parts))
        for name, parts in by_topic.items()
    )


@handles(ApiKey.LIST_GROUPS)
async def list_groups(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.LIST_GROUPS, request.header.api_version)
    states = set(getattr(request.body, "states_filter", ()) or ())
    listed = [
        (g, t, s)
        for g, t, s in (broker.groups.list_groups() if broker.groups else ())
        if not states or s in states
    ]
    # DESCRIBE on the cluster shows every group; otherwise only those it may describe.
    access = broker.access(info)
    if access is not None and not access.allows(DESCRIBE_CLUSTER):
        hidden = access.refused(DESCRIBE_GROUP, (g for g, _, _ in listed))
        listed = [group for group in listed if group[0] not in hidden]
    groups = tuple(
        build.make("ListedGroup", group_id=g, protocol_type=t, group_state=s) for g, t, s in listed
    )
    return build.make("ListGroupsResponse", throttle_time=0, error_code=0, groups=groups)


@handles(ApiKey.DESCRIBE_GROUPS)
async def describe_groups(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DESCRIBE_GROUPS, request.header.api_version)
    access = broker.access(info)
    unauthorized = authz.refused(access, DESCRIBE_GROUP, request.body.groups)
    with_operations = getattr(request.body, "include_authorized_operations", False)
    described = []
    for group_id in request.body.groups:
        if group_id in unauthorized or broker.groups is None:
            described.append(
                build.make(
                    "DescribedGroup",
                    error_code=DESCRIBE_GROUP.error
                    if group_id in unauthorized
                    else ErrorCode.not_coordinator,
                    group_id=group_id,
                    group_state="",
                    protocol_type="",
                    protocol_data="",
                    members=(),
                    authorized_operations=NOT_REQUESTED,
                )
            )
            continue
        group = broker.groups.describe_group(group_id)
        members = tuple(
            build.make(
                "DescribedGroupMember",
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata,
                member_assignment=m.assignment,
            )
            for m in group.members
        )
        described.append(
            build.make(
                "DescribedGroup",
                error_code=ErrorCode.none,
                group_id=group_id,
                group_state=group.state,
                protocol_type=group.protocol_type,
                protocol_data=group.protocol,
                members=members,
                authorized_operations=authz.authorized_operations(
                    access, ResourceType.GROUP, group_id
                )
                if with_operations
                else NOT_REQUESTED,
            )
        )
    return build.make("DescribeGroupsResponse", throttle_time=0, groups=tuple(described))
