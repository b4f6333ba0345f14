"""Group requests: coordinators, listing, committed offsets, and classic membership."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.client.client import KafkaClient, KafkaError, check
from broker.client.data import TopicPartition
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder
from broker.protocol.versions import ApiKey

GROUP_KEY = 0


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True)
class JoinResult:
    generation_id: int
    member_id: str
    leader: str
    protocol: str | None
    members: tuple[tuple[str, bytes], ...]  # (member_id, metadata), only for the leader


async def find_coordinator(client: KafkaClient, group_id: str) -> int:
    """The node id of the group's coordinator."""

    def build(b: MessageBuilder, version: int) -> Any:
        return b.make("FindCoordinatorRequest", key=group_id, key_type=GROUP_KEY)

    response = await client.call(ApiKey.FIND_COORDINATOR, build)
    check(
        response.error_code, f"FindCoordinator {group_id}", getattr(response, "error_message", None)
    )
    node_id = int(response.node_id)
    client.view.brokers.setdefault(node_id, (response.host, int(response.port)))
    return node_id


async def list_groups(client: KafkaClient) -> list[GroupListing]:
    """Every group on every broker of the cluster."""
    await client.refresh_metadata([])

    def build(b: MessageBuilder, version: int) -> Any:
        return b.make("ListGroupsRequest", states_filter=())

    groups: list[GroupListing] = []
    for node_id in sorted(client.view.brokers):
        response = await client.call(ApiKey.LIST_GROUPS, build, node_id)
        check(response.error_code, f"ListGroups on broker {node_id}")
        groups.extend(
            GroupListing(g.group_id, g.protocol_type, getattr(g, "group_state", ""))
            for g in response.groups
        )
    return groups


async def describe_group_states(client: KafkaClient, group_ids: list[str]) -> dict[str, str]:
    """{group: state} ("Empty", "Stable", "Dead", ...) asked at each group's coordinator."""
    by_coordinator: dict[int, list[str]] = defaultdict(list)
    for group_id in group_ids:
        by_coordinator[await find_coordinator(client, group_id)].append(group_id)
    states: dict[str, str] = {}
    for node_id, ids in by_coordinator.items():

        def build(b: MessageBuilder, version: int, ids: list[str] = ids) -> Any:
            return b.make(
                "DescribeGroupsRequest", groups=tuple(ids), include_authorized_operations=False
            )

        response = await client.call(ApiKey.DESCRIBE_GROUPS, build, node_id)
        for group in response.groups:
            check(group.error_code, f"DescribeGroups {group.group_id}")
            states[group.group_id] = group.group_state
    return states


async def fetch_committed(
    client: KafkaClient,
    group_id: str,
    partitions: Mapping[str, Iterable[int]] | None = None,
    coordinator: int | None = None,
) -> dict[TopicPartition, tuple[int, str]]:
    """Committed offsets of a group → {tp: (offset, metadata)}, for `partitions` or all.

    Name the partitions when you know them: some brokers (Tansu 0.6) answer the
    "all topics" form with a malformed response.
    """
    node_id = coordinator if coordinator is not None else await find_coordinator(client, group_id)

    def build(b: MessageBuilder, version: int) -> Any:
        topics = None
        if partitions is not None:
            topics = tuple(
                b.make("OffsetFetchRequestTopic", name=name, partition_indexes=tuple(indexes))
                for name, indexes in partitions.items()
            )
        return b.make("OffsetFetchRequest", group_id=group_id, topics=topics, require_stable=False)

    response = await client.call(ApiKey.OFFSET_FETCH, build, node_id)
    check(getattr(response, "error_code", 0), f"OffsetFetch {group_id}")
    offsets: dict[TopicPartition, tuple[int, str]] = {}
    for topic in response.topics:
        for p in topic.partitions:
            if int(p.error_code) == 0 and int(p.committed_offset) >= 0:
                offsets[(topic.name, int(p.partition_index))] = (
                    int(p.committed_offset),
                    p.metadata or "",
                )
    return offsets


async def commit_offsets(
    client: KafkaClient,
    group_id: str,
    offsets: Mapping[TopicPartition, tuple[int, str]],
    *,
    generation_id: int = -1,
    member_id: str = "",
    coordinator: int | None = None,
) -> dict[TopicPartition, int]:
    """OffsetCommit (as a simple, memberless commit by default) → {tp: error_code}."""
    node_id = coordinator if coordinator is not None else await find_coordinator(client, group_id)
    by_topic: dict[str, dict[int, tuple[int, str]]] = defaultdict(dict)
    for (topic, partition), value in offsets.items():
        by_topic[topic][partition] = value

    def build(b: MessageBuilder, version: int) -> Any:
        topics = tuple(
            b.make(
                "OffsetCommitRequestTopic",
                name=topic,
                partitions=tuple(
                    b.make(
                        "OffsetCommitRequestPartition",
                        partition_index=p,
                        committed_offset=offset,
                        committed_leader_epoch=-1,
                        committed_metadata=metadata,
                        commit_timestamp=-1,
                    )
                    for p, (offset, metadata) in parts.items()
                ),
            )
            for topic, parts in by_topic.items()
        )
        return b.make(
            "OffsetCommitRequest",
            group_id=group_id,
            generation_id_or_member_epoch=generation_id,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=None,
            retention_time=-1,
            topics=topics,
        )

    response = await client.call(ApiKey.OFFSET_COMMIT, build, node_id)
    return {
        (topic.name, int(p.partition_index)): int(p.error_code)
        for topic in response.topics
        for p in topic.partitions
    }


async def join_group(
    client: KafkaClient,
    coordinator: int,
    group_id: str,
    member_id: str,
    protocol_type: str,
    protocols: list[tuple[str, bytes]],
    session_timeout_ms: int,
    rebalance_timeout_ms: int,
    group_instance_id: str | None = None,
) -> JoinResult:
    """JoinGroup, retrying once with the member id the coordinator assigns (KIP-394)."""
    for _attempt in range(2):

        def build(b: MessageBuilder, version: int, member_id: str = member_id) -> Any:
            return b.make(
                "JoinGroupRequest",
                group_id=group_id,
                session_timeout=session_timeout_ms,
                rebalance_timeout=rebalance_timeout_ms,
                member_id=member_id,
                group_instance_id=group_instance_id,
                protocol_type=protocol_type,
                protocols=tuple(
                    b.make("JoinGroupRequestProtocol", name=n, metadata=m) for n, m in protocols
                ),
            )

        timeout_s = client.request_timeout_s + rebalance_timeout_ms / 1000
        response = await client.call(ApiKey.JOIN_GROUP, build, coordinator, timeout_s)
        if int(response.error_code) == ErrorCode.member_id_required:
            member_id = response.member_id
            continue
        check(response.error_code, f"JoinGroup {group_id}")
        return JoinResult(
            int(response.generation_id),
            response.member_id,
            response.leader,
            response.protocol_name,
            tuple((m.member_id, bytes(m.metadata)) for m in response.members),
        )
    raise KafkaError(int(ErrorCode.member_id_required), f"JoinGroup {group_id}")


async def sync_group(
    client: KafkaClient,
    coordinator: int,
    group_id: str,
    generation_id: int,
    member_id: str,
    assignments: Mapping[str, bytes],
    group_instance_id: str | None = None,
) -> bytes:
    """SyncGroup; the leader passes every member's assignment, followers pass none."""

    def build(b: MessageBuilder, version: int) -> Any:
        return b.make(
            "SyncGroupRequest",
            group_id=group_id,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            protocol_type=None,
            protocol_name=None,
            assignments=tuple(
                b.make("SyncGroupRequestAssignment", member_id=m, assignment=a)
                for m, a in assignments.items()
            ),
        )

    response = await client.call(ApiKey.SYNC_GROUP, build, coordinator)
    check(response.error_code, f"SyncGroup {group_id}")
    return bytes(response.assignment)


async def heartbeat(
    client: KafkaClient,
    coordinator: int,
    group_id: str,
    generation_id: int,
    member_id: str,
    group_instance_id: str | None = None,
) -> int:
    """Heartbeat → error code (REBALANCE_IN_PROGRESS means: rejoin)."""

    def build(b: MessageBuilder, version: int) -> Any:
        return b.make(
            "HeartbeatRequest",
            group_id=group_id,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
        )

    response = await client.call(ApiKey.HEARTBEAT, build, coordinator)
    return int(response.error_code)


async def leave_group(
    client: KafkaClient,
    coordinator: int,
    group_id: str,
    member_id: str,
    group_instance_id: str | None = None,
) -> None:
    def build(b: MessageBuilder, version: int) -> Any:
        member = b.make("MemberIdentity", member_id=member_id, group_instance_id=group_instance_id)
        return b.make(
            "LeaveGroupRequest", group_id=group_id, member_id=member_id, members=(member,)
        )

    await client.call(ApiKey.LEAVE_GROUP, build, coordinator)
