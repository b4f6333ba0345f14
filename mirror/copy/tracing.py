"""The mirror's span around writing one fetched chunk of a source partition to its target.

`send <target topic>`, kind CLIENT: in the current messaging conventions a send span is a
PRODUCER only when its context is the messages' creation context, and the mirror creates
no message — it passes the records on byte for byte, their `traceparent` headers included,
so the consumer in the other region continues the producer's trace. The span links to the
sampled contexts in the records (broker/messaging_spans.py) and says where they came from;
a link copier sends the same contexts to the target broker with the records (LinkAppend v1),
so the target's span links to them without searching the records again.
With tracing off it is a shared null context, and no batch is looked into.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from opentelemetry.trace import SpanContext, SpanKind

from broker import telemetry
from broker.client.data import TopicPartition
from broker.messaging_spans import (
    BATCH_COUNT,
    NO_SPAN,
    SERVER_ADDRESS,
    SERVER_PORT,
    BatchSpan,
    batch_span,
    messaging_attributes,
)

SOURCE_TOPIC = "regionlink.source.topic"
SOURCE_PARTITION = "regionlink.source.partition"
SOURCE_OFFSET = "regionlink.source.offset"  # of the chunk's first record


def copy_span(
    batches: Sequence[bytes | bytearray | memoryview],
    source: TopicPartition,
    target: TopicPartition,
    first_source_offset: int,
    record_count: int,
    server: tuple[str, int] | None,
    contexts: Sequence[SpanContext] | None = None,
) -> AbstractContextManager[BatchSpan | None]:
    """The current span around writing `batches` to `target` (None when tracing is off),
    linked to `contexts` when given, else to the sampled contexts found in `batches`."""
    if not telemetry.tracing_enabled():
        return NO_SPAN
    attributes = messaging_attributes("send", *target)
    attributes.update(
        {
            BATCH_COUNT: record_count,
            SOURCE_TOPIC: source[0],
            SOURCE_PARTITION: source[1],
            SOURCE_OFFSET: first_source_offset,
        }
    )
    if server is not None:
        attributes[SERVER_ADDRESS], attributes[SERVER_PORT] = server
    return batch_span(f"send {target[0]}", SpanKind.CLIENT, attributes, batches, contexts)
