"""Copy one source partition to its remote partition, exactly once and in order.

Start: read the target's end offset and the persisted offset map; they say exactly
which source offset to copy next (the target partition is written only by this flow,
and run starts are persisted before the batches they describe). Loop: fetch, plan
(mirror.copy.transfer), persist new run starts, produce with our idempotent producer id.
Any error restarts from that same resume point after a backoff, so nothing is lost
or written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from opentelemetry.trace import SpanContext

from broker import links, telemetry
from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.admin import init_producer_id
from broker.client.data import (
    EARLIEST,
    LATEST,
    TopicPartition,
    latest_offsets,
    list_offsets,
    produce,
    produce_pipelined,
)
from broker.messaging_spans import NO_SPAN, BatchSpan, sampled_contexts
from broker.protocol.batch import InvalidBatch
from broker.protocol.errors import ErrorCode
from mirror.backoff import Backoff
from mirror.copy.fetcher import Chunk, FeedItem, SourceFetcher
from mirror.copy.latency import ReplicationLatency
from mirror.copy.tracing import copy_span
from mirror.copy.transfer import OutgoingBatch, ProducerSession, TransferPlan, plan_transfer
from mirror.offsets.offset_map import MirrorCursor
from mirror.offsets.store import OffsetMapStore
from mirror.offsets.syncs import OffsetSyncEmitter
from mirror.status import LostRange, PartitionState, PartitionStatus

log = logging.getLogger(__name__)

_REFRESH_ERRORS = {
    ErrorCode.not_leader_or_follower,
    ErrorCode.leader_not_available,
    ErrorCode.unknown_topic_or_partition,
    ErrorCode.fenced_leader_epoch,
    ErrorCode.unknown_leader_epoch,
}
_PRODUCE_ATTEMPTS = 5
_ACCEPTED = (0, ErrorCode.duplicate_sequence_number)
PIPELINE_DEPTH = 5  # Kafka deduplicates the last 5 batches of an idempotent producer


class CopyError(Exception):
    """A condition the copier cannot resolve by itself (shown in status, retried)."""


@dataclass(frozen=True)
class CopySettings:
    start_from: str = "earliest"
    produce_timeout_ms: int = 30_000
    latency: ReplicationLatency | None = None  # the flow's, when the worker has metrics


class CopierBase:
    """One source partition's copy loop: retries with backoff, from a fresh resume each time."""

    def __init__(
        self,
        source: KafkaClient,
        target: KafkaClient,
        status: PartitionStatus,
        settings: CopySettings,
        fetcher: SourceFetcher,
    ) -> None:
        self.source = source
        self.fetcher = fetcher
        self.target = target
        self.status = status
        self.settings = settings
        self.source_tp: TopicPartition = (status.source_topic, status.partition)
        self.target_tp: TopicPartition = (status.target_topic, status.partition)
        self._stopping = False

    def stop(self) -> None:
        """Finish the current produce, then return (used when the partition is revoked)."""
        self._stopping = True
        self.fetcher.unsubscribe(self.source_tp)  # wakes a copier waiting for data

    async def run(self) -> None:
        backoff = Backoff()
        while not self._stopping:
            try:
                await self._copy(backoff)
            except (KafkaError, KafkaConnectionError, CopyError, InvalidBatch) as exc:
                if self._stopping:
                    return
                self.status.state = PartitionState.RETRYING
                self.status.last_error = str(exc)
                delay_s = backoff.next_delay_s()
                log.warning("%s[%d]: %s; retrying in %.1fs", *self.source_tp, exc, delay_s)
                await anyio.sleep(delay_s)

    async def _copy(self, backoff: Backoff) -> None:
        """Resume, then copy until stopped; errors propagate to `run`'s retry."""
        raise NotImplementedError

    async def _next_chunk(self, feed: MemoryObjectReceiveStream[FeedItem]) -> Chunk:
        try:
            item = await feed.receive()
        except anyio.EndOfStream:
            raise CopyError("the source feed stopped; resuming") from None
        if isinstance(item, KafkaError) and item.code == ErrorCode.offset_out_of_range:
            raise CopyError("the source offset is out of range; resuming") from item
        if isinstance(item, Exception):
            raise item
        self.fetcher.taken(self.source_tp, item)
        return item

    def _traced(self, batches: Sequence[bytes | bytearray | memoryview]) -> bool:
        return (
            bool(batches)
            and telemetry.tracing_enabled()
            and not links.is_internal(self.source_tp[0])
        )

    def _contexts(
        self, batches: Sequence[bytes | bytearray | memoryview]
    ) -> list[SpanContext] | None:
        """The sampled trace contexts in a chunk's records, when this copier traces it."""
        return sampled_contexts(batches) if self._traced(batches) else None

    async def _span(
        self,
        batches: Sequence[bytes | bytearray | memoryview],
        first_source_offset: int,
        record_count: int,
        contexts: Sequence[SpanContext] | None = None,
    ) -> AbstractContextManager[BatchSpan | None]:
        """The span around writing one chunk to the target (mirror/copy/tracing.py), linked
        to `contexts` when given (else to those found in `batches`)."""
        if not self._traced(batches):
            return NO_SPAN
        leader = await self.target.leader_for(*self.target_tp)
        server = self.target.view.brokers.get(leader)
        return copy_span(
            batches,
            self.source_tp,
            self.target_tp,
            first_source_offset,
            record_count,
            server,
            contexts,
        )

    async def _offset(self, client: KafkaClient, tp: TopicPartition, which: int) -> int:
        leader = await client.leader_for(*tp)
        if which == LATEST:  # checked against Fetch's high watermark (see latest_offsets)
            error, offset = (await latest_offsets(client, leader, [tp]))[tp]
        else:
            error, offset = (await list_offsets(client, leader, {tp: which}))[tp]
        if error in _REFRESH_ERRORS:
            await client.refresh_metadata([tp[0]])
        if error:
            raise KafkaError(error, f"ListOffsets {tp[0]}[{tp[1]}]")
        return offset


class PartitionCopier(CopierBase):
    """Onto any Kafka-compatible target: Produce, with the exact offset map kept on it."""

    def __init__(
        self,
        source: KafkaClient,
        target: KafkaClient,
        store: OffsetMapStore,
        status: PartitionStatus,
        settings: CopySettings,
        fetcher: SourceFetcher,
        syncs: OffsetSyncEmitter | None = None,
    ) -> None:
        super().__init__(source, target, status, settings, fetcher)
        self.store = store
        self.syncs = syncs

    async def _copy(self, backoff: Backoff) -> None:
        cursor = await self._resume()
        session = ProducerSession(*await init_producer_id(self.target))
        sequence = 0
        feed = self.fetcher.subscribe(self.source_tp, cursor.source_position)
        try:
            while not self._stopping:
                chunk = await self._next_chunk(feed)
                fetched = chunk.fetched
                assert chunk.position <= cursor.source_position, (chunk.position, cursor)
                self.status.source_end = fetched.high_watermark
                plan, sequence = plan_transfer(
                    fetched.records, fetched.aborted, cursor, session, sequence
                )
                if plan.new_runs:
                    await self.store.append(self.source_tp, plan.new_runs)
                first_offset = plan.batches[0].source_first_offset if plan.batches else 0
                data = [batch.data for batch in plan.batches]
                with await self._span(data, first_offset, plan.record_count):
                    await self._produce_all(plan.batches)
                self._offer_syncs(plan, cursor)
                self._account(plan, cursor, fetched.high_watermark)
                backoff.reset()
        finally:
            self.fetcher.unsubscribe(self.source_tp)

    async def _resume(self) -> MirrorCursor:
        """Where to continue: from the map and what landed, or from the start policy."""
        if self.status.state != PartitionState.RETRYING:
            self.status.state = PartitionState.STARTING  # a retry keeps showing its error
        target_end = await self._offset(self.target, self.target_tp, LATEST)
        await self.store.catch_up()
        offset_map = self.store.map_for(self.source_tp)
        position = offset_map.resume_position(target_end)
        if position is None:
            start = LATEST if self.settings.start_from == "latest" else EARLIEST
            position = await self._offset(self.source, self.source_tp, start)
        cursor = MirrorCursor(offset_map, position, target_end)
        await self._skip_lost(cursor)
        self.status.source_position, self.status.target_end = position, target_end
        log.info(
            "%s[%d]: resuming at source offset %d, target offset %d",
            *self.source_tp,
            cursor.source_position,
            target_end,
        )
        return cursor

    async def _skip_lost(self, cursor: MirrorCursor) -> None:
        """Records deleted by retention before we copied them: report the range, go on."""
        earliest = await self._offset(self.source, self.source_tp, EARLIEST)
        if earliest <= cursor.source_position:
            return
        lost = LostRange(cursor.source_position, earliest, int(time.time() * 1000))
        self.status.lost.append(lost)
        log.error(
            "%s[%d]: source offsets %d-%d (%d records) were deleted by retention before they "
            "were mirrored; continuing at %d",
            *self.source_tp,
            lost.first_offset,
            lost.end_offset - 1,
            lost.record_count,
            earliest,
        )
        cursor.skip_to(earliest)

    async def _produce_all(self, batches: list[OutgoingBatch]) -> None:
        """Pipeline up to PIPELINE_DEPTH produce requests; resend from the first failure."""
        index = 0
        while index < len(batches):
            window = batches[index : index + PIPELINE_DEPTH]
            accepted = 0
            try:
                leader = await self.target.leader_for(*self.target_tp)
                results = await produce_pipelined(
                    self.target,
                    leader,
                    [{self.target_tp: b.data} for b in window],
                    timeout_ms=self.settings.produce_timeout_ms,
                )
                for result in results:
                    if result[self.target_tp].error not in _ACCEPTED:
                        break
                    accepted += 1
            except KafkaConnectionError:
                pass
            index += accepted
            if accepted < len(window):
                await self._produce(batches[index])  # the slow path retries and explains
                index += 1

    async def _produce(self, batch: OutgoingBatch) -> None:
        """Produce one batch; retries resend the same bytes, which the target deduplicates."""
        for attempt in range(_PRODUCE_ATTEMPTS):
            try:
                leader = await self.target.leader_for(*self.target_tp)
                result = (
                    await produce(
                        self.target,
                        leader,
                        {self.target_tp: batch.data},
                        timeout_ms=self.settings.produce_timeout_ms,
                    )
                )[self.target_tp]
            except KafkaConnectionError:
                if attempt + 1 == _PRODUCE_ATTEMPTS:
                    raise
                await anyio.sleep(0.1 * 2**attempt)
                continue
            if result.error in _ACCEPTED:
                return
            if result.error in _REFRESH_ERRORS or ErrorCode(result.error).retriable:
                await self.target.refresh_metadata([self.target_tp[0]])
                await anyio.sleep(0.1 * 2**attempt)
                continue
            raise KafkaError(
                result.error,
                f"target refused {self.target_tp[0]}[{self.target_tp[1]}]",
                result.message,
            )
        raise CopyError(f"producing to {self.target_tp[0]}[{self.target_tp[1]}] kept failing")

    def _offer_syncs(self, plan: TransferPlan, cursor: MirrorCursor) -> None:
        if self.syncs is None:
            return
        for run in plan.new_runs:
            self.syncs.offer(self.source_tp, run.source_offset, run.target_offset, True)
        if plan.batches:
            last = plan.batches[-1].source_last_offset
            self.syncs.offer(self.source_tp, last, cursor.target_end - 1, False)

    def _account(self, plan: TransferPlan, cursor: MirrorCursor, high_watermark: int) -> None:
        status = self.status
        batches = plan.batches
        if self.settings.latency is not None:
            self.settings.latency.acked(b.max_timestamp_ms for b in batches)
        status.count(plan.record_count, plan.byte_count)
        status.source_position = cursor.source_position
        status.target_end = cursor.target_end
        status.lag_records = max(0, high_watermark - cursor.source_position)
        if status.lag_records == 0:
            status.lag_ms = 0
            status.state = PartitionState.CAUGHT_UP
        else:
            newest_ms = max((b.max_timestamp_ms for b in batches), default=0)
            status.lag_ms = max(0, int(time.time() * 1000) - newest_ms) if newest_ms else 0
            status.state = PartitionState.COPYING
        status.last_error = ""
