"""Replication latency read from the span store: from the source broker accepting a record
(the end of its Produce span) to the target broker appending it (the end of its LinkAppend,
or Produce, span), for every sampled record — both spans link to the record's trace.

A broker is told apart by its `server.port` (with mirror topics both name the same topic).
Both brokers run on one machine here, so their clocks are the same clock.
"""

from __future__ import annotations

from pathlib import Path

from broker.messaging_spans import SERVER_PORT
from broker.spanstore import SpanStore

Hop = tuple[str, int]  # (topic, broker port)


def _ends_by_trace(store: SpanStore, hop: Hop) -> dict[str, int]:
    """The end of the first span of `hop` linking to each trace id."""
    topic, port = hop
    ends: dict[str, int] = {}
    for span in store.spans(topic=topic, kind="SERVER"):
        if span.attributes.get(SERVER_PORT) == port:
            for link in span.links:
                ends.setdefault(link.trace_id, span.end_ns)
    return ends


def replication_latencies_s(store: Path, source: Hop, target: Hop) -> list[float]:
    """Accepted in the source -> appended in the target, in seconds, per sampled record."""
    spans = SpanStore(store)
    accepted, appended = _ends_by_trace(spans, source), _ends_by_trace(spans, target)
    return [(appended[t] - accepted[t]) / 1e9 for t in accepted if t in appended]
