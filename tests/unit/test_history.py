"""The history file: what clients append comes back in one order, bounded, from many threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chaos.history import HistoryWriter, read_history
from chaos.model import EventKind, PartitionContents, SendStatus, StoredRecord


def test_every_kind_of_record_round_trips_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    clock = iter(range(100, 200))
    with HistoryWriter(path, "run1", clock_ms=lambda: next(clock)) as history:
        history.send("p0", "east", "orders", "k", "v1")
        history.send("p0", "east", "orders", None, "v2")
        history.acked("v1", 0, 7)
        history.failed("v2", SendStatus.UNKNOWN, "timed out", None)
        history.assignment("c1", "g", "east", "orders", 0, True)
        history.poll("c1", "g", "east", "orders", 0, 7, "k", "v1")
        history.commit("c1", "g", "east", "orders", 0, 8)
        history.event(EventKind.FAULT_INJECTED, {"fault": "latency", "ms": 50})
        history.contents(
            PartitionContents("east", "orders", 0, 0, 8, (StoredRecord(7, "k", "v1"),))
        )
    assert history.run_id == "run1"
    read = read_history(path)
    assert [(s.value, s.key, s.sent_ms) for s in read.sends] == [
        ("v1", "k", 100),
        ("v2", None, 101),
    ]
    ok, unknown = read.outcomes
    assert (ok.status, ok.partition, ok.offset, ok.seq) == (SendStatus.OK, 0, 7, 3)
    assert (unknown.status, unknown.offset, unknown.error) == (
        SendStatus.UNKNOWN,
        None,
        "timed out",
    )
    assert read.assignments[0].assigned and read.assignments[0].seq == 5
    assert (read.polls[0].group, read.polls[0].offset, read.polls[0].value) == ("g", 7, "v1")
    assert (read.commits[0].offset, read.commits[0].error) == (8, "")
    assert read.events[0].kind is EventKind.FAULT_INJECTED
    assert read.events[0].detail == {"fault": "latency", "ms": 50}
    (contents,) = read.contents
    assert contents.end_offset == 8 and contents.records == (StoredRecord(7, "k", "v1"),)
    assert not read.truncated


def test_a_run_never_appends_to_an_older_file(tmp_path: Path) -> None:
    HistoryWriter(tmp_path / "run.db").close()
    with pytest.raises(FileExistsError):
        HistoryWriter(tmp_path / "run.db")


def test_rows_past_the_bound_are_dropped_and_the_history_marked_truncated(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "run.db", max_rows=3) as history:
        for i in range(5):
            history.send("p", "east", "t", None, f"v{i}")
    read = read_history(tmp_path / "run.db")
    assert [s.value for s in read.sends] == ["v0", "v1", "v2"]
    assert read.truncated


def test_appends_from_many_threads_are_all_kept_and_numbered_once(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "run.db", flush_interval_s=0.01) as history:

        def produce(thread: int) -> None:
            for i in range(2_000):
                history.send(f"p{thread}", "east", "t", None, f"{thread}:{i}")

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    sends = read_history(tmp_path / "run.db").sends
    assert sorted(s.seq for s in sends) == list(range(1, 8_001))
    for thread in range(4):  # each client's own order is kept
        mine = [s.value for s in sends if s.producer == f"p{thread}"]
        assert mine == [f"{thread}:{i}" for i in range(2_000)]
