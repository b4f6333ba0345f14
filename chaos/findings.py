"""What the verifier reports: anomalies, each named by the record it concerns.

The first six classes are those of Jepsen's Kafka checker (jepsen/tests/kafka.clj), the others
what a cross-region drill adds. Classes are kept apart where one cause would otherwise be
counted twice: a record lost in a failover is `rpo-loss`, never also `lost-write`; a consumer
passing over a lost record is not a `poll-skip`; an acknowledged record never polled is
`unseen` only when nothing shows it was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Anomaly(StrEnum):
    LOST_WRITE = "lost-write"  # acked; the primary's log lacks it, or consumers read past it
    DUPLICATE = "duplicate"  # one value at two offsets of a partition
    UNSEEN = "unseen"  # acked, not shown lost, never polled by anyone
    POLL_SKIP = "poll-skip"  # a consumer moved past a readable record it never read
    NONMONOTONIC_POLL = "nonmonotonic-poll"  # a consumer went back (or stood still) in the log
    INCONSISTENT_OFFSETS = "inconsistent-offsets"  # two values at one (topic, partition, offset)
    REREAD = "reread"  # a group resumed below its committed offset: a committed record again
    MISSED = "missed"  # a group resumed above its committed offset: a record it never reads
    RPO_LOSS = "rpo-loss"  # acked on the old primary, absent on the new one after a failover
    MIRROR_DIVERGENCE = "mirror-divergence"  # a mirror's copy differs from its source


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomalous record. `offset` is where the record is (or should be); `actor` the
    consumer, group or region concerned; `detail` one line for a human."""

    anomaly: Anomaly
    topic: str
    partition: int
    offset: int
    value: str
    region: str = ""
    actor: str = ""
    detail: str = ""
