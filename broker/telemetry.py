"""OpenTelemetry setup shared by broker, mirror and chaos (the lowest layer that needs it).

Tracing is off by default: the API's no-op tracer costs one attribute lookup per
span. `configure(path)` installs an SDK provider that appends spans as JSON lines
to `path`, which the dashboard reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

TRACER_NAME = "regionlink"
_enabled = False


class JsonLinesSpanExporter(SpanExporter):
    """Writes one JSON object per span; simple to tail, grep and load into a dashboard."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(span.to_json(indent=None) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def configure(trace_file: Path | None, service_name: str = "regionlink-broker") -> None:
    global _enabled
    if trace_file is None or _enabled:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(trace_file)))
    trace.set_tracer_provider(provider)
    _enabled = True


def tracing_enabled() -> bool:
    return _enabled


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def read_spans(trace_file: Path) -> list[dict[str, object]]:
    """Load spans written by JsonLinesSpanExporter (for tests and the dashboard)."""
    with open(trace_file) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def span(name: str, attributes: dict[str, str | int]) -> AbstractContextManager[object]:
    """A current span when tracing is on; a shared null context (nearly free) when off."""
    if not _enabled:
        return _NULL
    return tracer().start_as_current_span(name, attributes=attributes)


_NULL: AbstractContextManager[object] = nullcontext()
