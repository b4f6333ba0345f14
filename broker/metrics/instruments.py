"""OpenTelemetry instruments made from catalog entries, so names, units and help come from
one place.

Most metrics are *observed*: a callback reads counters and state the process keeps anyway
when a reader collects (a scrape), so the request and copy paths pay nothing per record.
Histograms are the exception (OpenTelemetry has no observable histogram): they are
recorded where the measurement happens, once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from broker.metrics.catalog import Kind, MetricSpec

Labels = Mapping[str, str | int]
Sample = tuple[Labels, float]


def observe(meter: Meter, spec: MetricSpec, read: Callable[[], Iterable[Sample]]) -> None:
    """Register `spec` as an observable counter or gauge whose samples `read` returns.

    `read` runs on the scraping thread: it must only read (copy dicts with `list()`, which
    the GIL makes atomic against the event loop's changes).
    """

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(labels)) for labels, value in read()]

    if spec.kind == Kind.COUNTER:
        meter.create_observable_counter(spec.name, [callback], spec.unit, spec.help)
    elif spec.kind == Kind.GAUGE:
        meter.create_observable_gauge(spec.name, [callback], spec.unit, spec.help)
    else:
        raise ValueError(f"{spec.name} is a {spec.kind}: record it with histogram()")


def histogram(meter: Meter, spec: MetricSpec) -> Histogram:
    """The recording instrument of a histogram entry, with the catalog's buckets."""
    if spec.kind != Kind.HISTOGRAM:
        raise ValueError(f"{spec.name} is a {spec.kind}, not a histogram")
    return meter.create_histogram(
        spec.name, spec.unit, spec.help, explicit_bucket_boundaries_advisory=spec.buckets
    )
