"""MM2-compatible offset syncs (`mm2-offset-syncs.<alias>.internal`) for MM2's own tools.

Our translation uses the exact map; these sparse syncs exist so that tools written for
MirrorMaker 2 keep working. Like MM2 we emit a sync when a partition moved more than
`offset_lag_max` records past its last one, and at every discontinuity (run start);
writes are batched once per `flush_interval_s`.
"""

from __future__ import annotations

import logging

import anyio

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.data import TopicPartition
from mirror.internal import COMPACTED, InternalTopic
from mirror.offsets.mm2_formats import OffsetSync

log = logging.getLogger(__name__)

MAX_PENDING = 10_000  # while the cluster is unreachable, keep only the newest syncs


class OffsetSyncEmitter:
    def __init__(
        self,
        client: KafkaClient,
        topic: str,
        offset_lag_max: int,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.topic = InternalTopic(client, topic, COMPACTED)
        self.offset_lag_max = offset_lag_max
        self.flush_interval_s = flush_interval_s
        self._pending: list[OffsetSync] = []
        self._last_downstream: dict[TopicPartition, int] = {}

    def offer(self, tp: TopicPartition, upstream: int, downstream: int, run_start: bool) -> None:
        """Note that source offset `upstream` of `tp` is at target offset `downstream`."""
        last = self._last_downstream.get(tp)
        if run_start or last is None or downstream - last >= self.offset_lag_max:
            self._pending.append(OffsetSync(tp[0], tp[1], upstream, downstream))
            self._last_downstream[tp] = downstream

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.flush_interval_s)
            pending, self._pending = self._pending, []
            try:
                await self.topic.write([sync.encode() for sync in pending])
            except (KafkaError, KafkaConnectionError) as exc:
                log.warning("cannot write MM2 offset syncs to %s: %s", self.topic.name, exc)
                self._pending = (pending + self._pending)[-MAX_PENDING:]
