"""A trace laid out as a waterfall: every hop of a record, across regions, in time order.

A record's trace crosses processes that do not parent each other's spans: the producer's span
is the trace's own, while the brokers' append spans and the mirror's copy spans belong to
their batches' traces and *link* to the record's context (the messaging conventions). The
span store returns both kinds; here they are ordered by start, each row placed on the trace's
time axis, and each hop's delay measured from the hop before it — from its start (how long
the record took to get here) and from its end (a gap, or negative while it still ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.spanstore import StoredSpan

MIN_BAR_PCT = 0.4  # a span too short to see still gets a visible bar
SHOWN_ATTRIBUTES = {  # the messaging conventions' attributes worth a glance, by short name
    "messaging.destination.name": "topic",
    "messaging.destination.partition.id": "partition",
    "messaging.kafka.offset": "offset",
    "messaging.kafka.message.key": "key",
    "messaging.batch.message_count": "records",
}


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def layout(trace_id: str, spans: Sequence[StoredSpan]) -> dict[str, Any]:
    """{"trace_id", "start_ns", "duration_ms", "regions" (in order of first appearance),
    "rows": [...]}; each row is the span's JSON plus offset_ms, duration_ms, left_pct,
    width_pct, hop_delay_ms and gap_ms (None for the first), own (whether the span is the
    trace's own rather than linking in) and shown (attributes worth a column)."""
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.end_ns))
    if not ordered:
        return {"trace_id": trace_id, "start_ns": None, "duration_ms": 0, "regions": [], "rows": []}
    start = ordered[0].start_ns
    total = max(max(s.end_ns for s in ordered) - start, 1)
    rows = []
    previous: StoredSpan | None = None
    for span in ordered:
        row = span.to_json()
        row.update(
            offset_ms=_ms(span.start_ns - start),
            duration_ms=_ms(span.duration_ns),
            left_pct=round((span.start_ns - start) / total * 100, 3),
            width_pct=round(max(span.duration_ns / total * 100, MIN_BAR_PCT), 3),
            hop_delay_ms=None if previous is None else _ms(span.start_ns - previous.start_ns),
            gap_ms=None if previous is None else _ms(span.start_ns - previous.end_ns),
            own=span.trace_id == trace_id,
            shown={
                label: span.attributes[name]
                for name, label in SHOWN_ATTRIBUTES.items()
                if name in span.attributes
            },
        )
        for link in row["links"]:
            link["here"] = link["trace_id"] == trace_id
        rows.append(row)
        previous = span
    regions = list(dict.fromkeys(s.region for s in ordered if s.region))
    return {
        "trace_id": trace_id,
        "start_ns": start,
        "duration_ms": _ms(total),
        "regions": regions,
        "rows": rows,
    }
