"""Tracing set up from the standard OTEL_* variables: resource, sampler, exporters, span store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)

from broker.spanstore import SpanStore
from broker.telemetry import (
    FollowLinks,
    TelemetryError,
    build_provider,
    exporters_from_env,
    sampler_from_env,
)

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "REGIONLINK_SPAN_STORE",
    "REGIONLINK_SPAN_STORE_MAX_MB",
    "REGIONLINK_SPAN_STORE_MAX_AGE_H",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_nothing_to_export_to_leaves_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_provider("svc") is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert build_provider("svc") is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert build_provider("svc") is None


def test_the_span_store_gets_spans_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "spans.db"
    monkeypatch.setenv("REGIONLINK_SPAN_STORE", str(store))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "regionlink.region=eu-west,team=ops")
    provider = build_provider("regionlink-broker")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "regionlink-broker"
    many = [Link(_context(sampled=True, trace_id=i + 1)) for i in range(300)]
    with provider.get_tracer("t").start_as_current_span("send orders", links=many):
        pass  # more links than the SDK's default limit of 128 are all kept
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    renamed = build_provider("regionlink-broker")
    assert renamed is not None and renamed.resource.attributes["service.name"] == "billing"
    provider.shutdown()
    renamed.shutdown()
    (span,) = SpanStore(store).trace(SpanStore(store).search()[0].trace_id)
    assert (span.service, span.region, len(span.links)) == ("regionlink-broker", "eu-west", 300)


def _write_spans(count: int, key_bytes: int = 200) -> None:
    provider = build_provider("svc")
    assert provider is not None
    tracer = provider.get_tracer("t")
    for i in range(count):
        with tracer.start_as_current_span(
            "s", attributes={"messaging.kafka.message.key": f"{i}".zfill(key_bytes)}
        ):
            pass
    provider.shutdown()


def test_span_store_bounds_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "spans.db"
    monkeypatch.setenv("REGIONLINK_SPAN_STORE", str(store))
    monkeypatch.setenv("REGIONLINK_SPAN_STORE_MAX_MB", "0.1")
    _write_spans(2000)  # about 1 MB
    assert SpanStore(store).size_bytes() <= 0.1 * 2**20
    assert 0 < SpanStore(store).count() < 2000
    monkeypatch.setenv("REGIONLINK_SPAN_STORE_MAX_AGE_H", str(0.5 / 3600))
    time.sleep(0.6)
    _write_spans(10)  # a new exporter prunes at its first export: the older spans are gone
    assert SpanStore(store).count() == 10
    monkeypatch.setenv("REGIONLINK_SPAN_STORE_MAX_MB", "-1")
    with pytest.raises(TelemetryError, match="REGIONLINK_SPAN_STORE_MAX_MB must be > 0"):
        build_provider("svc")


def _context(sampled: bool, trace_id: int = 0xA1) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(trace_id, 0xB2, is_remote=True, trace_flags=flags)


def test_the_sampler_is_the_sdks_for_the_environment_and_follows_sampled_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    sampler = sampler_from_env()
    assert isinstance(sampler, FollowLinks)
    assert "TraceIdRatioBased{0.25}" in sampler.get_description()
    roots = sum(sampler.should_sample(None, trace_id, "s").decision.is_sampled() for trace_id in
                range(1, 2**64, 2**64 // 4000))  # fmt: skip
    assert 800 < roots < 1200  # a quarter of the trace ids
    unsampled_trace = 2**64 - 1  # above the ratio's bound: never sampled as a root
    assert not sampler.should_sample(None, unsampled_trace, "s").decision.is_sampled()
    linked = [Link(_context(sampled=False)), Link(_context(sampled=True))]
    assert sampler.should_sample(None, unsampled_trace, "s", links=linked).decision.is_sampled()
    unsampled_parent = set_span_in_context(NonRecordingSpan(_context(sampled=False)))
    decision = sampler.should_sample(unsampled_parent, unsampled_trace, "s", links=linked)
    assert not decision.decision.is_sampled()  # a parent's decision stands
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    assert not isinstance(sampler_from_env(), FollowLinks)  # not parent-based: independent


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    received: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    finally:
        server.shutdown()
        thread.join(5)


def test_an_otlp_endpoint_gets_the_spans_over_http(
    collector: tuple[str, list[ExportTraceServiceRequest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "regionlink.region=us-east")
    provider = build_provider("regionlink-mirror")
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("send orders"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    (request,) = received
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "regionlink-mirror"
    assert resource["regionlink.region"] == "us-east"
    assert [s.name for s in resource_spans.scope_spans[0].spans] == ["send orders"]


def test_exporters_follow_otel_traces_exporter_and_the_protocol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces")
    (http,) = exporters_from_env()
    assert isinstance(http, OTLPSpanExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    (grpc,) = exporters_from_env()
    assert isinstance(grpc, GrpcSpanExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(TelemetryError, match="'http/json' is not supported"):
        exporters_from_env()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(TelemetryError, match="unknown exporter 'zipkin'"):
        exporters_from_env()
