"""A batch span built as the finished span the exporters take, for the data path.

A Produce partition, a chunk the mirror copies and a LinkAppend partition each make a span
linked to the sampled records they carry (broker/messaging_spans.py): at 1 % sampling and
1 KiB records that is a recorded span per megabyte at each hop. Through the SDK
(`start_as_current_span`) each cost 60 µs of CPU before its export, measured alone — a
`Span` with its lock, bounded attribute and link containers, a sampler call, the context
made current and restored — and in the tracing bench's live phase the three processes spent
+0.9-1.8 µs per record with spans against +0.0 with the same searches and no spans
(2026-11-30, 500,000 x 1 KiB records, A/B twice; docs/benchmarks.md "Tracing").

The sampling decision for these spans is already made when they start: they have no parent,
and with parent-based sampling (`telemetry.FollowLinks`) a span without a parent that links
to a sampled context is sampled — and they link only sampled contexts. So a `RecordedSpan`
only collects what its caller sets, and at its end hands one `ReadableSpan` (the object the
SDK's own spans become) to the provider's span processors: the same batch processor, the
same exporters, the same rows in the span store and OTLP. It is not made the current span:
nothing on the data path starts a child span inside it.
"""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass
from types import TracebackType

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import AttributeValue

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass(frozen=True)
class SpanSink:
    """Where finished spans go: the provider's processors, with its resource and scope."""

    processor: SpanProcessor
    resource: Resource
    scope: InstrumentationScope


class RecordedSpan:
    """A sampled span with no parent, recorded at its end (a context manager, once)."""

    __slots__ = ("_attributes", "_kind", "_links", "_name", "_sink", "_start_ns", "_status")

    def __init__(
        self,
        sink: SpanSink,
        name: str,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        links: list[Link],
    ) -> None:
        assert links, "only a span linked to a sampled context is sampled without a parent"
        self._sink = sink
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._links = links
        self._status = Status(StatusCode.UNSET)
        self._start_ns = 0

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._attributes[key] = value

    def set_status(self, status: StatusCode, description: str | None = None) -> None:
        self._status = Status(status, description)

    def __enter__(self) -> RecordedSpan:
        assert self._start_ns == 0, "a span is recorded once"
        self._start_ns = time.time_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end_ns = time.time_ns()
        events: tuple[Event, ...] = ()
        if exc is not None:  # as the SDK's span records an exception leaving it
            self._status = Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
            events = (_exception_event(exc, end_ns),)
        context = SpanContext(
            random.getrandbits(128) or 1, random.getrandbits(64) or 1, False, _SAMPLED
        )
        self._sink.processor.on_end(
            ReadableSpan(
                self._name,
                context,
                None,
                self._sink.resource,
                self._attributes,
                events,
                self._links,
                self._kind,
                status=self._status,
                start_time=self._start_ns,
                end_time=end_ns,
                instrumentation_scope=self._sink.scope,
            )
        )


def _exception_event(exc: BaseException, time_ns: int) -> Event:
    attributes: dict[str, AttributeValue] = {
        "exception.type": type(exc).__name__,
        "exception.message": str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc)),
        "exception.escaped": "False",
    }
    return Event("exception", attributes, time_ns)
