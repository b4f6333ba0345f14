"""The state directory's database (sqlite via sqlite-utils): what runs, where, and how it went.

The supervisor is the only writer; `regionlink status`, `down`, `lag` and `link` read it
from other processes (WAL mode lets them read while it writes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

DB_NAME = "state.db"


@dataclass(frozen=True)
class ProcessRow:
    name: str  # e.g. "us-east/controller-1", "us-east/broker-1", "us-east->eu-west/worker-1"
    kind: str  # "controller" | "broker" | "worker"
    region: str  # the server's region, or the flow's source for a worker
    flow: str  # "source:target" for workers, "" for servers
    address: str  # controller quorum address, broker bootstrap, or worker control API
    pid: int
    state: str  # starting, running, restarting, stopped, failed
    restarts: int
    last_exit: str
    metrics_url: str = ""  # its Prometheus endpoint, http://HOST:PORT/metrics


class StateDB:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.db = sqlite_utils.Database(state_dir / DB_NAME)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")

    @classmethod
    def exists(cls, state_dir: Path) -> bool:
        return (state_dir / DB_NAME).exists()

    # --- meta ---------------------------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        rows = [{"key": k, "value": json.dumps(v)} for k, v in values.items()]
        self.db["meta"].upsert_all(rows, pk="key")  # type: ignore[union-attr]

    def meta(self) -> dict[str, Any]:
        if "meta" not in self.db.table_names():
            return {}
        return {row["key"]: json.loads(row["value"]) for row in self.db["meta"].rows}

    # --- processes ----------------------------------------------------------------------

    def upsert_process(self, row: ProcessRow) -> None:
        record = dict(row.__dict__, updated_ms=int(time.time() * 1000))
        self.db["processes"].upsert(record, pk="name", alter=True)  # type: ignore[union-attr]

    def delete_process(self, name: str) -> None:
        if "processes" in self.db.table_names():
            self.db["processes"].delete_where("name = ?", [name])  # type: ignore[union-attr]

    def clear_processes(self) -> None:
        if "processes" in self.db.table_names():
            self.db["processes"].delete_where()  # type: ignore[union-attr]

    def processes(self) -> list[ProcessRow]:
        if "processes" not in self.db.table_names():
            return []
        fields = ProcessRow.__dataclass_fields__
        return [
            ProcessRow(**{k: v for k, v in row.items() if k in fields})
            for row in self.db["processes"].rows_where(order_by="name")
        ]

    # --- flows paused by the operator (re-applied when a worker restarts) -----------------

    def set_paused(self, flow: str, paused: bool) -> None:
        self.db["links"].upsert({"flow": flow, "paused": int(paused)}, pk="flow")  # type: ignore[union-attr]

    def paused_flows(self) -> set[str]:
        if "links" not in self.db.table_names():
            return set()
        return {row["flow"] for row in self.db["links"].rows if row["paused"]}


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def is_ours(pid: int) -> bool:
    """Whether `pid` is a regionlink process (pids are reused; never signal a stranger)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return False
    return b"mirror.cli" in cmdline or b"regionlink" in cmdline or b"mirror.runtime" in cmdline


def kill_leftovers(state_dir: Path) -> None:
    """SIGKILL the supervisor and every process of the topology in `state_dir`: the last
    resort when `regionlink down` itself failed, so nothing is left behind."""
    if not (state_dir / DB_NAME).exists():
        return
    state = StateDB(state_dir)
    pids = [int(state.meta().get("supervisor_pid", 0))] + [r.pid for r in state.processes()]
    for pid in pids:
        if pid and is_ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
