"""Copy one source partition into its mirror topic, every record at its source offset.

The mirror topic's log end offset is the whole resume state: it is the next source offset
to copy (offsets are the same in both regions), so there is no offset map to keep. Each
append carries the offset it expects the target log to end at and the topology epoch the
flow runs under; the target refuses a stale or duplicate append (another worker, a retry
after a lost answer, a worker of an older epoch), and the copier resumes from the target's
answer. A target that is ahead of its source has diverged (it took writes the source never
had, as an old primary does after a forced failover): the copier stops and says so, since
only `regionlink failback` may decide what happens to those records.
"""

from __future__ import annotations

import logging
import time

from broker.client import KafkaClient, KafkaError
from broker.client.data import EARLIEST, LATEST, LinkResult, link_append
from broker.messaging_spans import context_ids
from broker.protocol.errors import ErrorCode
from mirror.backoff import Backoff
from mirror.copy.copier import CopierBase, CopyError, CopySettings
from mirror.copy.fetcher import SourceFetcher
from mirror.copy.link_plan import LinkPlan, plan_link_append
from mirror.status import LostRange, PartitionState, PartitionStatus

log = logging.getLogger(__name__)

_RESYNC = ErrorCode.out_of_order_sequence_number  # expected offset != the target's log end


class DivergedTarget(CopyError):
    """The target holds offsets its source does not: only a failback may resolve it."""


class LinkCopier(CopierBase):
    """A copier whose target is a mirror topic (LinkAppend, offsets preserved)."""

    def __init__(
        self,
        source: KafkaClient,
        target: KafkaClient,
        status: PartitionStatus,
        settings: CopySettings,
        fetcher: SourceFetcher,
        *,
        source_region: str,
        link_epoch: int,
    ) -> None:
        super().__init__(source, target, status, settings, fetcher)
        self.source_region = source_region
        self.link_epoch = link_epoch

    async def _copy(self, backoff: Backoff) -> None:
        position = await self._resume_link()
        feed = self.fetcher.subscribe(self.source_tp, position)
        try:
            while not self._stopping:
                chunk = await self._next_chunk(feed)
                fetched = chunk.fetched
                self.status.source_end = fetched.high_watermark
                plan = plan_link_append(fetched.records, fetched.aborted, position)
                if plan.batches:
                    await self._append(plan, position)
                position = plan.next_offset
                self._account_link(plan, fetched.high_watermark)
                backoff.reset()
        finally:
            self.fetcher.unsubscribe(self.source_tp)

    async def _resume_link(self) -> int:
        """The target's log end: where the source is read next (gaps reported as lost)."""
        if self.status.state != PartitionState.RETRYING:
            self.status.state = PartitionState.STARTING
        target_end = await self._offset(self.target, self.target_tp, LATEST)
        source_start = await self._offset(self.source, self.source_tp, EARLIEST)
        source_end = await self._offset(self.source, self.source_tp, LATEST)
        if target_end > source_end:
            raise DivergedTarget(
                f"{self.target_tp[0]}[{self.target_tp[1]}] ends at offset {target_end}, beyond "
                f"its source's end {source_end}: the target took writes its source never had; "
                "run `regionlink failback` to save them and re-align"
            )
        position = max(target_end, source_start)
        if target_end and source_start > target_end:
            self._report_lost(target_end, source_start)
        self.status.source_position = self.status.target_end = position
        self.status.source_end = source_end
        log.info("%s[%d]: mirror topic resumes at offset %d", *self.source_tp, position)
        return position

    def _report_lost(self, first_offset: int, end_offset: int) -> None:
        lost = LostRange(first_offset, end_offset, int(time.time() * 1000))
        self.status.lost.append(lost)
        log.error(
            "%s[%d]: source offsets %d-%d (%d records) were deleted by retention before they "
            "were mirrored; the mirror topic keeps the gap",
            *self.source_tp,
            first_offset,
            end_offset - 1,
            lost.record_count,
        )

    async def _append(self, plan: LinkPlan, expected_offset: int) -> None:
        """One LinkAppend of the whole plan; a refusal restarts from the target's log end."""
        leader = await self.target.leader_for(*self.target_tp)
        records = b"".join(batch.data for batch in plan.batches)
        contexts = self._contexts([records])  # searched once, linked here and by the target
        traced = None if contexts is None else {self.target_tp: context_ids(contexts)}
        with await self._span([records], expected_offset, plan.record_count, contexts):
            results = await link_append(
                self.target,
                leader,
                self.source_region,
                self.link_epoch,
                {self.target_tp: (expected_offset, records)},
                timeout_ms=self.settings.produce_timeout_ms,
                trace_contexts=traced,
            )
        result: LinkResult = results[self.target_tp]
        if result.error == ErrorCode.none:
            return
        if result.error == _RESYNC:
            raise CopyError(
                f"target log ends at {result.log_end_offset}, not {expected_offset}; resuming"
            )
        if result.error in (
            ErrorCode.not_leader_or_follower,
            ErrorCode.unknown_topic_or_partition,
            ErrorCode.leader_not_available,
        ):
            await self.target.refresh_metadata([self.target_tp[0]])
        raise KafkaError(
            result.error,
            f"target refused the link append to {self.target_tp[0]}[{self.target_tp[1]}]",
            result.message,
        )

    def _account_link(self, plan: LinkPlan, high_watermark: int) -> None:
        status = self.status
        if self.settings.latency is not None:
            self.settings.latency.acked(b.max_timestamp_ms for b in plan.batches if b.record_count)
        status.count(plan.record_count, plan.byte_count)
        status.source_position = status.target_end = plan.next_offset
        status.lag_records = max(0, high_watermark - plan.next_offset)
        if status.lag_records == 0:
            status.lag_ms, status.state = 0, PartitionState.CAUGHT_UP
        else:
            newest_ms = max((b.max_timestamp_ms for b in plan.batches), default=0)
            status.lag_ms = max(0, int(time.time() * 1000) - newest_ms) if newest_ms else 0
            status.state = PartitionState.COPYING
        status.last_error = ""
