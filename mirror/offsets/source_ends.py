"""The source's end offsets as last observed, kept on the target for a forced failover.

When the primary region is lost, the only record of what it held is what the mirror saw.
Every heartbeat interval (also while the flow is paused or lagging) the flow asks the
source for each mirrored partition's end offset and writes it, with the time it asked, to
a compacted topic on the target. A forced failover compares these with what the target
holds: the difference is the loss manifest, and the observation's age bounds its error.
"""

from __future__ import annotations

import time

from broker.client import KafkaClient
from broker.client.data import TopicPartition
from mirror.internal import COMPACTED, InternalTopic, source_ends_topic
from mirror.offsets.checkpoints import end_offsets
from mirror.offsets.mm2_formats import MalformedRecord, SourceEnd


class SourceEnds:
    """`regionlink-source-ends.<source>.internal` on one cluster (the flow's target)."""

    def __init__(self, target: KafkaClient, source_alias: str) -> None:
        self.topic = InternalTopic(target, source_ends_topic(source_alias), COMPACTED)

    async def observe(self, source: KafkaClient, tps: list[TopicPartition]) -> list[SourceEnd]:
        """Ask the source for the end of every partition in `tps` and record the answers."""
        observed_ms = int(time.time() * 1000)
        ends = await end_offsets(source, tps)
        records = [SourceEnd(t, p, end, observed_ms) for (t, p), end in sorted(ends.items())]
        await self.topic.write([r.encode() for r in records])
        return records

    async def latest(self) -> dict[TopicPartition, SourceEnd]:
        """The newest observation of every partition (malformed records are skipped)."""
        records, _ = await self.topic.read()
        out: dict[TopicPartition, SourceEnd] = {}
        for record in records:
            try:
                end = SourceEnd.decode(record.key, record.value)
            except MalformedRecord:
                continue
            out[(end.topic, end.partition)] = end
        return out
