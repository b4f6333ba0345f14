"""Data-path requests: Fetch, Produce and ListOffsets, with record batches as bytes; and a
link's LinkAppend and LinkTruncate to a regionlink region's mirror topics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.client.client import CLIENT_MAX_VERSION, FETCH_LANE, KafkaClient, KafkaError
from broker.protocol import link
from broker.protocol.errors import ErrorCode
from broker.protocol.fetch_reader import FetchResponse, PartitionData
from broker.protocol.messages import MessageBuilder, request_builder
from broker.protocol.versions import ApiKey

TopicPartition = tuple[str, int]

EARLIEST = -2
LATEST = -1
READ_UNCOMMITTED = 0
READ_COMMITTED = 1
READ_NOW_WAIT_MS = 100  # fetch_now: how long an empty partition may keep the answer


@dataclass(frozen=True)
class FetchedPartition:
    error: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted: tuple[tuple[int, int], ...]  # (producer_id, first_offset)
    records: bytes


@dataclass(frozen=True)
class ProduceResult:
    error: int
    base_offset: int
    log_start_offset: int
    message: str | None


@dataclass(frozen=True)
class LinkResult:
    """A mirror partition's answer: its log end offset after the append (or now, on error),
    so a link that is out of step learns where to resume."""

    error: int
    log_end_offset: int
    message: str | None


def _by_topic(partitions: Mapping[TopicPartition, Any]) -> dict[str, dict[int, Any]]:
    grouped: dict[str, dict[int, Any]] = defaultdict(dict)
    for (topic, partition), value in partitions.items():
        grouped[topic][partition] = value
    return grouped


async def fetch_views(
    client: KafkaClient,
    node_id: int,
    positions: Mapping[TopicPartition, int],
    *,
    partition_max_bytes: int = 1 << 20,
    max_bytes: int = 16 << 20,
    max_wait_ms: int = 500,
    min_bytes: int = 1,
    isolation_level: int = READ_COMMITTED,
    lane: str = FETCH_LANE,
    replica_id: int = -1,
    leader_epochs: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, PartitionData]:
    """One sessionless Fetch from `node_id` (the leader of every partition asked for), each
    partition's record batches a view into the response frame (a follower writes them
    straight to its log; `fetch` copies them out).

    Fetches use their own connection (`lane`): brokers answer a connection's requests in
    order, and a long-poll must not hold up other requests. A follower broker passes its
    `replica_id` and the leader epochs it knows (so a deposed leader fences it).
    """
    epochs = leader_epochs or {}

    def build(b: MessageBuilder, version: int) -> Any:
        topics = tuple(
            b.make(
                "FetchTopic",
                topic=topic,
                partitions=tuple(
                    b.make(
                        "FetchPartition",
                        partition=p,
                        current_leader_epoch=epochs.get((topic, p), -1),
                        fetch_offset=offset,
                        log_start_offset=-1,
                        partition_max_bytes=partition_max_bytes,
                    )
                    for p, offset in parts.items()
                ),
            )
            for topic, parts in _by_topic(positions).items()
        )
        return b.make(
            "FetchRequest",
            replica_id=replica_id,
            max_wait=max_wait_ms,
            min_bytes=min_bytes,
            max_bytes=max_bytes,
            isolation_level=isolation_level,
            session_id=0,
            session_epoch=-1,
            topics=topics,
            forgotten_topics_data=(),
            rack_id="",
        )

    timeout_s = client.request_timeout_s + max_wait_ms / 1000
    response = await client.call(ApiKey.FETCH, build, node_id, timeout_s, lane)
    assert isinstance(response, FetchResponse), "Fetch v4-v11 responses are read by hand"
    return {(t.topic, p.partition_index): p for t in response.responses for p in t.partitions}


async def fetch(
    client: KafkaClient,
    node_id: int,
    positions: Mapping[TopicPartition, int],
    **options: Any,
) -> dict[TopicPartition, FetchedPartition]:
    """`fetch_views` (same options), each partition's records copied out of the response."""
    return {
        key: FetchedPartition(
            p.error_code,
            p.high_watermark,
            p.last_stable_offset,
            p.log_start_offset,
            tuple((a.producer_id, a.first_offset) for a in p.aborted_transactions or ()),
            bytes(p.records or b""),
        )
        for key, p in (await fetch_views(client, node_id, positions, **options)).items()
    }


async def fetch_now(
    client: KafkaClient,
    node_id: int,
    tp: TopicPartition,
    offset: int,
    *,
    isolation_level: int = READ_COMMITTED,
) -> FetchedPartition:
    """What one partition already holds from `offset` (records below the high watermark
    come back at once; an empty partition after READ_NOW_WAIT_MS). Not max_wait 0: Tansu
    0.6 answers that with no partitions at all. KafkaError if the answer leaves it out."""
    answer = await fetch(
        client, node_id, {tp: offset}, max_wait_ms=READ_NOW_WAIT_MS, isolation_level=isolation_level
    )
    if tp not in answer:
        raise KafkaError(
            ErrorCode.unknown_server_error, f"Fetch {tp[0]}[{tp[1]}]", "no answer for it"
        )
    return answer[tp]


def _produce_request(
    batches: Mapping[TopicPartition, bytes | bytearray], acks: int, timeout_ms: int
) -> Callable[[MessageBuilder, int], Any]:
    assert acks != 0, "acks=0 has no response; the mirror never uses it"

    def build(b: MessageBuilder, version: int) -> Any:
        topic_data = tuple(
            b.make(
                "TopicProduceData",
                name=topic,
                partition_data=tuple(
                    b.make("PartitionProduceData", index=p, records=batch)
                    for p, batch in parts.items()
                ),
            )
            for topic, parts in _by_topic(batches).items()
        )
        return b.make(
            "ProduceRequest",
            transactional_id=None,
            acks=acks,
            timeout=timeout_ms,
            topic_data=topic_data,
        )

    return build


def _produce_results(response: Any) -> dict[TopicPartition, ProduceResult]:
    result: dict[TopicPartition, ProduceResult] = {}
    for topic in response.responses:
        for p in topic.partition_responses:
            result[(topic.name, int(p.index))] = ProduceResult(
                int(p.error_code),
                int(p.base_offset),
                int(getattr(p, "log_start_offset", -1)),
                getattr(p, "error_message", None),
            )
    return result


async def produce(
    client: KafkaClient,
    node_id: int,
    batches: Mapping[TopicPartition, bytes | bytearray],
    *,
    acks: int = -1,
    timeout_ms: int = 30_000,
) -> dict[TopicPartition, ProduceResult]:
    """One Produce to `node_id` with exactly one batch per partition (Kafka's v3+ rule)."""
    timeout_s = client.request_timeout_s + timeout_ms / 1000
    build = _produce_request(batches, acks, timeout_ms)
    return _produce_results(await client.call(ApiKey.PRODUCE, build, node_id, timeout_s))


async def produce_pipelined(
    client: KafkaClient,
    node_id: int,
    requests: list[Mapping[TopicPartition, bytes | bytearray]],
    *,
    acks: int = -1,
    timeout_ms: int = 30_000,
) -> list[dict[TopicPartition, ProduceResult]]:
    """Several Produce requests written back to back on one connection, then awaited.

    The broker handles them in order, so batches of one partition keep their order; with
    an idempotent producer a failed one makes the following ones fail with
    OUT_OF_ORDER_SEQUENCE, and resending from the first failure is safe.
    """
    connection = await client.connection(node_id)
    version = connection.version_for(ApiKey.PRODUCE, CLIENT_MAX_VERSION[ApiKey.PRODUCE], 3)
    builder = request_builder(ApiKey.PRODUCE, version)
    sent = [
        await connection.send(
            ApiKey.PRODUCE, version, _produce_request(batches, acks, timeout_ms)(builder, version)
        )
        for batches in requests
    ]
    timeout_s = client.request_timeout_s + timeout_ms / 1000
    return [_produce_results(await connection.wait(pending, timeout_s)) for pending in sent]


async def list_offsets(
    client: KafkaClient,
    node_id: int,
    partitions: Mapping[TopicPartition, int],
    *,
    isolation_level: int = READ_UNCOMMITTED,
) -> dict[TopicPartition, tuple[int, int]]:
    """ListOffsets for {tp: timestamp (EARLIEST/LATEST/ms)} → {tp: (error, offset)}."""

    def build(b: MessageBuilder, version: int) -> Any:
        topics = tuple(
            b.make(
                "ListOffsetsTopic",
                name=topic,
                partitions=tuple(
                    b.make(
                        "ListOffsetsPartition",
                        partition_index=p,
                        current_leader_epoch=-1,
                        timestamp=ts,
                    )
                    for p, ts in parts.items()
                ),
            )
            for topic, parts in _by_topic(partitions).items()
        )
        return b.make(
            "ListOffsetsRequest", replica_id=-1, isolation_level=isolation_level, topics=topics
        )

    response = await client.call(ApiKey.LIST_OFFSETS, build, node_id)
    return {
        (topic.name, int(p.partition_index)): (int(p.error_code), int(p.offset))
        for topic in response.topics
        for p in topic.partitions
    }


async def latest_offsets(
    client: KafkaClient, node_id: int, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """ListOffsets LATEST → {tp: (error, offset)}, each offset checked against the high
    watermark a Fetch there reports (the larger wins). Tansu 0.6 answers ListOffsets LATEST
    with its last batch's base offset + 1, short of the end whenever that batch holds more
    than one record; Kafka and our brokers agree with the Fetch (which costs them ~1 ms)."""
    listed = await list_offsets(client, node_id, dict.fromkeys(tps, LATEST))
    found = {tp: offset for tp, (error, offset) in listed.items() if error == 0}
    if not found:
        return listed
    fetched = await fetch(
        client, node_id, found, max_wait_ms=1, partition_max_bytes=1, max_bytes=1,
        isolation_level=READ_UNCOMMITTED,
    )  # fmt: skip
    checked = dict(listed)
    for tp, offset in found.items():
        answer = fetched.get(tp)
        if answer is not None and answer.error == 0 and answer.high_watermark > offset:
            checked[tp] = (0, answer.high_watermark)
    return checked


async def end_offsets_for_epochs(
    client: KafkaClient,
    node_id: int,
    epochs: Mapping[TopicPartition, tuple[int, int]],
    *,
    replica_id: int = -1,
) -> dict[TopicPartition, tuple[int, int, int]]:
    """OffsetForLeaderEpoch for {tp: (current_leader_epoch, epoch)} → {tp: (error, epoch, end)}.

    A follower asks where the leader's history for its latest epoch ends, and truncates there.
    """

    def build(b: MessageBuilder, version: int) -> Any:
        topics = tuple(
            b.make(
                "OffsetForLeaderTopic",
                topic=topic,
                partitions=tuple(
                    b.make(
                        "OffsetForLeaderPartition",
                        partition=p,
                        current_leader_epoch=current,
                        leader_epoch=epoch,
                    )
                    for p, (current, epoch) in parts.items()
                ),
            )
            for topic, parts in _by_topic(epochs).items()
        )
        return b.make("OffsetForLeaderEpochRequest", replica_id=replica_id, topics=topics)

    response = await client.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, build, node_id)
    return {
        (topic.topic, int(p.partition)): (
            int(p.error_code),
            int(p.leader_epoch),
            int(p.end_offset),
        )
        for topic in response.topics
        for p in topic.partitions
    }


def _link_results(response: link.LinkResponse) -> dict[TopicPartition, LinkResult]:
    return {
        (topic.name, p.index): LinkResult(p.error_code, p.log_end_offset, p.error_message)
        for topic in response.topics
        for p in topic.partitions
    }


async def link_append(
    client: KafkaClient,
    node_id: int,
    source_region: str,
    topology_epoch: int,
    batches: Mapping[TopicPartition, tuple[int, bytes | bytearray]],
    timeout_ms: int = 30_000,
    trace_contexts: Mapping[TopicPartition, link.TraceContexts] | None = None,
) -> dict[TopicPartition, LinkResult]:
    """LinkAppend {tp: (expected_next_offset, batches)} to the leader `node_id` of mirror
    topics of `source_region`: each batch lands at its own base offset. `trace_contexts`
    {tp: ((trace id, span id), ...)}: the sampled contexts found in a partition's records,
    sent along (LinkAppend v1) so the target need not search them again.

    Only regionlink brokers serve it (it is not advertised; a Kafka broker drops the
    connection, which raises KafkaConnectionError).
    """
    body = link.LinkAppendRequest(
        source_region,
        topology_epoch,
        timeout_ms,
        tuple(
            link.LinkAppendTopic(
                topic,
                tuple(
                    link.LinkAppendPartition(
                        p, expected, records, (trace_contexts or {}).get((topic, p))
                    )
                    for p, (expected, records) in parts.items()
                ),
            )
            for topic, parts in _by_topic(batches).items()
        ),
    )
    connection = await client.connection(node_id)
    timeout_s = client.request_timeout_s + timeout_ms / 1000
    version = link.link_append_version(body)
    response = await connection.request(ApiKey.LINK_APPEND, version, body, timeout_s)
    return _link_results(response)


async def link_truncate(
    client: KafkaClient,
    node_id: int,
    source_region: str,
    topology_epoch: int,
    offsets: Mapping[TopicPartition, int],
) -> dict[TopicPartition, LinkResult]:
    """LinkTruncate {tp: offset}: cut mirror partitions at `node_id` back to `offset`."""
    body = link.LinkTruncateRequest(
        source_region,
        topology_epoch,
        tuple(
            link.LinkTruncateTopic(
                topic, tuple(link.LinkTruncatePartition(p, o) for p, o in parts.items())
            )
            for topic, parts in _by_topic(offsets).items()
        ),
    )
    connection = await client.connection(node_id)
    response = await connection.request(
        ApiKey.LINK_TRUNCATE, link.LINK_VERSION, body, client.request_timeout_s
    )
    return _link_results(response)


__all__ = [
    "EARLIEST",
    "LATEST",
    "READ_COMMITTED",
    "READ_UNCOMMITTED",
    "FetchedPartition",
    "LinkResult",
    "ProduceResult",
    "end_offsets_for_epochs",
    "fetch",
    "link_append",
    "link_truncate",
    "list_offsets",
    "produce",
    "produce_pipelined",
]
