"""Follower replicas: fetch from each partition's leader with the Kafka Fetch protocol.

One task per leader broker fetches all partitions this broker follows from it, as Kafka's
replica fetcher threads do. Before its first fetch under a leader epoch a follower asks the
leader where its history ends (OffsetForLeaderEpoch) and truncates what diverged, so a log
written by a deposed leader never keeps records the new leader does not have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from broker.client import data
from broker.client.client import KafkaClient, KafkaError
from broker.client.connection import KafkaConnectionError
from broker.client.data import TopicPartition
from broker.log import OffsetMismatch
from broker.partitions import Partition
from broker.protocol.batch import InvalidBatch, iter_headers
from broker.protocol.errors import ErrorCode
from broker.protocol.fetch_reader import PartitionData

if TYPE_CHECKING:
    from broker.broker import Broker

log = logging.getLogger("regionlink.replication")

FETCH_WAIT_MS = 500
PARTITION_MAX_BYTES = 8 << 20
RESPONSE_MAX_BYTES = 32 << 20
RETRY_BACKOFF_S = 0.2


@dataclass
class Follow:
    leader_id: int
    leader_epoch: int
    truncated: bool = False  # checked against the leader since this leader epoch began


class ReplicaFetcher:
    """Keeps this broker's follower replicas in step with their leaders."""

    def __init__(self, broker: Broker, client: KafkaClient) -> None:
        self._broker = broker
        self._client = client
        self._follows: dict[TopicPartition, Follow] = {}
        self._running: set[int] = set()
        self._changed = anyio.Event()

    def follow(self, key: TopicPartition, leader_id: int, leader_epoch: int) -> None:
        current = self._follows.get(key)
        if current and (current.leader_id, current.leader_epoch) == (leader_id, leader_epoch):
            return
        self._follows[key] = Follow(leader_id, leader_epoch)
        self._wake()

    def unfollow(self, key: TopicPartition) -> None:
        if self._follows.pop(key, None) is not None:
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            while True:
                changed = self._changed
                for leader_id in {f.leader_id for f in self._follows.values()} - self._running:
                    self._running.add(leader_id)
                    tasks.start_soon(self._fetch_from, leader_id)
                await changed.wait()

    def _followed_from(self, leader_id: int) -> dict[TopicPartition, Follow]:
        return {k: f for k, f in self._follows.items() if f.leader_id == leader_id}

    async def _fetch_from(self, leader_id: int) -> None:
        try:
            while follows := self._followed_from(leader_id):
                try:
                    await self._truncate(leader_id, follows)
                    if not await self._fetch_once(leader_id, follows):
                        await anyio.sleep(RETRY_BACKOFF_S)
                except (KafkaConnectionError, KafkaError, OSError) as exc:
                    log.debug("fetch from broker %d failed: %s", leader_id, exc)
                    await anyio.sleep(RETRY_BACKOFF_S)
        finally:
            self._running.discard(leader_id)

    def _current(self, key: TopicPartition, follow: Follow) -> Partition | None:
        """The partition if it still follows as `follow` says (metadata may have moved on)."""
        if self._follows.get(key) is not follow:
            return None
        return self._broker.partition(*key)

    async def _truncate(self, leader_id: int, follows: dict[TopicPartition, Follow]) -> None:
        asked = {}
        for key, follow in follows.items():
            partition = self._current(key, follow)
            if partition is None or follow.truncated:
                continue
            if partition.log.log_end_offset == partition.log.log_start_offset:
                follow.truncated = True  # nothing to diverge
            else:
                asked[key] = (follow.leader_epoch, partition.log.latest_epoch)
        if not asked:
            return
        answers = await data.end_offsets_for_epochs(
            self._client, leader_id, asked, replica_id=self._broker.config.node_id
        )
        for key, (error, epoch, end_offset) in answers.items():
            follow = follows[key]
            partition = self._current(key, follow)
            if partition is None or error != ErrorCode.none:
                continue
            _truncate_to_leader(partition, epoch, end_offset)
            follow.truncated = True

    async def _fetch_once(self, leader_id: int, follows: dict[TopicPartition, Follow]) -> bool:
        """One Fetch; False when the leader refused something (back off, await metadata)."""
        ready = {k: f for k, f in follows.items() if f.truncated}
        positions = {}
        for key, follow in ready.items():
            partition = self._current(key, follow)
            if partition is not None:
                positions[key] = partition.log.log_end_offset
        if not positions:
            return False
        results = await data.fetch_views(
            self._client,
            leader_id,
            positions,
            partition_max_bytes=PARTITION_MAX_BYTES,
            max_bytes=RESPONSE_MAX_BYTES,
            max_wait_ms=FETCH_WAIT_MS,
            isolation_level=data.READ_UNCOMMITTED,
            replica_id=self._broker.config.node_id,
            leader_epochs={k: ready[k].leader_epoch for k in positions},
        )
        healthy = True
        for key, result in results.items():
            if key not in ready:
                continue
            partition = self._current(key, ready[key])
            if partition is not None:
                healthy &= self._apply(partition, ready[key], positions[key], result)
        return healthy

    def _apply(
        self, partition: Partition, follow: Follow, position: int, result: PartitionData
    ) -> bool:
        if result.error_code == ErrorCode.offset_out_of_range:
            if 0 <= position < result.log_start_offset:  # the leader deleted what we lack
                partition.log.truncate_fully_and_start_at(result.log_start_offset)
                partition.producers.truncate()
            else:
                follow.truncated = False
            return True
        if result.error_code != ErrorCode.none:
            return False
        if partition.log.log_end_offset != position:
            return True  # truncated meanwhile; the next fetch starts from the new end
        if result.records:
            try:
                _append(partition, result.records)
            except (OffsetMismatch, InvalidBatch) as exc:
                log.warning("%s-%d: refetching after %s", partition.topic, partition.index, exc)
                follow.truncated = False
                return True
        partition.follower_high_watermark = result.high_watermark
        return True


def _append(partition: Partition, records: bytes | memoryview) -> None:
    partition.log.append_as_follower(records)
    for header in iter_headers(records):
        if header.has_producer_id and not header.is_control:
            partition.producers.record(header, header.base_offset, header.last_offset)


def _truncate_to_leader(partition: Partition, leader_epoch: int, leader_end_offset: int) -> None:
    """Cut the log where its history stops matching the leader's (Kafka's KIP-101 rule)."""
    log_ = partition.log
    if leader_epoch < 0 or leader_end_offset < 0:
        target = min(partition.high_watermark, log_.log_end_offset)
    else:
        _, local_end = log_.end_offset_for_epoch(leader_epoch)
        target = min(leader_end_offset, local_end, log_.log_end_offset)
    if target >= log_.log_end_offset:
        return
    log.info(
        "%s-%d: truncating from %d to %d (leader epoch %d ends at %d)",
        partition.topic,
        partition.index,
        log_.log_end_offset,
        target,
        leader_epoch,
        leader_end_offset,
    )
    log_.truncate_to(target)
    partition.restore_producer_state()
