"""Spans for batches of records, in the OpenTelemetry messaging conventions, linked to the
trace contexts the records carry.

A record's W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`) is the thread of its
trace from the producing app to the consuming one. The broker (Produce, LinkAppend) and the
mirror handle whole batches that hold records of many traces, so their spans link to those
contexts rather than pick one as parent, as the conventions advise for batches; with
`telemetry.FollowLinks` such a span is sampled when a record it carries was.

Finding the contexts must stay cheap, since it runs on every batch while tracing is on: the
header is looked for as a record encodes it (key length 11 and value length 55 as zigzag
varints, then the header) in each batch's records section, decompressed when the batch is,
instead of decoding every record into objects (7 µs a record). The search is in C
(`broker/_tracescan.c`) when the install built it: it walks the records by their lengths and
reads only each record's first bytes and headers, never its value — a megabyte fresh from
the socket is not in cache, and reading all of it (a memchr scan, before) cost the mirror
100-150 µs per MB. Without it, a regular expression over the bytes (0.38 µs per 1 KiB
record, 0.08 per 128-byte one: the engine steps byte by byte), which would also take a
record value holding those exact bytes for a header: one stray link, telemetry only. Only
sampled contexts are linked: an unsampled one has no spans anywhere to join, and both
searches skip it by its flags digit without parsing it. The records themselves are never
changed: the header passes the broker and the mirror byte for byte.

Each batch is searched once per region hop, not at every process it passes: the mirror sends
the contexts it found to the target broker with the records (LinkAppend v1, a list of ids),
and the target's span links to those (`contexts=`) instead of searching the records again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Protocol

from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from broker import telemetry
from broker.protocol.batch import HEADER_BYTES, InvalidBatch, iter_headers
from broker.protocol.records import decompress
from broker.recorded_span import RecordedSpan

MAX_LINKS_PER_SPAN = telemetry.links_per_span()

SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OFFSET = "messaging.kafka.offset"
MESSAGE_KEY = "messaging.kafka.message.key"
CONSUMER_GROUP = "messaging.consumer.group.name"
BATCH_COUNT = "messaging.batch.message_count"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# A record header as encoded: key length 11 and value length 55 (zigzag varints), the key,
# then a version 00 value, 00-<trace id>-<span id>-<flags>, whose last digit is odd when
# sampled. Only that digit is looked at in the search (".{51}" is a fast skip for the regex
# engine), so an unsampled header costs next to nothing; the ids of a match are checked after.
_HEADER_START = b"\x16traceparent\x6e00-"
_SAMPLED_HEADER = re.compile(re.escape(_HEADER_START) + rb".{51}[13579bdf]", re.DOTALL)
_IDS = re.compile(rb"([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_HEADER_BYTES = len(_HEADER_START) + 52  # the ids, their dashes and the flags after it
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NO_SPAN: AbstractContextManager[None] = nullcontext()
"""What a span helper returns with tracing off: shared, so nearly free."""


def messaging_attributes(
    operation: str, topic: str, partition: int | None = None
) -> dict[str, AttributeValue]:
    """The attributes every Kafka span names: system, operation, destination (and its
    partition, when known)."""
    attributes: dict[str, AttributeValue] = {
        SYSTEM: "kafka",
        OPERATION_NAME: operation,
        OPERATION_TYPE: operation,
        DESTINATION: topic,
    }
    if partition is not None:
        attributes[PARTITION] = str(partition)
    return attributes


def sampled_contexts(
    buffers: Iterable[bytes | bytearray | memoryview], limit: int = MAX_LINKS_PER_SPAN
) -> list[SpanContext]:
    """The distinct sampled trace contexts in the `traceparent` headers of the records of
    every batch in `buffers`, at most `limit`; a malformed batch ends its buffer's search."""
    seen: set[tuple[int, int]] = set()
    contexts: list[SpanContext] = []
    for buffer in buffers:
        for section in _batch_records(buffer):
            for start in _sampled_headers(section):
                ids_start = start + len(_HEADER_START)
                match = _IDS.match(section, ids_start, start + _HEADER_BYTES)
                ids = (int(match[1], 16), int(match[2], 16)) if match else (0, 0)
                if ids in seen or not all(ids):
                    continue
                seen.add(ids)
                contexts.append(SpanContext(*ids, is_remote=True, trace_flags=_SAMPLED))
                if len(contexts) == limit:
                    return contexts
    return contexts


def _regex_sampled_headers(section: bytes | bytearray | memoryview) -> list[int]:
    """Where the sampled `traceparent` headers in `section` start (what the C search gives)."""
    return [header.start() for header in _SAMPLED_HEADER.finditer(section)]


try:
    from broker._tracescan import sampled_record_headers as _sampled_headers
except ImportError:  # built by the install (pyproject's ext-modules); optional
    _sampled_headers = _regex_sampled_headers
NATIVE_SEARCH = _sampled_headers is not _regex_sampled_headers


def _batch_records(
    buffer: bytes | bytearray | memoryview,
) -> Iterator[bytes | bytearray | memoryview]:
    """Each data batch's records section (decompressed when the batch is), up to a
    malformed batch: what `_sampled_headers` searches."""
    view = memoryview(buffer)
    with suppress(InvalidBatch):
        for header in iter_headers(buffer):
            if header.is_control:
                continue
            section = view[header.position + HEADER_BYTES : header.position + header.size_bytes]
            yield decompress(header.compression, section) if header.compression else section


def context_ids(contexts: Iterable[SpanContext]) -> tuple[tuple[int, int], ...]:
    """(trace id, span id) of each context: what a LinkAppend carries to the target."""
    return tuple((context.trace_id, context.span_id) for context in contexts)


def remote_contexts(
    ids: Iterable[tuple[int, int]], limit: int = MAX_LINKS_PER_SPAN
) -> list[SpanContext]:
    """The sampled remote contexts of (trace id, span id) pairs a sender found in its records
    (invalid ids left out), at most `limit`."""
    contexts = []
    for trace_id, span_id in ids:
        if trace_id and span_id:
            contexts.append(SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED))
            if len(contexts) == limit:
                break
    return contexts


class BatchSpan(Protocol):
    """What a batch span's caller may set: an SDK span or a RecordedSpan."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...
    def set_status(self, status: StatusCode, description: str | None = None) -> None: ...


def batch_span(
    name: str,
    kind: SpanKind,
    attributes: dict[str, AttributeValue],
    buffers: Iterable[bytes | bytearray | memoryview],
    contexts: Sequence[SpanContext] | None = None,
) -> AbstractContextManager[BatchSpan | None]:
    """The span around handling the batches in `buffers`, linked to their records' sampled
    trace contexts — `contexts` when the caller has them already, else found in the
    batches; with tracing off a shared null context that yields None.

    Linked to a sampled context under parent-based sampling, it is sampled for sure, and is
    recorded without the SDK's per-span machinery (broker/recorded_span.py); otherwise the
    SDK's sampler decides, and its span is the current one."""
    if not telemetry.tracing_enabled():
        return NO_SPAN
    if contexts is None:
        contexts = sampled_contexts(buffers)
    links = [Link(context) for context in contexts]
    sink = telemetry.span_sink()
    if sink is not None and links:
        return RecordedSpan(sink, name, kind, attributes, links)
    return telemetry.tracer().start_as_current_span(
        name, kind=kind, attributes=attributes, links=links
    )
