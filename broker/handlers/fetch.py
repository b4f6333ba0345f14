"""Fetch: whole batches as bytes from the log, with long-poll on max_wait/min_bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from broker.handlers import handles
from broker.log import OffsetOutOfRange
from broker.protocol.codec import HandWritten, Request
from broker.protocol.errors import ErrorCode
from broker.protocol.fetch_writer import PartitionRead, fetch_response_frame, writes_version
from broker.protocol.messages import MessageBuilder, millis, response_builder
from broker.protocol.versions import ApiKey
from broker.security.authz import NOTHING, READ_TOPIC, REPLICA_FETCH, Access

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

RESPONSE_CAP_BYTES = 2 << 20
# Followers take more per round: each round trip also reports their progress, so fewer,
# larger ones move the high watermark sooner (RF=3 acks=all: ~190 MB/s with 8 MiB against
# 90-190 MB/s, erratic, with 2 MiB; bench.replication_bench, 2 cores).
REPLICA_RESPONSE_CAP_BYTES = 8 << 20


def _refusal(broker: Broker, topic: str, fetch: Any) -> int:
    """Why this broker must not serve the partition (Kafka's leader and epoch checks), or 0."""
    partition = broker.partition(topic, fetch.partition)
    if partition is None:
        return broker.missing_partition_error(topic, fetch.partition)
    return partition.refusal(getattr(fetch, "current_leader_epoch", -1))


def _unauthorized(access: Access, body: Any) -> frozenset[str]:
    """The topics this fetch may not read: every one for a follower without CLUSTER_ACTION,
    those without READ for a consumer (Kafka answers TOPIC_AUTHORIZATION_FAILED for both)."""
    names = [topic.topic for topic in body.topics]
    if body.replica_id >= 0:
        return frozenset() if access.allows(REPLICA_FETCH) else frozenset(names)
    return access.refused(READ_TOPIC, names)


def _read_partition(
    broker: Broker,
    topic: str,
    fetch: Any,
    budget_bytes: int,
    must_return_one: bool,
    from_follower: bool,
    refused: frozenset[str],
) -> PartitionRead:
    if topic in refused:
        return PartitionRead(fetch.partition, READ_TOPIC.error)
    error = _refusal(broker, topic, fetch)
    partition = broker.partition(topic, fetch.partition)
    if error or partition is None:
        return PartitionRead(fetch.partition, error or ErrorCode.unknown_topic_or_partition)
    log = partition.log
    result = PartitionRead(
        fetch.partition,
        ErrorCode.none,
        partition.high_watermark,
        partition.last_stable_offset,
        log.log_start_offset,
    )
    max_bytes = min(fetch.partition_max_bytes, budget_bytes)
    if max_bytes <= 0 and not must_return_one:
        return result
    try:
        # Followers read up to the log end (their fetch is what moves the high watermark).
        result.records = log.read(
            fetch.fetch_offset,
            max(max_bytes, 1),
            max_offset=None if from_follower else partition.high_watermark,
        )
    except OffsetOutOfRange:
        result.error = ErrorCode.offset_out_of_range
    return result


def _read_all(
    broker: Broker, body: Any, refused: frozenset[str]
) -> tuple[list[tuple[str, list[PartitionRead]]], int]:
    # Returning less than the client allows is legal and keeps round trips short: a client
    # processes one response while we build the next, instead of waiting on a 64 MB one.
    from_follower = body.replica_id >= 0
    cap_bytes = REPLICA_RESPONSE_CAP_BYTES if from_follower else RESPONSE_CAP_BYTES
    budget_bytes = min(body.max_bytes if body.max_bytes > 0 else 1 << 31, cap_bytes)
    total_bytes = 0
    topics = []
    for topic in body.topics:
        reads = []
        for fetch in topic.partitions:
            read = _read_partition(
                broker,
                topic.topic,
                fetch,
                budget_bytes - total_bytes,
                total_bytes == 0,
                from_follower,
                refused,
            )
            total_bytes += len(read.records)
            reads.append(read)
        topics.append((topic.topic, reads))
    return topics, total_bytes


def _has_error(topics: list[tuple[str, list[PartitionRead]]]) -> bool:
    return any(read.error for _, reads in topics for read in reads)


def _response(
    request: Request, build: MessageBuilder, topics: list[tuple[str, list[PartitionRead]]]
) -> Any:
    """Written by hand for the versions clients use (4-11), through kio before that."""
    version = request.header.api_version
    if writes_version(version):
        return HandWritten(
            lambda correlation_id: fetch_response_frame(version, correlation_id, topics)
        )
    return kio_response(build, topics)


def kio_response(
    build: MessageBuilder, topics: Sequence[tuple[str, Sequence[PartitionRead]]]
) -> Any:
    """The FetchResponse entity kio writes (v0-v3 here; the reference the hand writer's tests
    compare with)."""
    responses = tuple(
        build.make(
            "FetchableTopicResponse",
            topic=name,
            partitions=tuple(
                build.make(
                    "PartitionData",
                    partition_index=r.index,
                    error_code=r.error,
                    high_watermark=r.high_watermark,
                    last_stable_offset=r.last_stable_offset,
                    log_start_offset=r.log_start_offset,
                    aborted_transactions=None,
                    preferred_read_replica=-1,
                    records=r.records,
                )
                for r in reads
            ),
        )
        for name, reads in topics
    )
    return build.make(
        "FetchResponse", throttle_time=0, error_code=0, session_id=0, responses=responses
    )


def _record_follower_progress(broker: Broker, body: Any, refused: frozenset[str]) -> None:
    """A follower's fetch offsets are its log ends: they move the ISR and high watermark."""
    for topic in body.topics:
        if topic.topic in refused:
            continue
        for fetch in topic.partitions:
            partition = broker.partition(topic.topic, fetch.partition)
            if partition is not None and partition.leader is not None:
                broker.follower_fetched(partition, body.replica_id, fetch.fetch_offset)


@handles(ApiKey.FETCH)
async def fetch(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.FETCH, request.header.api_version)
    wait_s = millis(body.max_wait) / 1000
    access = broker.access(info)
    refused = _unauthorized(access, body) if access else NOTHING
    if body.replica_id >= 0:
        _record_follower_progress(broker, body, refused)
    min_bytes = max(body.min_bytes, 1)
    arrived = broker.partitions.appended()
    topics, total_bytes = _read_all(broker, body, refused)
    if total_bytes < min_bytes and not _has_error(topics) and wait_s > 0:
        # Long poll (a cancel scope costs ~20 us, so only when there is something to wait for).
        with anyio.move_on_after(wait_s) as deadline:
            while True:
                await arrived.wait()
                arrived = broker.partitions.appended()
                topics, total_bytes = _read_all(broker, body, refused)
                if total_bytes >= min_bytes or _has_error(topics):
                    break
        if deadline.cancelled_caught:
            topics, total_bytes = _read_all(broker, body, refused)
    for name, reads in topics:
        for read in reads:
            broker.traffic.fetched(name, len(read.records), replica=body.replica_id >= 0)
    return _response(request, build, topics)
