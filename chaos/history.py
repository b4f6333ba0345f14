"""A run's history in one sqlite file (sqlite-utils): appended by clients, read by the verifier.

Appends come from client callbacks (librdkafka delivery reports, consumer loops), so they must
cost little: an append takes a lock, numbers the row (`seq`, the run's one order) and queues a
tuple; a background thread writes the queue in batches every `flush_interval_s`, so a run that
is killed still leaves all but its last fraction of a second on disk. The file is append-only
and bounded: past `max_rows` rows are dropped and the history marked truncated, which the
verifier reports rather than judging an incomplete record. WAL mode lets a report or a live
view read while the run writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from chaos.model import (
    Assignment,
    Commit,
    Event,
    EventKind,
    History,
    Outcome,
    PartitionContents,
    Poll,
    Send,
    SendStatus,
    StoredRecord,
)

DEFAULT_MAX_ROWS = 5_000_000
FLUSH_INTERVAL_S = 0.2

_TABLES: dict[str, dict[str, type]] = {
    "sends": {
        "seq": int,
        "producer": str,
        "region": str,
        "topic": str,
        "key": str,
        "value": str,
        "sent_ms": int,
    },
    "outcomes": {
        "seq": int,
        "value": str,
        "status": str,
        "partition": int,
        "offset": int,
        "time_ms": int,
        "error": str,
    },
    "polls": {
        "seq": int,
        "consumer": str,
        "group_id": str,
        "region": str,
        "topic": str,
        "partition": int,
        "offset": int,
        "key": str,
        "value": str,
        "time_ms": int,
    },
    "commits": {
        "seq": int,
        "consumer": str,
        "group_id": str,
        "region": str,
        "topic": str,
        "partition": int,
        "offset": int,
        "time_ms": int,
        "error": str,
    },
    "assignments": {
        "seq": int,
        "consumer": str,
        "group_id": str,
        "region": str,
        "topic": str,
        "partition": int,
        "assigned": int,
        "time_ms": int,
    },
    "events": {"seq": int, "kind": str, "time_ms": int, "detail": str},
}
_CONTENTS = {
    "region": str,
    "topic": str,
    "partition": int,
    "offset": int,
    "key": str,
    "value": str,
}
_PARTITIONS = {
    "region": str,
    "topic": str,
    "partition": int,
    "start_offset": int,
    "end_offset": int,
}


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _create(db: sqlite_utils.Database, run_id: str, max_rows: int) -> None:
    for name, columns in _TABLES.items():
        db.table(name).create(columns, pk="seq")
    db.table("contents").create(_CONTENTS)
    db.table("partitions").create(_PARTITIONS, pk=("region", "topic", "partition"))
    db.table("meta").insert_all(
        [
            {"key": "run_id", "value": run_id},
            {"key": "created_ms", "value": str(wall_ms())},
            {"key": "max_rows", "value": str(max_rows)},
            {"key": "truncated", "value": "0"},
        ],
        pk="key",
    )
    db.enable_wal()


class HistoryWriter:
    """`with HistoryWriter(path) as history: history.send(...)`; one new file per run."""

    def __init__(
        self,
        path: Path,
        run_id: str | None = None,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        if path.exists():
            raise FileExistsError(f"{path}: a history is one run; pick a new file")
        self.path = path
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self._clock_ms = clock_ms
        self._max_rows = max_rows
        self._db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))
        _create(self._db, self.run_id, max_rows)
        self._lock = threading.Lock()  # numbering and the queue
        self._write_lock = threading.Lock()  # the connection
        self._queue: list[tuple[str, tuple[Any, ...]]] = []
        self._seq = 0
        self.truncated = False
        self._truncation_saved = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_every, args=(flush_interval_s,), name="history", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, producer: str, region: str, topic: str, key: str | None, value: str) -> None:
        self._append("sends", producer, region, topic, key, value, self._clock_ms())

    def acked(self, value: str, partition: int, offset: int) -> None:
        self._append(
            "outcomes", value, SendStatus.OK.value, partition, offset, self._clock_ms(), ""
        )

    def failed(self, value: str, status: SendStatus, error: str, partition: int | None) -> None:
        assert status is not SendStatus.OK
        self._append("outcomes", value, status.value, partition, None, self._clock_ms(), error)

    def poll(
        self,
        consumer: str,
        group: str,
        region: str,
        topic: str,
        partition: int,
        offset: int,
        key: str | None,
        value: str,
    ) -> None:
        self._append(
            "polls", consumer, group, region, topic, partition, offset, key, value, self._clock_ms()
        )

    def commit(
        self,
        consumer: str,
        group: str,
        region: str,
        topic: str,
        partition: int,
        offset: int,
        error: str = "",
    ) -> None:
        self._append(
            "commits", consumer, group, region, topic, partition, offset, self._clock_ms(), error
        )

    def assignment(
        self, consumer: str, group: str, region: str, topic: str, partition: int, assigned: bool
    ) -> None:
        self._append(
            "assignments",
            consumer,
            group,
            region,
            topic,
            partition,
            int(assigned),
            self._clock_ms(),
        )

    def event(self, kind: EventKind, detail: Mapping[str, Any]) -> None:
        self._append("events", kind.value, self._clock_ms(), json.dumps(detail, default=str))

    def contents(self, contents: PartitionContents) -> None:
        """A partition's final log in one region (the runner reads it after the workload)."""
        rows = (
            {
                "region": contents.region,
                "topic": contents.topic,
                "partition": contents.partition,
                "offset": r.offset,
                "key": r.key,
                "value": r.value,
            }
            for r in contents.records
        )
        ends = {
            "region": contents.region,
            "topic": contents.topic,
            "partition": contents.partition,
            "start_offset": contents.start_offset,
            "end_offset": contents.end_offset,
        }
        with self._write_lock:
            self._db.table("contents").insert_all(rows, batch_size=10_000)
            self._db.table("partitions").insert(ends)

    def flush(self) -> None:
        with self._lock:
            queued, self._queue = self._queue, []
        by_table: dict[str, list[dict[str, Any]]] = {}
        for table, row in queued:
            by_table.setdefault(table, []).append(dict(zip(_TABLES[table], row, strict=True)))
        with self._write_lock:
            for table, rows in by_table.items():
                self._db.table(table).insert_all(rows, batch_size=10_000)
            if self.truncated and not self._truncation_saved:
                self._db.table("meta").upsert({"key": "truncated", "value": "1"}, pk="key")
                self._truncation_saved = True

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.flush()
        self._db.close()

    def _append(self, table: str, *row: Any) -> None:
        with self._lock:
            if self._seq >= self._max_rows:
                self.truncated = True
                return
            self._seq += 1
            self._queue.append((table, (self._seq, *row)))

    def _flush_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.flush()


def read_history(path: Path) -> History:
    """Everything a run recorded, each table in `seq` order."""
    db = sqlite_utils.Database(path)
    try:
        meta = {row["key"]: row["value"] for row in db.table("meta").rows}
        return History(
            sends=tuple(
                Send(
                    r["seq"],
                    r["producer"],
                    r["region"],
                    r["topic"],
                    r["key"],
                    r["value"],
                    r["sent_ms"],
                )
                for r in _rows(db, "sends")
            ),
            outcomes=tuple(
                Outcome(
                    r["seq"],
                    r["value"],
                    SendStatus(r["status"]),
                    r["partition"],
                    r["offset"],
                    r["time_ms"],
                    r["error"],
                )
                for r in _rows(db, "outcomes")
            ),
            polls=tuple(Poll(*_ordered(r, "polls")) for r in _rows(db, "polls")),
            commits=tuple(Commit(*_ordered(r, "commits")) for r in _rows(db, "commits")),
            assignments=tuple(
                Assignment(
                    r["seq"],
                    r["consumer"],
                    r["group_id"],
                    r["region"],
                    r["topic"],
                    r["partition"],
                    bool(r["assigned"]),
                    r["time_ms"],
                )
                for r in _rows(db, "assignments")
            ),
            events=tuple(
                Event(r["seq"], EventKind(r["kind"]), r["time_ms"], json.loads(r["detail"]))
                for r in _rows(db, "events")
            ),
            contents=_contents(db),
            truncated=meta.get("truncated") == "1",
        )
    finally:
        db.close()


def _rows(db: sqlite_utils.Database, table: str) -> Iterator[dict[str, Any]]:
    return db.table(table).rows_where(order_by="seq")


def _ordered(row: Mapping[str, Any], table: str) -> tuple[Any, ...]:
    return tuple(row[column] for column in _TABLES[table])


def _contents(db: sqlite_utils.Database) -> tuple[PartitionContents, ...]:
    records: dict[tuple[str, str, int], list[StoredRecord]] = {}
    for r in db.table("contents").rows_where(order_by="region, topic, partition, offset"):
        key = (r["region"], r["topic"], r["partition"])
        records.setdefault(key, []).append(StoredRecord(r["offset"], r["key"], r["value"]))
    return tuple(
        PartitionContents(
            p["region"],
            p["topic"],
            p["partition"],
            p["start_offset"],
            p["end_offset"],
            tuple(records.get((p["region"], p["topic"], p["partition"]), ())),
        )
        for p in db.table("partitions").rows_where(order_by="region, topic, partition")
    )
