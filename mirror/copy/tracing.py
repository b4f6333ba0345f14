"""A span per mirrored batch, linked to the W3C trace contexts its records carry.

The records themselves pass through untouched (their `traceparent` headers included);
only when tracing is on do we decode a batch to read those headers, so the data path
pays nothing otherwise.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from broker import telemetry
from broker.protocol.batch import InvalidBatch, read_header
from broker.protocol.records import decode_batch_records

MAX_LINKS_PER_BATCH = 32
_PROPAGATOR = TraceContextTextMapPropagator()


def trace_links(batch: bytes | bytearray) -> list[Link]:
    """Links to the distinct trace contexts in the batch's `traceparent` headers."""
    try:
        records = decode_batch_records(batch, read_header(batch))
    except (InvalidBatch, ValueError):
        return []
    seen: set[tuple[int, int]] = set()
    links: list[Link] = []
    for record in records:
        for name, value in record.headers:
            if name != "traceparent" or value is None:
                continue
            context = trace.get_current_span(
                _PROPAGATOR.extract({"traceparent": value.decode("ascii", "replace")})
            ).get_span_context()
            key = (context.trace_id, context.span_id)
            if context.is_valid and key not in seen:
                seen.add(key)
                links.append(Link(context))
                if len(links) == MAX_LINKS_PER_BATCH:
                    return links
    return links


def mirror_span(
    batch: bytes | bytearray,
    source: tuple[str, int],
    target: tuple[str, int],
    first_offset: int,
    count: int,
) -> AbstractContextManager[object]:
    """The span around producing one batch to the target (a no-op when tracing is off)."""
    if not telemetry.tracing_enabled():
        return nullcontext()
    return telemetry.tracer().start_as_current_span(
        "mirror batch",
        kind=SpanKind.PRODUCER,
        links=trace_links(batch),
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": target[0],
            "messaging.destination.partition.id": str(target[1]),
            "messaging.batch.message_count": count,
            "regionlink.source.topic": source[0],
            "regionlink.source.partition": source[1],
            "regionlink.source.offset": first_offset,
        },
    )
