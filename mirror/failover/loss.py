"""A forced failover's loss manifest: what the old primary held that the new one lacks.

The old primary cannot be asked (it is gone), so the manifest compares the new primary's
log ends with the last end offsets the mirror observed on the old one
(`regionlink-source-ends.<old>.internal`, refreshed every heartbeat interval, also while the
flow was paused or lagging). Offsets in between are lost: exact up to that observation,
whose age the report states — writes acknowledged after it are not known to anyone.
Mirror topics keep source offsets, so the lost offsets are the old primary's own.
"""

from __future__ import annotations

import time
from typing import Any

from broker.client import KafkaClient
from broker.client.data import TopicPartition
from mirror.failover import regions
from mirror.failover.model import PartitionLoss
from mirror.offsets.checkpoints import end_offsets
from mirror.offsets.mm2_formats import SourceEnd
from mirror.offsets.source_ends import SourceEnds


async def measure_loss(new_primary: KafkaClient, old_primary: str) -> dict[str, Any]:
    """The measure_loss step's figures (the shape mirror/failover/report.py reads)."""
    topics = await regions.mirror_topics(new_primary, old_primary)
    tps = [(t, p) for t, count in sorted(topics.items()) for p in range(count)]
    observed = await SourceEnds(new_primary, old_primary).latest()
    ends = await end_offsets(new_primary, tps)
    losses = []
    for tp in tps:
        seen, have = observed.get(tp), ends.get(tp, 0)
        if seen is not None and seen.end_offset > have:
            newest_ms = await regions.last_timestamp_ms(new_primary, tp, have)
            losses.append(lost_range(tp, have, seen, newest_ms))
    return {
        **observation_age([observed[tp].observed_ms for tp in tps if tp in observed]),
        "partitions": [loss.to_json() for loss in losses],
        "target_ends": [
            {"topic": t, "partition": p, "end_offset": ends.get((t, p), 0)} for t, p in tps
        ],
    }


def lost_range(
    tp: TopicPartition, have: int, seen: SourceEnd, newest_ms: int | None
) -> PartitionLoss:
    """Source offsets [have, seen end) of `tp`, lost; they were written after the newest
    record the new primary holds of it (`newest_ms`), and before the observation."""
    return PartitionLoss(
        tp[0], tp[1], have, seen.end_offset - 1, seen.end_offset - have,
        first_timestamp_ms=newest_ms + 1 if newest_ms is not None else None,
        last_timestamp_ms=seen.observed_ms,
    )  # fmt: skip


def observation_age(observed_ms: list[int]) -> dict[str, Any]:
    """When the oldest of the observations the manifest relies on was made, and its age."""
    observed_at_ms = min(observed_ms) if observed_ms else None
    now_ms = int(time.time() * 1000)
    return {
        "observed_at_ms": observed_at_ms,
        "observed_age_s": (now_ms - observed_at_ms) / 1000 if observed_at_ms else None,
    }
