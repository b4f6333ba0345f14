"""The broker's span around appending a partition's batches, for Produce and LinkAppend alike.

Named `send <topic>` with kind SERVER: the server side of a client's (or a mirror's) send,
one span per partition of a request, since each partition's batches go to their own log at
their own offsets (`messaging.kafka.offset` is the first appended offset). It links to the
sampled trace contexts in the records (broker/messaging_spans.py): for a LinkAppend that
carries them (v1), the contexts the mirror found, so the records are not searched again.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind

from broker import links, telemetry
from broker.messaging_spans import (
    BATCH_COUNT,
    NO_SPAN,
    SERVER_ADDRESS,
    SERVER_PORT,
    BatchSpan,
    batch_span,
    messaging_attributes,
    remote_contexts,
)
from broker.protocol.batch import InvalidBatch, iter_headers
from broker.protocol.versions import ApiKey

if TYPE_CHECKING:
    from broker.broker import Broker

REQUEST = "regionlink.request"  # PRODUCE or LINK_APPEND
LINK_SOURCE_REGION = "regionlink.link.source_region"  # LinkAppend: the region it mirrors


def append_span(
    broker: Broker,
    api: ApiKey,
    topic: str,
    partition: int,
    batches: bytes | bytearray | memoryview,
    source_region: str | None = None,
    trace_contexts: Iterable[tuple[int, int]] | None = None,
) -> AbstractContextManager[BatchSpan | None]:
    """The span around appending `batches` to `topic`[`partition`]; None with tracing off,
    and for internal topics, whose bookkeeping records no application's trace passes."""
    if not telemetry.tracing_enabled() or links.is_internal(topic):
        return NO_SPAN
    host, port = broker.config.advertised_host_port(broker.port)
    attributes = messaging_attributes("send", topic, partition)
    attributes.update({SERVER_ADDRESS: host, SERVER_PORT: port, REQUEST: api.name})
    if source_region is not None:
        attributes[LINK_SOURCE_REGION] = source_region
    with suppress(InvalidBatch):  # the append refuses it, and the span records why
        attributes[BATCH_COUNT] = sum(header.records_count for header in iter_headers(batches))
    contexts = None if trace_contexts is None else remote_contexts(trace_contexts)
    return batch_span(f"send {topic}", SpanKind.SERVER, attributes, (batches,), contexts)
