"""ListOffsets and OffsetForLeaderEpoch: where a log starts, ends, and what a time maps to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.partitions import Partition
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, response_builder
from broker.protocol.versions import ApiKey
from broker.security.authz import CLUSTER_ACTION, DESCRIBE_TOPIC, refused

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


def _lookup(partition: Partition, timestamp_ms: int) -> tuple[int, int]:
    """(timestamp, offset) for a ListOffsets query; (-1, -1) when no record is that late."""
    if timestamp_ms == LATEST_TIMESTAMP:
        return -1, partition.last_stable_offset
    if timestamp_ms == EARLIEST_TIMESTAMP:
        return -1, partition.log.log_start_offset
    found = partition.log.offset_for_timestamp(timestamp_ms)
    if found is None:
        return -1, -1
    offset, timestamp = found
    return timestamp, offset


def _list_partition(
    broker: Broker, build: MessageBuilder, topic: str, query: Any, authorized: bool
) -> Any:
    partition = broker.partition(topic, query.partition_index)
    timestamp, offset, epoch = -1, -1, -1
    error: int
    if not authorized:
        error = DESCRIBE_TOPIC.error
    elif partition is None:
        error = broker.missing_partition_error(topic, query.partition_index)
    else:
        error = partition.refusal()
        if error == ErrorCode.none:
            epoch = partition.leader_epoch
            timestamp, offset = _lookup(partition, query.timestamp)
    return build.make(
        "ListOffsetsPartitionResponse",
        partition_index=query.partition_index,
        error_code=error,
        timestamp=timestamp,
        offset=offset,
        leader_epoch=epoch,
    )


@handles(ApiKey.LIST_OFFSETS)
async def list_offsets(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.LIST_OFFSETS, request.header.api_version)
    unauthorized = refused(
        broker.access(info), DESCRIBE_TOPIC, (t.name for t in request.body.topics)
    )
    topics = tuple(
        build.make(
            "ListOffsetsTopicResponse",
            name=topic.name,
            partitions=tuple(
                _list_partition(broker, build, topic.name, q, topic.name not in unauthorized)
                for q in topic.partitions
            ),
        )
        for topic in request.body.topics
    )
    return build.make("ListOffsetsResponse", throttle_time=0, topics=topics)


def _epoch_lookup(partition: Partition | None, query: Any) -> tuple[int, int, int]:
    """(error, epoch, end offset), fencing requests that carry a stale or future epoch."""
    if partition is None:
        return ErrorCode.unknown_topic_or_partition, -1, -1
    if error := partition.refusal(query.current_leader_epoch):
        return error, -1, -1
    return (ErrorCode.none, *partition.log.end_offset_for_epoch(query.leader_epoch))


def _epoch_end(
    broker: Broker, build: MessageBuilder, topic: str, query: Any, authorized: bool
) -> Any:
    error, epoch, end_offset = (
        _epoch_lookup(broker.partition(topic, query.partition), query)
        if authorized
        else (DESCRIBE_TOPIC.error, -1, -1)
    )
    return build.make(
        "EpochEndOffset",
        error_code=error,
        partition=query.partition,
        leader_epoch=epoch,
        end_offset=end_offset,
    )


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def offset_for_leader_epoch(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.OFFSET_FOR_LEADER_EPOCH, request.header.api_version)
    # Followers (CLUSTER_ACTION) may ask about any topic; consumers (KIP-320) need DESCRIBE.
    access = broker.access(info)
    follower = access is None or access.allows(CLUSTER_ACTION)
    names = [] if follower else [t.topic for t in request.body.topics]
    unauthorized = refused(access, DESCRIBE_TOPIC, names)
    topics = tuple(
        build.make(
            "OffsetForLeaderTopicResult",
            topic=topic.topic,
            partitions=tuple(
                _epoch_end(broker, build, topic.topic, q, topic.topic not in unauthorized)
                for q in topic.partitions
            ),
        )
        for topic in request.body.topics
    )
    return build.make("OffsetForLeaderEpochResponse", throttle_time=0, topics=topics)
