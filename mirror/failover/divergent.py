"""Save what an old primary took after a forced failover, before it is truncated.

When the old primary comes back it may hold records the new primary never received (taken
between the mirror's last copy and the failover, or while it was cut off). Failback makes
its partitions identical to the new primary's again by truncating them where the new
primary took over, so those records are first copied, with their keys, values, headers and
timestamps, into `<topic>.diverged` on the new primary (same partition; headers say where
each came from) and listed in the report: nothing is dropped silently. Idempotent: records
already saved (recognised by their origin header) are not saved twice.
"""

from __future__ import annotations

from typing import Any

from broker.client import KafkaClient, KafkaError
from broker.client.admin import NewTopic, create_topics
from broker.client.data import TopicPartition, produce
from broker.protocol.errors import ErrorCode
from broker.protocol.records import NewRecord, Record, build_batch
from mirror.failover import regions
from mirror.failover.model import PartitionLoss
from mirror.offsets.checkpoints import end_offsets

ORIGIN_OFFSET_HEADER = "regionlink.diverged.offset"
ORIGIN_REGION_HEADER = "regionlink.diverged.region"
BATCH_RECORDS = 500


def diverged_topic(topic: str) -> str:
    return f"{topic}.diverged"


async def save_divergent(
    old: KafkaClient,
    new: KafkaClient,
    old_region: str,
    promotion_ends: dict[TopicPartition, int],
) -> dict[str, Any]:
    """Copy the old primary's records past `promotion_ends` into `<topic>.diverged`."""
    now = await end_offsets(old, sorted(promotion_ends))
    saved = []
    for tp, start in sorted(promotion_ends.items()):
        end = now.get(tp, start)
        if end <= start:
            continue
        records = await regions.read_range(old, tp, start, end)
        if records:
            await _save(new, old_region, tp, records, await _partition_count(old, tp[0]))
        saved.append(
            PartitionLoss(
                tp[0], tp[1], start, end - 1, len(records),
                min((r.timestamp_ms for r in records), default=None),
                max((r.timestamp_ms for r in records), default=None),
            ).to_json()
        )  # fmt: skip
    return {"partitions": saved}


async def _partition_count(client: KafkaClient, topic: str) -> int:
    view = await client.refresh_metadata([topic])
    return len(view.topics[topic].partitions)


async def _save(
    new: KafkaClient, old_region: str, tp: TopicPartition, records: list[Record], partitions: int
) -> None:
    topic = diverged_topic(tp[0])
    error, message = (await create_topics(new, [NewTopic(topic, partitions)]))[topic]
    if error not in (0, ErrorCode.topic_already_exists):
        raise KafkaError(error, f"creating {topic}", message)
    target = (topic, tp[1])
    have = await _saved_offsets(new, target)
    todo = [r for r in records if r.offset not in have]
    for first in range(0, len(todo), BATCH_RECORDS):
        chunk = todo[first : first + BATCH_RECORDS]
        batch = build_batch([_copy(r, old_region) for r in chunk])
        leader = await new.leader_for(*target)
        result = (await produce(new, leader, {target: batch}))[target]
        if result.error:
            raise KafkaError(result.error, f"saving into {topic}[{tp[1]}]", result.message)


async def _saved_offsets(client: KafkaClient, tp: TopicPartition) -> set[int]:
    end = (await end_offsets(client, [tp])).get(tp, 0)
    out = set()
    for record in await regions.read_range(client, tp, 0, end):
        for key, value in record.headers:
            if key == ORIGIN_OFFSET_HEADER and value is not None:
                out.add(int(value))
    return out


def _copy(record: Record, old_region: str) -> NewRecord:
    origin = (
        (ORIGIN_REGION_HEADER, old_region.encode()),
        (ORIGIN_OFFSET_HEADER, str(record.offset).encode()),
    )
    return NewRecord(record.key, record.value, record.headers + origin, record.timestamp_ms)
