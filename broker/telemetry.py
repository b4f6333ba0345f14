"""OpenTelemetry tracing for every regionlink process, set up the standard way.

`configure()` runs once per process (broker, mirror worker, the demo's and drills'
clients). It reads the standard `OTEL_*` variables, so Jaeger, Tempo or any collector
works unchanged:

- `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the process (`regionlink up` adds
  `regionlink.region=<region>` to the latter for each process it starts);
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` pick the sampler (the SDK's own parsing;
  default `parentbased_always_on`);
- `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`, comma-separated) picks exporters; when
  it is unset, OTLP is on exactly when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set — unlike the SDK's own default, a process
  with no collector configured does not retry a connection to localhost:4318 forever;
- `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` picks `http/protobuf` (default) or `grpc`; the
  exporters read their endpoint, headers, timeout and compression themselves;
- `OTEL_SDK_DISABLED=true` turns tracing off.

Beside those, the built-in span store (broker/spanstore.py) receives the spans when a path
is given (`--span-store`, or `REGIONLINK_SPAN_STORE`), bounded by
`REGIONLINK_SPAN_STORE_MAX_MB` and `REGIONLINK_SPAN_STORE_MAX_AGE_H`.

With no exporter at all, tracing stays off: no provider is installed, the API's no-op
tracer answers, and the data path does not look for trace contexts in record batches
(`tracing_enabled()`), so it costs nearly nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import (
    SpanLimits,
    SynchronousMultiSpanProcessor,
    TracerProvider,
    sampling,
)
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from broker.recorded_span import SpanSink
from broker.spanstore import DEFAULT_MAX_AGE_S, DEFAULT_MAX_BYTES, SqliteSpanExporter

TRACER_NAME = "regionlink"
REGION_ATTRIBUTE = "regionlink.region"
SPAN_STORE_ENV = "REGIONLINK_SPAN_STORE"
SPAN_STORE_MAX_MB_ENV = "REGIONLINK_SPAN_STORE_MAX_MB"
SPAN_STORE_MAX_AGE_H_ENV = "REGIONLINK_SPAN_STORE_MAX_AGE_H"
LINK_LIMIT_ENV = "OTEL_SPAN_LINK_COUNT_LIMIT"
DEFAULT_LINKS_PER_SPAN = 10_000
_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROTOCOL_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")

_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
_sink: SpanSink | None = None


class TelemetryError(ValueError):
    """An `OTEL_*` or `REGIONLINK_SPAN_STORE*` variable this process cannot honour."""


@dataclass(frozen=True)
class SpanStoreSettings:
    path: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    max_age_s: float = DEFAULT_MAX_AGE_S

    @classmethod
    def from_env(cls, path: Path | None) -> SpanStoreSettings | None:
        """`path` (a command-line option) or `REGIONLINK_SPAN_STORE`, with the bounds the
        environment gives; None when neither names a store."""
        named = os.environ.get(SPAN_STORE_ENV)
        store = path or (Path(named) if named else None)
        if store is None:
            return None
        max_mb = _positive(SPAN_STORE_MAX_MB_ENV, DEFAULT_MAX_BYTES / 2**20)
        max_age_h = _positive(SPAN_STORE_MAX_AGE_H_ENV, DEFAULT_MAX_AGE_S / 3600)
        return cls(store, int(max_mb * 2**20), max_age_h * 3600)


def _positive(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise TelemetryError(f"{name} must be a number, got {text!r}") from None
    if value <= 0:
        raise TelemetryError(f"{name} must be > 0, got {text!r}")
    return value


class FollowLinks(sampling.Sampler):
    """Parent-based sampling carried across batches: a span without a parent that links to a
    sampled context is sampled; every other decision is the configured sampler's.

    The broker's and the mirror's spans have no parent (a batch holds records of many
    traces) and link to the contexts in the records. Without this, at 1 % sampling a sampled
    record's trace would show its broker and mirror hops only 1 % of the time.
    """

    def __init__(self, delegate: sampling.Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> sampling.SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and any(link.context.trace_flags.sampled for link in links or ()):
            return sampling.SamplingResult(sampling.Decision.RECORD_AND_SAMPLE, attributes)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"FollowLinks{{{self.delegate.get_description()}}}"


def sampler_from_env() -> sampling.Sampler:
    """The SDK's sampler for `OTEL_TRACES_SAMPLER[_ARG]`, made to follow sampled links when
    it is parent-based (a plain ratio or always_on/off keeps its own meaning)."""
    configured = sampling._get_from_env_or_default()  # what TracerProvider() itself uses
    return FollowLinks(configured) if isinstance(configured, sampling.ParentBased) else configured


def links_per_span() -> int:
    """How many links a span keeps: `OTEL_SPAN_LINK_COUNT_LIMIT`, else 10,000 rather than the
    SDK's 128 — a broker's or the mirror's span links every sampled record of what it moves,
    and a worker catching up copies thousands of records at a time; a record left out of
    the links would lose that hop of its trace."""
    return int(_positive(LINK_LIMIT_ENV, DEFAULT_LINKS_PER_SPAN))


def resource_for(service_name: str) -> Resource:
    """`service.name` = `service_name` unless `OTEL_SERVICE_NAME` or
    `OTEL_RESOURCE_ATTRIBUTES` say otherwise; the rest of those variables are added."""
    from_env = OTELResourceDetector().detect().attributes
    return Resource.create({"service.name": service_name, **from_env})


def exporters_from_env() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` names (default: OTLP iff an endpoint is set)."""
    names = os.environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        names = "otlp" if any(os.environ.get(name) for name in _ENDPOINT_ENVS) else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if name == "otlp":
            exporters.append(_otlp_exporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name not in ("none", ""):
            raise TelemetryError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)"
            )
    return exporters


def _otlp_exporter() -> SpanExporter:
    protocol = next((p for n in _PROTOCOL_ENVS if (p := os.environ.get(n))), "http/protobuf")
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    raise TelemetryError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (http/protobuf or grpc)"
    )


def build_provider(service_name: str, span_store: Path | None = None) -> TracerProvider | None:
    """A tracer provider exporting to every destination the environment (and `span_store`)
    names, or None when there is none (or `OTEL_SDK_DISABLED=true`): tracing stays off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = exporters_from_env()
    store = SpanStoreSettings.from_env(span_store)
    if store is not None:
        exporters.append(
            SqliteSpanExporter(store.path, service_name, store.max_bytes, store.max_age_s)
        )
    if not exporters:
        return None
    provider = Provider(
        resource=resource_for(service_name),
        sampler=sampler_from_env(),
        span_limits=SpanLimits(max_links=links_per_span()),
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Provider(TracerProvider):
    """The SDK's provider, with its span processors where `span_sink()` hands them out."""

    def __init__(self, resource: Resource, sampler: sampling.Sampler, span_limits: SpanLimits):
        self.processors = SynchronousMultiSpanProcessor()
        super().__init__(
            sampler=sampler,
            resource=resource,
            active_span_processor=self.processors,
            span_limits=span_limits,
        )


def configure(service_name: str, span_store: Path | None = None) -> TracerProvider | None:
    """Install this process's tracer provider (once; later calls return the first one).
    The provider flushes its spans at exit; the caller may `shutdown()` it sooner."""
    global _provider, _tracer, _sink
    if _provider is None:
        provider = _provider = build_provider(service_name, span_store)
        if provider is not None:
            trace.set_tracer_provider(provider)
            _tracer = provider.get_tracer(TRACER_NAME)
            _sink = sink_for(provider)
    return _provider


def sink_for(provider: TracerProvider) -> SpanSink | None:
    """Where `provider` takes finished batch spans, if it samples by links (FollowLinks)."""
    if isinstance(provider, Provider) and isinstance(provider.sampler, FollowLinks):
        return SpanSink(provider.processors, provider.resource, InstrumentationScope(TRACER_NAME))
    return None


def span_sink() -> SpanSink | None:
    """Where a span linked to a sampled context may go straight as a finished span
    (broker/recorded_span.py): only under parent-based sampling, which samples every such
    span; None otherwise, and with tracing off."""
    return _sink


def tracing_enabled() -> bool:
    """Whether spans go anywhere: the data path looks for trace contexts only then."""
    return _provider is not None


def tracer() -> trace.Tracer:
    """This process's tracer, made once: get_tracer() costs 7 µs a call, a span per batch."""
    return _tracer
