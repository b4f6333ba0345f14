"""End-to-end replication latency of one flow, recorded per mirrored batch.

Measured in the worker, not in the target broker: the worker is the one place that knows
both ends for every kind of target — the source batch's max timestamp (CreateTime: when its
producer sent its newest record, just before the source accepted it) and the moment the
target acknowledged the copy (acks=all, or a LinkAppend that waits for the in-sync
replicas). A target broker would see only LinkAppends to regionlink mirror topics, never
produces onto a foreign cluster. Both timestamps are wall clocks: across machines the
figure carries their skew.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from opentelemetry.metrics import Histogram


class ReplicationLatency:
    def __init__(self, histogram: Histogram, flow: str) -> None:
        self._histogram = histogram
        self._attributes = {"flow": flow}

    def acked(self, max_timestamps_ms: Iterable[int]) -> None:
        """The target acknowledged batches with these source max timestamps just now.

        Batches without a timestamp (-1) are not measured; a timestamp ahead of this clock
        counts as 0 rather than a negative latency.
        """
        now_ms = time.time() * 1000
        for timestamp_ms in max_timestamps_ms:
            if timestamp_ms > 0:
                latency_s = max(0.0, now_ms - timestamp_ms) / 1000
                self._histogram.record(latency_s, self._attributes)
