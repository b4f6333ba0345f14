"""The exact offset maps of one flow, persisted in the target's offset-map topic.

The topic is the only source of truth, so any worker (or `regionlink offsets translate`)
rebuilds the same maps by reading it; a copier appends its run starts there before the
records they describe are produced (write-ahead).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio

from broker.client import KafkaClient
from broker.client.data import TopicPartition
from mirror.internal import KEEP_FOREVER, InternalTopic, KeyedRecord, offset_map_topic
from mirror.offsets.mm2_formats import MalformedRecord, OffsetSync
from mirror.offsets.offset_map import PartitionOffsetMap, RunStart, apply_sync_records, run_to_sync

log = logging.getLogger(__name__)


def _decode(records: list[KeyedRecord], topic: str) -> Iterator[OffsetSync]:
    for record in records:
        try:
            yield OffsetSync.decode(record.key, record.value)
        except MalformedRecord as exc:
            log.warning(
                "%s offset %d: skipping a record that is not a run start: %s",
                topic,
                record.offset,
                exc,
            )


class OffsetMapStore:
    def __init__(self, target: KafkaClient, source_alias: str) -> None:
        self.topic = InternalTopic(target, offset_map_topic(source_alias), KEEP_FOREVER)
        self._maps: dict[TopicPartition, PartitionOffsetMap] = {}
        self._position = 0
        self._lock = anyio.Lock()

    async def catch_up(self) -> None:
        """Apply every run start persisted since the last call (by any worker)."""
        async with self._lock:
            records, self._position = await self.topic.read(self._position)
            apply_sync_records(self._maps, _decode(records, self.topic.name))

    async def append(self, tp: TopicPartition, runs: list[RunStart]) -> None:
        """Persist run starts (acks=all); they reach the maps on the next catch_up."""
        await self.topic.write([run_to_sync(tp[0], tp[1], run).encode() for run in runs])

    def map_for(self, tp: TopicPartition) -> PartitionOffsetMap:
        """A copy of the persisted map of `tp` (empty if none), safe to mutate."""
        existing = self._maps.get(tp)
        return PartitionOffsetMap(existing.runs if existing else ())

    def translate(self, tp: TopicPartition, committed: int, target_end: int) -> int | None:
        """`PartitionOffsetMap.translate` on the persisted map, without copying it."""
        existing = self._maps.get(tp)
        return None if existing is None else existing.translate(committed, target_end)
