"""Drills end to end through `regionlink drill` (issue 12): real topology, real clients.

The short subset `make test` runs: the orchestrator-killed drill from the library (a
switchover whose orchestrator is SIGKILLed once it has started sync_groups, rerun), a drill
that declares an invariant it cannot keep (exit 1, the report names it, `drill report` shows
the same run again), and an interrupted drill that leaves no process behind. `make drills`
runs the whole library.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mirror.runtime.drill_steps import count_steps
from mirror.runtime.state import StateDB, pid_alive

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DRILL_TIMEOUT_S = 300


def regionlink(*args: str, timeout_s: float = DRILL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args],
        capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
    )  # fmt: skip


def _short_drill(tmp_path: Path, invariants: list[str], duration_s: float = 6) -> Path:
    path = tmp_path / "short.toml"
    topology = ROOT / "topologies" / "active-passive.toml"
    path.write_text(
        f"""name = "short"
description = "a short drill for the tests"
topology = "{topology}"
invariants = {json.dumps(invariants)}
timeout_s = 120

[workload]
duration_s = {duration_s}
drain_s = 20
[[workload.topics]]
name = "orders"
partitions = 2
[[workload.producers]]
topic = "orders"
rate_per_s = 100
[[workload.groups]]
group = "billing"
topics = ["orders"]
"""
    )
    return path


def _no_process_left(run_dir: Path) -> None:
    state = StateDB(run_dir / "state")
    rows = state.processes()
    assert rows, "the run started processes"
    supervisor = int(state.meta().get("supervisor_pid", 0))
    alive = [r.name for r in rows if pid_alive(r.pid)] + (
        ["supervisor"] if supervisor and pid_alive(supervisor) else []
    )
    assert not alive, f"left running: {alive}"


def test_the_orchestrator_killed_drill_passes(tmp_path: Path) -> None:
    done = regionlink("drill", "run", "orchestrator-killed", "--runs-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["drill"] == "orchestrator-killed" and result["passed"] is True, result
    assert result["records_lost"] == 0 and result["records_duplicated"] == 0, result
    assert result["records_acked"] >= 1000, result
    assert all(count == 0 for count in result["anomalies"].values()), result["anomalies"]
    (step,) = result["steps"]
    assert step["ok"] and "SIGKILLed at sync_groups" in step["detail"], step
    (failover,) = result["failovers"]
    assert failover["operation"] == "switchover" and failover["rpo_records"] == 0, failover
    assert result["rto_seconds"] is not None and result["rto_seconds"] < 10, result
    # What the topology's supervisor counted for regionlink_drill_steps_total while it ran.
    steps = count_steps(Path(result["run"]) / "state")
    assert steps == {("orchestrator-killed", "switchover", "ok"): 1}, steps
    _no_process_left(Path(result["run"]))


def test_a_broken_promise_fails_the_drill_and_the_report_names_it(tmp_path: Path) -> None:
    drill = _short_drill(tmp_path, ["no lost-write", "records_acked < 10"])
    runs = tmp_path / "runs"
    done = regionlink("drill", "run", str(drill), "--runs-dir", str(runs), "--json", "--seed", "3")
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    result = json.loads(done.stdout)
    assert result["passed"] is False and result["seed"] == 3
    kept = {i["text"]: (i["passed"], i["reason"]) for i in result["invariants"]}
    assert kept["no lost-write"] == (True, "")
    assert not kept["records_acked < 10"][0]
    assert kept["records_acked < 10"][1] == f"records_acked = {result['records_acked']}"

    run_name = Path(result["run"]).name
    again = regionlink("drill", "report", run_name, "--runs-dir", str(runs), "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == result
    shown = regionlink("drill", "report", run_name, "--runs-dir", str(runs))
    assert "records_acked < 10" in shown.stdout and "FAILED" in shown.stdout, shown.stdout
    missing = regionlink("drill", "report", "nope", "--runs-dir", str(runs))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    _no_process_left(Path(result["run"]))


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then raises KeyboardInterrupt


def test_an_interrupted_drill_cleans_up(tmp_path: Path) -> None:
    drill = _short_drill(tmp_path, ["no lost-write"], duration_s=60)
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror.cli", "drill", "run", str(drill), "--runs-dir", str(runs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_default,  # a test run started in the background ignores SIGINT
    )  # fmt: skip
    deadline_s = time.monotonic() + 120
    while time.monotonic() < deadline_s and not list(runs.glob("short-*/history.db")):
        time.sleep(0.5)
    time.sleep(3)  # the workload runs
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Traceback" not in stderr, stderr[-3000:]
    (run_dir,) = runs.glob("short-*")
    _no_process_left(run_dir)


def test_drill_list_json_names_every_library_drill() -> None:
    done = regionlink("drill", "list", "--json", timeout_s=60)
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert all(set(e) == {"name", "file", "description"} for e in entries)
    assert {"primary-loss", "switchover-under-load"} <= {e["name"] for e in entries}
