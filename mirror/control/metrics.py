"""A worker's metrics, observed from its `WorkerStatus` when a reader collects them.

Callbacks read the status object instead of the copy path recording measurements, so
copying costs nothing extra and metrics always agree with the control API's status (and so
with `regionlink status`). Names come from the catalog (broker/metrics/catalog.py); the
replication latency histogram is recorded by the copiers (mirror/copy/latency.py).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from broker.metrics import catalog
from broker.metrics.instruments import Labels, Sample, observe
from mirror.status import PartitionStatus, WorkerStatus


def observe_worker(meter: Meter, status: WorkerStatus) -> None:
    """Register the worker's per-partition and per-flow instruments on `meter`."""

    def per_partition(read: Callable[[PartitionStatus], float]) -> Callable[[], list[Sample]]:
        return lambda: [(labels, read(p)) for labels, p in _partitions(status)]

    observe(meter, catalog.MIRROR_LAG_RECORDS, per_partition(lambda p: p.lag_records))
    observe(meter, catalog.MIRROR_LAG_SECONDS, per_partition(lambda p: p.lag_ms / 1000))
    observe(meter, catalog.MIRROR_RECORDS, per_partition(lambda p: p.records_copied))
    observe(meter, catalog.MIRROR_BYTES, per_partition(lambda p: p.bytes_copied))
    observe(
        meter,
        catalog.MIRROR_RECORDS_LOST,
        per_partition(lambda p: sum(r.record_count for r in p.lost)),
    )
    observe(meter, catalog.MIRROR_PARTITIONS, lambda: _states(status))


def _partitions(status: WorkerStatus) -> list[tuple[Labels, PartitionStatus]]:
    """(labels, partition) for every partition; safe from the reader's thread.

    `list()` over a dict copies it without running Python code, so under the GIL it cannot
    see the event loop add or drop a flow or partition halfway through.
    """
    found: list[tuple[Labels, PartitionStatus]] = []
    for flow in list(status.flows.values()):
        for (topic, partition), p in list(flow.partitions.items()):
            found.append(({"flow": flow.name, "topic": topic, "partition": partition}, p))
    return found


def _states(status: WorkerStatus) -> list[Sample]:
    counts = Counter((str(labels["flow"]), str(p.state)) for labels, p in _partitions(status))
    return [({"flow": flow, "state": state}, n) for (flow, state), n in sorted(counts.items())]


def json_lines_reader(path: Path, interval_s: float) -> PeriodicExportingMetricReader:
    """A reader appending every `interval_s` to `path` (for `regionlink worker --metrics-file`)."""
    return PeriodicExportingMetricReader(JsonLinesMetricExporter(path), interval_s * 1000)


class JsonLinesMetricExporter(MetricExporter):
    """Appends each export as one JSON object per line (for --metrics-file): easy to tail."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self._file: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - lives with the exporter
        self._lock = threading.Lock()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        line = metrics_data.to_json(indent=None)
        with self._lock:
            if self._file.closed:
                return MetricExportResult.FAILURE
            self._file.write(line + "\n")
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        with self._lock:
            self._file.close()
