"""Translate source group offsets exactly, emit MM2 checkpoints, sync idle groups' offsets.

One pass: list the source's groups that the flow mirrors, read their committed offsets,
translate each through the exact offset map, write `<source>.checkpoints.internal`
records on the target for offsets that changed, and (with `sync_group_offsets`) commit
the translated offsets for groups that have no active members on the target. A target
offset is only moved forward, so consumers already running there are never rewound.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import anyio

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.data import TopicPartition, latest_offsets
from broker.client.groups import commit_offsets, describe_group_states, fetch_committed, list_groups
from mirror.config import FlowConfig
from mirror.copy.policy import should_mirror_group
from mirror.copy.topic_sync import MirroredTopic
from mirror.internal import COMPACTED, InternalTopic, checkpoints_topic
from mirror.offsets.mm2_formats import Checkpoint
from mirror.offsets.store import OffsetMapStore

log = logging.getLogger(__name__)

IDLE_GROUP_STATES = frozenset({"Empty", "Dead", ""})
_CONCURRENT_REQUESTS = 32


@dataclass(frozen=True)
class Translation:
    group: str
    source_tp: TopicPartition
    target_tp: TopicPartition
    upstream_offset: int
    downstream_offset: int | None  # None: not mirrored yet
    metadata: str


@dataclass
class CheckpointResult:
    translations: list[Translation] = field(default_factory=list)
    checkpoints_written: int = 0
    groups_synced: int = 0


async def end_offsets(client: KafkaClient, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """End offsets of partitions, asked of each leader (partitions in error are left out)."""
    by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
    for tp in tps:
        by_leader[await client.leader_for(*tp)].append(tp)
    ends: dict[TopicPartition, int] = {}
    for leader, request in by_leader.items():
        for tp, (error, offset) in (await latest_offsets(client, leader, request)).items():
            if error == 0:
                ends[tp] = offset
    return ends


async def _committed_offsets(
    source: KafkaClient, groups: list[str], partitions: dict[str, range]
) -> dict[str, dict[TopicPartition, tuple[int, str]]]:
    results: dict[str, dict[TopicPartition, tuple[int, str]]] = {}
    limiter = anyio.CapacityLimiter(_CONCURRENT_REQUESTS)

    async def one(group: str) -> None:
        async with limiter:
            try:
                results[group] = await fetch_committed(source, group, partitions)
            except (KafkaError, KafkaConnectionError) as exc:
                log.warning("cannot read offsets of group %s: %s", group, exc)

    async with anyio.create_task_group() as tg:
        for group in groups:
            tg.start_soon(one, group)
    return results


async def translate_groups(
    source: KafkaClient,
    target: KafkaClient,
    store: OffsetMapStore | None,
    topics: list[MirroredTopic],
    groups: list[str],
) -> list[Translation]:
    """Exact translations of every committed offset of `groups` on mirrored topics.

    `store` None: the targets are mirror topics, where an offset means the same record as
    at the source, so an offset translates to itself once the target holds it.
    """
    remote = {t.source_topic: t.target_topic for t in topics}
    partitions = {t.source_topic: range(t.partitions) for t in topics}
    committed = await _committed_offsets(source, groups, partitions)
    wanted = {
        (remote[topic], partition)
        for offsets in committed.values()
        for topic, partition in offsets
        if topic in remote
    }
    # End offsets first, then the map: every record below an end offset had its run
    # start persisted before it was written, so the map read afterwards covers it.
    ends = await end_offsets(target, sorted(wanted))
    if store is not None:
        await store.catch_up()
    translations = []
    for group, offsets in sorted(committed.items()):
        for (topic, partition), (offset, metadata) in sorted(offsets.items()):
            if topic not in remote:
                continue
            target_tp = (remote[topic], partition)
            end = ends.get(target_tp)
            downstream = _translate(store, (topic, partition), offset, end)
            translations.append(
                Translation(group, (topic, partition), target_tp, offset, downstream, metadata)
            )
    return translations


def _translate(
    store: OffsetMapStore | None, source_tp: TopicPartition, offset: int, end: int | None
) -> int | None:
    if end is None:
        return None
    if store is None:
        return offset if offset <= end else None
    return store.translate(source_tp, offset, end)


class Checkpointer:
    """Runs checkpoint passes for one flow; remembers what it already emitted."""

    def __init__(
        self,
        source: KafkaClient,
        target: KafkaClient,
        flow: FlowConfig,
        store: OffsetMapStore | None,
    ) -> None:
        self.source = source
        self.target = target
        self.flow = flow
        self.store = store
        self.topic = InternalTopic(target, checkpoints_topic(flow.source), COMPACTED)
        self._emitted: dict[tuple[str, TopicPartition], tuple[int, int]] = {}
        self._groups: list[str] = []
        self._groups_listed_s = -1e9

    async def source_groups(self) -> list[str]:
        now_s = time.monotonic()
        if now_s - self._groups_listed_s >= self.flow.refresh_groups_interval_s:
            listed = await list_groups(self.source)
            self._groups = sorted(
                g.group_id for g in listed if should_mirror_group(g.group_id, self.flow)
            )
            self._groups_listed_s = now_s
        return self._groups

    async def run_once(self, topics: list[MirroredTopic]) -> CheckpointResult:
        groups = await self.source_groups()
        result = CheckpointResult()
        if not groups or not topics:
            return result
        translations = await translate_groups(self.source, self.target, self.store, topics, groups)
        result.translations = translations
        records = []
        for t in translations:
            key = (t.group, t.target_tp)
            if t.downstream_offset is None:
                continue
            if self._emitted.get(key) == (t.upstream_offset, t.downstream_offset):
                continue
            checkpoint = Checkpoint(
                t.group,
                t.target_tp[0],
                t.target_tp[1],
                t.upstream_offset,
                t.downstream_offset,
                t.metadata,
            )
            records.append((key, (t.upstream_offset, t.downstream_offset), checkpoint.encode()))
        await self.topic.write([encoded for _, _, encoded in records])
        for key, value, _ in records:
            self._emitted[key] = value
        result.checkpoints_written = len(records)
        if self.flow.sync_group_offsets:
            result.groups_synced = await self._sync_group_offsets(translations)
        return result

    async def _sync_group_offsets(self, translations: list[Translation]) -> int:
        by_group: dict[str, dict[TopicPartition, tuple[int, str]]] = defaultdict(dict)
        for t in translations:
            if t.downstream_offset is not None:
                by_group[t.group][t.target_tp] = (t.downstream_offset, t.metadata)
        if not by_group:
            return 0
        states = await describe_group_states(self.target, sorted(by_group))
        idle = [g for g in by_group if states.get(g, "") in IDLE_GROUP_STATES]
        synced = 0
        limiter = anyio.CapacityLimiter(_CONCURRENT_REQUESTS)

        async def one(group: str) -> None:
            nonlocal synced
            async with limiter:
                try:
                    if await self._sync_group(group, by_group[group]):
                        synced += 1
                except (KafkaError, KafkaConnectionError) as exc:
                    log.warning("cannot sync offsets of group %s: %s", group, exc)

        async with anyio.create_task_group() as tg:
            for group in idle:
                tg.start_soon(one, group)
        return synced

    async def _sync_group(self, group: str, offsets: dict[TopicPartition, tuple[int, str]]) -> bool:
        current = await fetch_committed(
            self.target,
            group,
            {topic: [p for t, p in offsets if t == topic] for topic, _ in offsets},
        )
        forward = {
            tp: value
            for tp, value in offsets.items()
            if tp not in current or current[tp][0] < value[0]
        }
        if not forward:
            return True
        errors = await commit_offsets(self.target, group, forward)
        failed = {tp: e for tp, e in errors.items() if e}
        if failed:
            log.info("group %s: target refused offset sync %s (active members?)", group, failed)
            return False
        return True
