"""What a failover step does to one region, over the Kafka protocol (the driver's I/O).

Each function is one idempotent request or a small set of them, so a step killed half way
can simply be run again: roles are set with an epoch that only moves forward, topic flags
are set to a value (not toggled), truncation is to an offset, and offsets are read afresh.
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.client import KafkaClient, KafkaError
from broker.client.admin import BROKER_RESOURCE, TOPIC_RESOURCE, alter_configs, describe_configs
from broker.client.data import READ_UNCOMMITTED, TopicPartition, fetch_now, link_truncate
from broker.links import MIRROR_SOURCE
from broker.protocol.batch import iter_valid_prefix
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, decode_batch_records
from broker.topology import Topology
from mirror.offsets.checkpoints import end_offsets

CLUSTER = ""  # the resource name of cluster-wide configs


async def read_role(client: KafkaClient) -> Topology:
    """The region's topology epoch, role and primary, as its brokers enforce them."""
    configs = await describe_configs(client, BROKER_RESOURCE, [CLUSTER], only_overrides=False)
    known = {k: v for k, v in configs.get(CLUSTER, {}).items() if k.startswith("regionlink.")}
    return Topology.from_configs(known)


async def set_role(client: KafkaClient, role: Topology) -> None:
    """Tell the region its role at `role.epoch`; KafkaError if it knows a newer epoch."""
    await alter_configs(client, BROKER_RESOURCE, {CLUSTER: dict(role.configs())})


async def topic_partitions(client: KafkaClient) -> dict[str, int]:
    """Every non-internal topic of the region with its partition count."""
    view = await client.refresh_metadata()
    return {
        name: len(info.partitions)
        for name, info in sorted(view.topics.items())
        if info.error == 0 and not info.internal and not name.startswith("__")
    }


async def mirror_topics(client: KafkaClient, source_region: str) -> dict[str, int]:
    """Topics of the region that are mirror topics of `source_region`."""
    topics = await topic_partitions(client)
    if not topics:
        return {}
    configs = await describe_configs(client, TOPIC_RESOURCE, sorted(topics))
    return {
        name: count
        for name, count in topics.items()
        if configs.get(name, {}).get(MIRROR_SOURCE) == source_region
    }


async def promote_topics(client: KafkaClient, topics: list[str]) -> None:
    """Mirror topics become ordinary, writable topics (their offsets stay as they are)."""
    if topics:
        await alter_configs(client, TOPIC_RESOURCE, {t: {MIRROR_SOURCE: None} for t in topics})


async def demote_topics(client: KafkaClient, topics: list[str], source_region: str) -> None:
    """Topics become mirror topics of `source_region`: only its link may append."""
    if topics:
        await alter_configs(
            client, TOPIC_RESOURCE, {t: {MIRROR_SOURCE: source_region} for t in topics}
        )


async def partition_ends(
    client: KafkaClient, topics: Mapping[str, int]
) -> dict[TopicPartition, int]:
    """Log end offsets of every partition of `topics`; KafkaError if any cannot be read."""
    tps = [(t, p) for t, count in sorted(topics.items()) for p in range(count)]
    ends = await end_offsets(client, tps)
    missing = [tp for tp in tps if tp not in ends]
    if missing:
        topic, partition = missing[0]
        raise KafkaError(ErrorCode.leader_not_available, f"end offset of {topic}[{partition}]")
    return ends


async def truncate(
    client: KafkaClient,
    source_region: str,
    epoch: int,
    offsets: Mapping[TopicPartition, int],
) -> None:
    """Cut mirror-topic partitions back to `offsets` (a no-op where they already end there)."""
    by_leader: dict[int, dict[TopicPartition, int]] = {}
    for tp, offset in offsets.items():
        by_leader.setdefault(await client.leader_for(*tp), {})[tp] = offset
    for leader, request in by_leader.items():
        results = await link_truncate(client, leader, source_region, epoch, request)
        for (topic, partition), result in results.items():
            if result.error:
                raise KafkaError(result.error, f"truncating {topic}[{partition}]", result.message)


async def read_range(client: KafkaClient, tp: TopicPartition, start: int, end: int) -> list[Record]:
    """Every data record of `tp` at offsets [start, end) (markers and gaps skipped)."""
    out: list[Record] = []
    position = start
    while position < end:
        leader = await client.leader_for(*tp)
        fetched = await fetch_now(client, leader, tp, position, isolation_level=READ_UNCOMMITTED)
        if fetched.error:
            raise KafkaError(fetched.error, f"reading {tp[0]}[{tp[1]}] at {position}")
        headers = list(iter_valid_prefix(fetched.records))
        if not headers:
            break  # nothing more below the high watermark
        for header in headers:
            if not header.is_control:
                records = decode_batch_records(fetched.records, header)
                out += [r for r in records if position <= r.offset < end]
            position = max(position, header.next_offset)
    return out


async def last_timestamp_ms(client: KafkaClient, tp: TopicPartition, end: int) -> int | None:
    """The newest timestamp of the batch holding offset `end - 1`, if there is one."""
    if end <= 0:
        return None
    leader = await client.leader_for(*tp)
    fetched = await fetch_now(client, leader, tp, end - 1, isolation_level=READ_UNCOMMITTED)
    headers = [h for h in iter_valid_prefix(fetched.records) if h.base_offset <= end - 1]
    return headers[-1].max_timestamp if headers and not fetched.error else None
