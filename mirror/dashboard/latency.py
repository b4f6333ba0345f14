"""Replication latency p50/p99 per flow, from the workers' Prometheus histograms.

Each worker serves `regionlink_replication_latency_seconds` (a histogram: cumulative bucket
counts since it started) on its `metrics_url`. A quantile over a process's whole life says
little about now, so — as Prometheus' `histogram_quantile(rate(...[window]))` does — the
dashboard keeps the flow's bucket counts for the last `window_s` seconds and takes the
quantiles of what was observed between the oldest and the newest: the latency of the records
mirrored in that window. A worker that restarted (counts went down) starts a new window.
"""

from __future__ import annotations

import math
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM = "regionlink_replication_latency_seconds"
SCRAPE_TIMEOUT_S = 1.0

Buckets = dict[float, float]  # upper bound ("le") -> cumulative count


def scrape(url: str, timeout_s: float = SCRAPE_TIMEOUT_S) -> str:
    """The Prometheus text a process serves at `url` (OSError when it does not answer)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return str(response.read().decode())


def histogram_buckets(text: str, name: str = HISTOGRAM) -> Buckets:
    """The histogram's cumulative counts by upper bound, summed over its label sets (every
    partition a worker copies): the flow's histogram as one."""
    buckets: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def merge(parts: Iterable[Buckets]) -> Buckets:
    """Several workers' histograms of one flow as one (same bucket bounds)."""
    out: Buckets = {}
    for part in parts:
        for bound, count in part.items():
            out[bound] = out.get(bound, 0.0) + count
    return out


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of cumulative `buckets`, interpolated linearly inside its bucket (as
    Prometheus does); None when nothing was observed. One past the last finite bound is
    reported as that bound: the histogram cannot say more."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


class LatencyWindow:
    """Each flow's histogram snapshots over the last `window_s` seconds."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._snapshots: dict[str, deque[tuple[float, Buckets]]] = {}

    def observe(self, flow: str, t: float, buckets: Buckets) -> None:
        snapshots = self._snapshots.setdefault(flow, deque())
        if snapshots and any(buckets.get(b, 0.0) < c for b, c in snapshots[-1][1].items()):
            snapshots.clear()  # a counter went down: a worker restarted
        snapshots.append((t, buckets))
        while len(snapshots) > 2 and snapshots[1][0] <= t - self.window_s:
            snapshots.popleft()

    def quantiles_ms(self, flow: str) -> tuple[float | None, float | None]:
        """(p50, p99) in milliseconds of what the flow mirrored in the window."""
        snapshots = self._snapshots.get(flow)
        if not snapshots or len(snapshots) < 2:
            return None, None
        (_, first), (_, last) = snapshots[0], snapshots[-1]
        window = {bound: count - first.get(bound, 0.0) for bound, count in last.items()}
        return _ms(quantile(0.5, window)), _ms(quantile(0.99, window))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
