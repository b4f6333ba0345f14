"""The built-in span store: finished spans of every process of a topology in one sqlite file.

`regionlink up` points every broker, controller and worker (and the demo's and drills'
clients) at `<state dir>/spans.db`, so the dashboard can search and draw traces with
nothing else installed; OTLP export to Jaeger or Tempo is configured beside it, not instead.
Several processes append at once: sqlite in WAL mode with a busy timeout serialises them,
and each exporter writes a whole batch in one transaction.

The store stays bounded by age and size: after each export that leaves the store larger
than `max_bytes`, the exporter drops the oldest tenth of the spans until it is not (and spans
older than `max_age_s`); it drops spans past their age every `PRUNE_EVERY_EXPORTS` exports
too. An exporter runs in the SDK's batch processor thread, one export at a time.

Why not the JSON-lines files: a dashboard asks "the traces of key k on topic t in the last
hour, longer than 500 ms", which wants indexes, and many writers want transactions.

Spans link rather than parent across batches (the messaging conventions): the broker's
produce span and the mirror's copy span carry links to the contexts in the records. `trace()`
therefore returns a trace's own spans and every span that links into it, found through
`trace_links`: a row per link, indexed by (bucket, linked) — the linking span's start in
10-second buckets, then the linked trace id's high 64 bits. The bucket first keeps an
export's index inserts together: keyed by the linked trace id alone (random), every link
dirtied its own index page, written again to the WAL at each commit, and a span with 8 links
cost 65 µs to store at 20,000 spans and 125 µs at 100,000; bucketed, 43-54 µs at 100,000
(measured here, 2026-11-30). A lookup seeks each bucket from the trace's first span on (a
day is 8,640 seeks), and the ids are checked exactly against the spans' own links.
(The layout before it, `span_links`, is dropped when a store is opened.)
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

SPANS_FILE = "spans.db"
DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_MAX_AGE_S = 24 * 3600.0
PRUNE_EVERY_EXPORTS = 50
BUSY_TIMEOUT_S = 10.0
_TRACE_ID = re.compile("[0-9a-f]{32}")
LINK_BUCKET_NS = 10 * 10**9
LINK_SKEW_NS = 60 * 10**9
"""How much earlier than a trace's first stored span a span linking to it may start (clocks
of other machines): where a lookup starts seeking buckets."""
TOPIC_ATTRIBUTE = "messaging.destination.name"
KEY_ATTRIBUTE = "messaging.kafka.message.key"
REGION_ATTRIBUTE = "regionlink.region"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    region TEXT,
    topic TEXT,
    message_key TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    attributes TEXT NOT NULL,
    links TEXT NOT NULL,
    events TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_topic_key ON spans (topic, message_key);
CREATE TABLE IF NOT EXISTS trace_links (
    bucket INTEGER NOT NULL,
    linked INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trace_links_bucket ON trace_links (bucket, linked);
DROP TABLE IF EXISTS span_links;
"""


@dataclass(frozen=True)
class SpanLink:
    trace_id: str
    span_id: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class StoredSpan:
    """One finished span as stored; ids in lowercase hex, times in ns since the epoch."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    service: str
    region: str | None
    start_ns: int
    end_ns: int
    status: str  # UNSET, OK, ERROR
    attributes: Mapping[str, Any]
    links: tuple[SpanLink, ...]
    events: tuple[Mapping[str, Any], ...]

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def to_json(self) -> dict[str, Any]:
        """As JSON would carry it, with the duration added (links and events as lists)."""
        return _json_ready(asdict(self)) | {"duration_ns": self.duration_ns}


@dataclass(frozen=True)
class TraceSummary:
    """A trace as a search lists it: its own spans, and the spans that link into it."""

    trace_id: str
    root_name: str  # the earliest of its own spans
    start_ns: int
    end_ns: int  # of the latest span, linked ones included
    span_count: int
    services: tuple[str, ...]
    regions: tuple[str, ...]
    topic: str | None
    message_key: str | None

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def to_json(self) -> dict[str, Any]:
        return _json_ready(asdict(self)) | {"duration_ns": self.duration_ns}


def _json_ready(value: Any) -> Any:
    """`asdict`'s output with tuples as lists, as `json.loads` would give them back."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the store (created if missing) that waits for other writers.
    `check_same_thread=False` for an exporter: made in one thread, it exports in the batch
    processor's and is closed in whichever thread shuts the provider down."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=check_same_thread
    )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


# --------------------------------------------------------------------------- writing


def span_row(span: ReadableSpan, service: str) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The row of `spans` and the rows of `trace_links` for one finished SDK span.

    Runs in the exporting thread of every traced process, a batch span with a link per
    sampled record it carried: ids are formatted in place and a link without
    attributes is written as text rather than through `json.dumps` (28 -> 17 µs a span with
    8 links, measured here), which gives the same JSON.
    """
    context = span.get_span_context()
    assert context is not None and span.start_time is not None and span.end_time is not None
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    attributes = dict(span.attributes or {})
    linked = [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}", link.attributes)
              for link in span.links]  # fmt: skip
    resource = span.resource.attributes if span.resource is not None else {}
    region = attributes.get(REGION_ATTRIBUTE, resource.get(REGION_ATTRIBUTE))
    row = (
        trace_id,
        span_id,
        f"{span.parent.span_id:016x}" if span.parent is not None else None,
        span.name,
        span.kind.name,
        str(resource.get("service.name", service)),
        None if region is None else str(region),
        _text(attributes.get(TOPIC_ATTRIBUTE)),
        _text(attributes.get(KEY_ATTRIBUTE)),
        span.start_time,
        span.end_time,
        span.status.status_code.name,
        json.dumps(attributes, default=str),
        "[" + ", ".join(_link_json(*link) for link in linked) + "]",
        _events_json(span) if span.events else "[]",
    )
    bucket = span.start_time // LINK_BUCKET_NS
    link_rows = [
        (bucket, link_key(link.context.trace_id), trace_id, span_id) for link in span.links
    ]
    return row, link_rows


def link_key(trace_id: int) -> int:
    """What `trace_links` indexes a linked trace by: its id's high 64 bits, as sqlite's
    signed integer."""
    return (trace_id >> 64) - (1 << 63)


def _link_json(trace_id: str, span_id: str, attributes: Mapping[str, Any] | None) -> str:
    """What json.dumps writes for the link {"trace_id", "span_id", "attributes"}."""
    text = json.dumps(dict(attributes), default=str) if attributes else "{}"
    return f'{{"trace_id": "{trace_id}", "span_id": "{span_id}", "attributes": {text}}}'


def _events_json(span: ReadableSpan) -> str:
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in span.events
    ]
    return json.dumps(events, default=str)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class SqliteSpanExporter(SpanExporter):
    """Appends finished spans to the store, and keeps it within its bounds."""

    def __init__(
        self,
        path: Path,
        service: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.path = path
        self.service = service
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._db = connect(path, check_same_thread=False)
        self._exports = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows, link_rows = [], []
        for span in spans:
            row, links = span_row(span, self.service)
            rows.append(row)
            link_rows.extend(links)
        try:
            write(self._db, rows, link_rows)
            self._exports += 1
            if self._exports % PRUNE_EVERY_EXPORTS == 1 or size_bytes(self._db) > self.max_bytes:
                prune(self._db, self.max_bytes, time.time_ns() - int(self.max_age_s * 1e9))
        except sqlite3.Error:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._db.close()


def write(
    db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], links: Sequence[tuple[Any, ...]]
) -> None:
    with _transaction(db):
        db.executemany(f"INSERT OR REPLACE INTO spans VALUES ({', '.join('?' * 15)})", rows)
        db.executemany("INSERT INTO trace_links VALUES (?, ?, ?, ?)", links)


def prune(db: sqlite3.Connection, max_bytes: int, oldest_ns: int) -> int:
    """Drop spans older than `oldest_ns`, then the oldest tenth while the file is too big;
    the number of spans dropped."""
    dropped = _drop_before(db, oldest_ns)
    while size_bytes(db) > max_bytes:
        count = db.execute("SELECT count(*) FROM spans").fetchone()[0]
        if count == 0:
            break
        cut = db.execute(
            "SELECT start_ns FROM spans ORDER BY start_ns LIMIT 1 OFFSET ?", (max(1, count // 10),)
        ).fetchone()
        dropped += _drop_before(db, cut[0] if cut else time.time_ns())
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
    return dropped


def _drop_before(db: sqlite3.Connection, start_ns: int) -> int:
    """Drop the spans that started before `start_ns` and their links: every link of an
    older bucket, and in `start_ns`'s own bucket those whose span is gone."""
    bucket = start_ns // LINK_BUCKET_NS
    with _transaction(db):
        dropped = db.execute("DELETE FROM spans WHERE start_ns < ?", (start_ns,)).rowcount
        db.execute("DELETE FROM trace_links WHERE bucket < ?", (bucket,))
        db.execute(
            "DELETE FROM trace_links WHERE bucket = ? AND NOT EXISTS (SELECT 1 FROM spans s "
            "WHERE s.trace_id = trace_links.trace_id AND s.span_id = trace_links.span_id)",
            (bucket,),
        )
    return int(dropped)


def size_bytes(db: sqlite3.Connection) -> int:
    """The bytes the store's pages in use take (the bound `max_bytes` is about)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * db.execute("PRAGMA page_size").fetchone()[0])


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK): one writer's batch at a time."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


# --------------------------------------------------------------------------- reading


class SpanStore:
    """Read side, for the dashboard and tests."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        db = connect(self.path)
        db.row_factory = sqlite3.Row
        return db

    def search(
        self,
        *,
        topic: str | None = None,
        key: str | None = None,
        trace_id: str | None = None,
        min_duration_ms: float | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 50,
    ) -> list[TraceSummary]:
        """Traces with a span matching every filter given, newest first."""
        where, args = _filters(topic, key, trace_id, since_ns, until_ns)
        db = self._connect()
        try:
            found = db.execute(
                f"SELECT trace_id, max(start_ns) AS newest FROM spans {where} "
                "GROUP BY trace_id ORDER BY newest DESC LIMIT ?",
                (*args, limit * 4 if min_duration_ms else limit),
            ).fetchall()
            summaries = [self._summary(db, row["trace_id"]) for row in found]
        finally:
            db.close()
        out = [s for s in summaries if s is not None]
        if min_duration_ms is not None:
            out = [s for s in out if s.duration_ns >= min_duration_ms * 1e6]
        return out[:limit]

    def trace(self, trace_id: str) -> list[StoredSpan]:
        """The trace's own spans and every span linking into it, by start time."""
        db = self._connect()
        try:
            return _trace_spans(db, trace_id.lower())
        finally:
            db.close()

    def size_bytes(self) -> int:
        db = self._connect()
        try:
            return size_bytes(db)
        finally:
            db.close()

    def spans(self, *, topic: str, kind: str | None = None) -> list[StoredSpan]:
        """Every stored span about `topic` (of `kind`, if given), by start time: a hop's
        spans across traces, as a benchmark or a per-topic view wants them."""
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT * FROM spans WHERE topic = ? AND (? IS NULL OR kind = ?) ORDER BY start_ns",
                (topic, kind, kind),
            ).fetchall()
        finally:
            db.close()
        return [_stored(row) for row in rows]

    def count(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT count(*) FROM spans").fetchone()[0])
        finally:
            db.close()

    def _summary(self, db: sqlite3.Connection, trace_id: str) -> TraceSummary | None:
        spans = _trace_spans(db, trace_id)
        own = [s for s in spans if s.trace_id == trace_id]
        if not own:
            return None
        first = min(own, key=lambda s: s.start_ns)
        topic = next(
            (s.attributes.get(TOPIC_ATTRIBUTE) for s in own if TOPIC_ATTRIBUTE in s.attributes),
            None,
        )
        key = next(
            (s.attributes.get(KEY_ATTRIBUTE) for s in own if KEY_ATTRIBUTE in s.attributes), None
        )
        return TraceSummary(
            trace_id=trace_id,
            root_name=first.name,
            start_ns=min(s.start_ns for s in spans),
            end_ns=max(s.end_ns for s in spans),
            span_count=len(spans),
            services=tuple(sorted({s.service for s in spans})),
            regions=tuple(sorted({s.region for s in spans if s.region})),
            topic=None if topic is None else str(topic),
            message_key=None if key is None else str(key),
        )


def _filters(
    topic: str | None,
    key: str | None,
    trace_id: str | None,
    since_ns: int | None,
    until_ns: int | None,
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("topic = ?", topic),
        ("message_key = ?", key),
        ("trace_id = ?", trace_id.lower() if trace_id else None),
        ("start_ns >= ?", since_ns),
        ("start_ns <= ?", until_ns),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _trace_spans(db: sqlite3.Connection, trace_id: str) -> list[StoredSpan]:
    db.row_factory = sqlite3.Row
    own = [
        _stored(row) for row in db.execute("SELECT * FROM spans WHERE trace_id = ?", (trace_id,))
    ]
    linking = [span for span in _linking_spans(db, trace_id, own) if span.trace_id != trace_id]
    return sorted(own + linking, key=lambda span: span.start_ns)


def _linking_spans(
    db: sqlite3.Connection, trace_id: str, own: Sequence[StoredSpan]
) -> list[StoredSpan]:
    """The spans with a link into `trace_id`: seeks (bucket, linked) in each bucket from the
    trace's first span (less the skew allowed) or the store's first bucket to its last."""
    if not _TRACE_ID.fullmatch(trace_id):
        return []
    newest = db.execute("SELECT max(bucket) FROM trace_links").fetchone()[0]
    if newest is None:
        return []
    if own:
        first = (min(span.start_ns for span in own) - LINK_SKEW_NS) // LINK_BUCKET_NS
    else:
        first = db.execute("SELECT min(bucket) FROM trace_links").fetchone()[0]
    rows = db.execute(
        "WITH RECURSIVE buckets(b) AS (SELECT ? UNION ALL SELECT b + 1 FROM buckets WHERE b < ?) "
        "SELECT DISTINCT s.* FROM trace_links l JOIN spans s "
        "ON s.trace_id = l.trace_id AND s.span_id = l.span_id "
        "WHERE l.bucket IN buckets AND l.linked = ?",
        (first, newest, link_key(int(trace_id, 16))),
    ).fetchall()
    spans = [_stored(row) for row in rows]
    return [span for span in spans if any(link.trace_id == trace_id for link in span.links)]


def _stored(row: Mapping[str, Any]) -> StoredSpan:
    return StoredSpan(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        kind=row["kind"],
        service=row["service"],
        region=row["region"],
        start_ns=row["start_ns"],
        end_ns=row["end_ns"],
        status=row["status"],
        attributes=json.loads(row["attributes"]),
        links=tuple(SpanLink(**link) for link in json.loads(row["links"])),
        events=tuple(json.loads(row["events"])),
    )
