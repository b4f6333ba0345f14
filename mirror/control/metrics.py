"""OpenTelemetry metrics read from a worker's `WorkerStatus` when a reader collects them.

Callbacks observe the status object instead of the copy path recording measurements, so
copying costs nothing extra and metrics always agree with the control API's status.
The provider is returned, never made global: the caller decides its lifetime.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from mirror.status import PartitionStatus, WorkerStatus

METER_NAME = "regionlink.mirror"

Callback = Callable[[CallbackOptions], Iterable[Observation]]


def install_metrics(
    status: WorkerStatus,
    exporter: MetricExporter | None = None,
    interval_s: float = 5.0,
    readers: Sequence[MetricReader] = (),
) -> MeterProvider:
    """A provider whose instruments observe `status`; `exporter` gets one every `interval_s`.

    `readers` are added as they are (tests pass an InMemoryMetricReader). Call
    `shutdown()` on the result to export a last time and stop.
    """
    all_readers = list(readers)
    if exporter is not None:
        interval_ms = interval_s * 1000
        all_readers.append(PeriodicExportingMetricReader(exporter, interval_ms))
    resource = Resource.create(
        {"service.name": "regionlink-mirror", "service.instance.id": status.worker_id}
    )
    provider = MeterProvider(metric_readers=all_readers, resource=resource)
    meter = provider.get_meter(METER_NAME)

    def per_partition(read: Callable[[PartitionStatus], float]) -> list[Callback]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read(p), attributes) for attributes, p in _partitions(status)]

        return [callback]

    meter.create_observable_gauge(
        "regionlink.mirror.lag.records",
        per_partition(lambda p: p.lag_records),
        unit="{record}",
        description="Source records not yet copied to the target.",
    )
    meter.create_observable_gauge(
        "regionlink.mirror.lag.ms",
        per_partition(lambda p: p.lag_ms),
        unit="ms",
        description="How far the target is behind the source in time.",
    )
    meter.create_observable_gauge(
        "regionlink.mirror.throughput.records_per_s",
        per_partition(lambda p: p.records_per_s),
        unit="{record}/s",
        description="Records copied per second over the last window.",
    )
    meter.create_observable_counter(
        "regionlink.mirror.records.copied",
        per_partition(lambda p: p.records_copied),
        unit="{record}",
        description="Records copied since the worker started.",
    )
    meter.create_observable_counter(
        "regionlink.mirror.records.lost",
        per_partition(lambda p: sum(r.record_count for r in p.lost)),
        unit="{record}",
        description="Source records deleted by retention before they were copied.",
    )
    return provider


def _partitions(status: WorkerStatus) -> list[tuple[dict[str, str | int], PartitionStatus]]:
    """(attributes, partition) for every partition; safe from the reader's thread.

    `list()` over a dict copies it without running Python code, so under the GIL it cannot
    see the event loop add or drop a flow or partition halfway through.
    """
    found: list[tuple[dict[str, str | int], PartitionStatus]] = []
    for flow in list(status.flows.values()):
        for (topic, partition), p in list(flow.partitions.items()):
            found.append(({"flow": flow.name, "topic": topic, "partition": partition}, p))
    return found


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
