"""Trace contexts in the records of confluent-kafka clients (the demo's, the drills', tests').

Producing goes through OpenTelemetry's maintained instrumentation for confluent-kafka
(`opentelemetry-instrumentation-confluent-kafka`), as an application's would: it opens a
PRODUCER span around each `produce()` and injects its context into the record's
`traceparent` header. Two things are added here, and why:

- its span follows the messaging conventions of before 1.24 (name `<topic> send`,
  `messaging.destination`, `messaging.operation=publish`) and carries no record key; the
  producer below renames it `send <topic>` and adds the current attributes
  (`messaging.operation.type`, `messaging.destination.name`, `messaging.kafka.message.key`)
  and the region while that span is current, so the dashboard finds a record by its key;
- its consumer side starts a new trace for every record (a `recv` root whose
  `<topic> process` child only links to the producer's context), so a consumer in the other
  region would not continue the producer's trace. `process_span` is a `process <topic>`
  CONSUMER span whose parent is the context in the record: the trace goes on, from the
  producer in one region to the consumer in the other.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from confluent_kafka import Message, Producer
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor
from opentelemetry.instrumentation.confluent_kafka.utils import KafkaContextGetter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from broker.messaging_spans import (
    CONSUMER_GROUP,
    MESSAGE_KEY,
    OFFSET,
    SERVER_ADDRESS,
    SERVER_PORT,
    messaging_attributes,
)
from broker.telemetry import REGION_ATTRIBUTE

_HEADERS = KafkaContextGetter()
TRACER_NAME = "regionlink.clients"


class _CurrentConventions(Producer):
    """The instrumentation wraps this producer: its `produce` runs inside the
    instrumentation's send span and brings that span to the current conventions."""

    def __init__(self, config: dict[str, Any], region: str) -> None:
        super().__init__(config)
        self.config = config  # the instrumentation reads bootstrap.servers from it
        self.region = region

    def produce(  # forwards whatever the caller passed, as given
        self, topic: str, value: str | bytes | None = None, *args: Any, **kwargs: Any
    ) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            key = kwargs.get("key", args[0] if args else None)
            attributes = messaging_attributes("send", topic, kwargs.get("partition"))
            attributes[REGION_ATTRIBUTE] = self.region
            if key is not None:
                attributes[MESSAGE_KEY] = _text(key)
            span.update_name(f"send {topic}")
            span.set_attributes(attributes)
        super().produce(topic, value, *args, **kwargs)


class TracedProducer(Protocol):
    """The instrumentation's producer proxy: what it forwards to the wrapped producer. It
    has no `len()` (it answers 0): ask `original_producer()` for the queue length."""

    def produce(self, topic: str, value: str | bytes | None = None, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = -1) -> int: ...
    def flush(self, timeout: float = -1) -> int: ...
    def purge(self, in_queue: bool = True, in_flight: bool = True) -> None: ...
    def original_producer(self) -> Producer: ...


def traced_producer(config: dict[str, Any], region: str) -> TracedProducer:
    """A producer whose records carry their send span's context."""
    return ConfluentKafkaInstrumentor.instrument_producer(_CurrentConventions(config, region))


def process_span(
    message: Message, group: str, region: str, bootstrap: str
) -> AbstractContextManager[Span]:
    """The `process <topic>` CONSUMER span around handling one record, a child of the
    context in its `traceparent` header (a new trace if it has none)."""
    topic = message.topic() or ""
    parent = propagate.extract(message.headers() or [], getter=_HEADERS)
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    attributes: dict[str, AttributeValue] = {
        **messaging_attributes("process", topic, message.partition() or 0),
        OFFSET: message.offset() or 0,
        CONSUMER_GROUP: group,
        SERVER_ADDRESS: host,
        REGION_ATTRIBUTE: region,
    }
    if port.isdigit():
        attributes[SERVER_PORT] = int(port)
    key = message.key()
    if key is not None:
        attributes[MESSAGE_KEY] = _text(key)
    return trace.get_tracer(TRACER_NAME).start_as_current_span(
        f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )


def _text(key: str | bytes) -> str:
    return key if isinstance(key, str) else key.decode("utf-8", "replace")
