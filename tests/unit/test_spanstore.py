"""The built-in span store: what the SDK finishes is found by topic and key, links included."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, format_trace_id

from broker.spanstore import SpanStore, SqliteSpanExporter, connect, prune, size_bytes


def _provider(path: Path, service: str, region: str) -> TracerProvider:
    resource = Resource.create({"service.name": service, "regionlink.region": region})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(SqliteSpanExporter(path, service)))
    return provider


def test_a_record_is_found_by_key_and_its_trace_takes_in_the_spans_that_link_to_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spans.db"
    app = _provider(path, "orders-app", "us-east").get_tracer("t")
    broker = _provider(path, "regionlink-broker", "eu-west").get_tracer("t")
    attributes = {"messaging.destination.name": "orders", "messaging.kafka.message.key": "k7"}
    with app.start_as_current_span(
        "send orders", kind=SpanKind.PRODUCER, attributes=attributes
    ) as sent:
        context = sent.get_span_context()
    with broker.start_as_current_span("append orders", kind=SpanKind.SERVER, links=[Link(context)]):
        time.sleep(0.01)
    store = SpanStore(path)
    (found,) = store.search(topic="orders", key="k7")
    assert found.trace_id == format_trace_id(context.trace_id)
    assert found.span_count == 2 and found.regions == ("eu-west", "us-east")
    assert found.services == ("orders-app", "regionlink-broker")
    assert found.root_name == "send orders" and found.message_key == "k7"
    spans = store.trace(found.trace_id)
    assert [s.name for s in spans] == ["send orders", "append orders"]
    assert spans[1].links[0].trace_id == found.trace_id and spans[1].kind == "SERVER"
    assert store.search(key="nope") == []
    assert store.search(min_duration_ms=5_000) == []
    assert store.search(trace_id=found.trace_id.upper())[0].trace_id == found.trace_id
    assert [s.name for s in store.spans(topic="orders")] == ["send orders"]
    assert store.spans(topic="orders", kind="SERVER") == []


def test_the_store_stays_within_its_age_and_size(tmp_path: Path) -> None:
    path = tmp_path / "spans.db"
    tracer = _provider(path, "svc", "r").get_tracer("t")
    for i in range(3000):  # in a few seconds, so their links share one or two buckets
        with tracer.start_as_current_span(
            "s", attributes={"messaging.kafka.message.key": f"k{i}" * 20}
        ) as span:
            linked = span.get_span_context()
        with tracer.start_as_current_span("copy", links=[Link(linked)] * 3):
            pass
    store = SpanStore(path)
    assert store.count() == 6000
    db = connect(path)
    assert prune(db, max_bytes=400_000, oldest_ns=0) > 0
    assert size_bytes(db) <= 400_000
    left = store.count()
    assert 0 < left < 6000
    links_left = db.execute("SELECT count(*) FROM trace_links").fetchone()[0]
    copies = db.execute("SELECT count(*) FROM spans WHERE name = 'copy'").fetchone()[0]
    assert links_left == 3 * copies, "each copy span kept has its 3 links, no other"
    newest = store.search(topic=None, key="k2999" * 20)[0]
    assert newest.span_count == 2, "the newest kept, with its copy span found by its link"
    assert prune(db, max_bytes=1 << 30, oldest_ns=time.time_ns() + 1) == left
    assert store.count() == 0
    assert db.execute("SELECT count(*) FROM trace_links").fetchone()[0] == 0


def test_a_span_linking_minutes_later_is_found_and_a_bad_id_finds_nothing(tmp_path: Path) -> None:
    """Links are indexed by the linking span's start bucket: a copy made long after the
    record was sent (a mirror catching up) is still found, in a later bucket."""
    path = tmp_path / "spans.db"
    app = _provider(path, "orders-app", "us-east").get_tracer("t")
    mirror = _provider(path, "regionlink-mirror", "eu-west").get_tracer("t")
    sent_ns = time.time_ns() - 600 * 10**9
    with app.start_as_current_span("send orders", start_time=sent_ns) as sent:
        context = sent.get_span_context()
    twin = SpanContext(context.trace_id ^ 1, context.span_id, True, context.trace_flags)
    with mirror.start_as_current_span("process a twin", links=[Link(twin)]):
        pass  # links to a trace with the same high 64 bits: seen by the index, then dropped
    for offset_s in (30, 300, 590):
        with mirror.start_as_current_span(
            f"process orders +{offset_s}s",
            start_time=sent_ns + offset_s * 10**9,
            links=[Link(context)],
        ):
            pass
    trace_id = format_trace_id(context.trace_id)
    names = [span.name for span in SpanStore(path).trace(trace_id)]
    assert names == ["send orders", "process orders +30s", "process orders +300s",
                     "process orders +590s"]  # fmt: skip
    assert SpanStore(path).trace("not-a-trace-id") == []
    assert SpanStore(path).trace("0" * 32) == []


def test_a_store_in_the_layout_before_bucketed_links_opens(tmp_path: Path) -> None:
    path = tmp_path / "spans.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE span_links (linked_trace_id TEXT, linked_span_id TEXT)")
    old.close()
    db = connect(path)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "span_links" not in tables and {"spans", "trace_links"} <= tables
