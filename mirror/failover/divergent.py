"""Save what an old primary took after a forced failover, before it is truncated.

When the old primary comes back it may hold records the new primary never received (taken
between the mirror's last copy and the failover, or while it was cut off). Failback makes
its partitions identical to the new primary's again by truncating them where the new
primary took over, so those records are first copied, with their keys, values, headers and
timestamps, into `<topic>.diverged` on the new primary (same partition; headers say where
each came from) and listed in the report: nothing is dropped silently. Idempotent: records
already saved (recognised by their origin headers: region, offset, and the epoch of the
failover they diverged after — a later failback may save other records from the same
offsets) are not saved twice.
"""

from __future__ import annotations

from dataclasses import dataclass
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
ORIGIN_EPOCH_HEADER = "regionlink.diverged.epoch"
BATCH_RECORDS = 500


def diverged_topic(topic: str) -> str:
    return f"{topic}.diverged"


async def save_divergent(
    old: KafkaClient,
    new: KafkaClient,
    old_region: str,
    promotion_ends: dict[TopicPartition, int],
    since_epoch: int,
) -> dict[str, Any]:
    """Copy the old primary's records past `promotion_ends` (where the new primary took
    over at `since_epoch`) into `<topic>.diverged`."""
    now = await end_offsets(old, sorted(promotion_ends))
    saved = []
    for tp, start in sorted(promotion_ends.items()):
        end = now.get(tp, start)
        if end <= start:
            continue
        records = await regions.read_range(old, tp, start, end)
        if records:
            origin = _Origin(old_region, since_epoch)
            await _save(new, origin, tp, records, await _partition_count(old, tp[0]))
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


@dataclass(frozen=True)
class _Origin:
    region: str
    epoch: int

    def headers(self, offset: int) -> tuple[tuple[str, bytes], ...]:
        return (
            (ORIGIN_REGION_HEADER, self.region.encode()),
            (ORIGIN_OFFSET_HEADER, str(offset).encode()),
            (ORIGIN_EPOCH_HEADER, str(self.epoch).encode()),
        )


async def _save(
    new: KafkaClient, origin: _Origin, tp: TopicPartition, records: list[Record], partitions: int
) -> None:
    topic = diverged_topic(tp[0])
    error, message = (await create_topics(new, [NewTopic(topic, partitions)]))[topic]
    if error not in (0, ErrorCode.topic_already_exists):
        raise KafkaError(error, f"creating {topic}", message)
    target = (topic, tp[1])
    have = await _saved_offsets(new, target, origin)
    todo = [r for r in records if r.offset not in have]
    for first in range(0, len(todo), BATCH_RECORDS):
        chunk = todo[first : first + BATCH_RECORDS]
        batch = build_batch([_copy(r, origin) for r in chunk])
        leader = await new.leader_for(*target)
        result = (await produce(new, leader, {target: batch}))[target]
        if result.error:
            raise KafkaError(result.error, f"saving into {topic}[{tp[1]}]", result.message)


async def _saved_offsets(client: KafkaClient, tp: TopicPartition, origin: _Origin) -> set[int]:
    """Origin offsets of the records `origin` already saved into `tp`."""
    end = (await end_offsets(client, [tp])).get(tp, 0)
    out = set()
    for record in await regions.read_range(client, tp, 0, end):
        headers = {key: value for key, value in record.headers if value is not None}
        offset = headers.get(ORIGIN_OFFSET_HEADER)
        if offset is not None and set(origin.headers(int(offset))) <= set(headers.items()):
            out.add(int(offset))
    return out


def _copy(record: Record, origin: _Origin) -> NewRecord:
    return NewRecord(
        record.key, record.value, record.headers + origin.headers(record.offset),
        record.timestamp_ms,
    )  # fmt: skip
