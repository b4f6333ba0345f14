"""`regionlink up/status/lag/link/down` with real processes under the supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror.runtime.state import pid_alive
from tests.integration.mirror_harness import create_topic, end_offsets, produce, wait_until

pytestmark = pytest.mark.integration
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "two-regions.toml"


def regionlink(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def status(state_dir: Path) -> dict[str, Any]:
    done = regionlink("status", "--state-dir", str(state_dir), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "state"
    yield directory
    regionlink("down", "--state-dir", str(directory))


def test_up_status_restart_pause_and_down(state_dir: Path) -> None:
    started = regionlink("up", str(TOPOLOGY), "--state-dir", str(state_dir), "--json")
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    assert first["supervisor"]["status"] == "healthy"
    us, eu = (first["regions"][r]["bootstrap"] for r in ("us-east", "eu-west"))
    assert us and eu and us != eu
    assert [f["source"] + ">" + f["target"] for f in first["flows"]] == ["us-east>eu-west"]

    create_topic(us, "orders", 2)
    produce(us, "orders", [b"o%d" % i for i in range(500)])
    wait_until(
        lambda: sum(end_offsets(eu, "us-east.orders").values()) == 500,
        30,
        "orders to reach eu-west",
    )
    flow = status(state_dir)["flows"][0]
    assert flow["records_copied"] == 500 and flow["state"] == "running"
    metrics = state_dir / "metrics" / "us-east-eu-west-1.jsonl"
    wait_until(
        lambda: metrics.exists() and "regionlink.mirror.lag.records" in metrics.read_text(),
        15,
        "OpenTelemetry metrics from the worker",
    )
    lag = regionlink("lag", "--state-dir", str(state_dir), "--json")
    assert lag.returncode == 0 and json.loads(lag.stdout)[0]["lag_records"] == 0

    again = regionlink("up", str(TOPOLOGY), "--state-dir", str(state_dir))
    assert again.returncode == 0 and "nothing changed" in again.stdout
    pids = {p["name"]: p["pid"] for p in status(state_dir)["processes"]}
    assert pids == {p["name"]: p["pid"] for p in first["processes"]}, "a second up starts nothing"

    worker = next(name for name in pids if "worker" in name)
    os.kill(pids[worker], signal.SIGKILL)

    def restarted() -> bool:
        row = next(p for p in status(state_dir)["processes"] if p["name"] == worker)
        return row["restarts"] == 1 and row["state"] == "running" and row["pid"] != pids[worker]

    wait_until(restarted, 30, "the supervisor to restart the killed worker")
    produce(us, "orders", [b"after-restart"] * 10)
    wait_until(
        lambda: sum(end_offsets(eu, "us-east.orders").values()) == 510,
        30,
        "copying after the restart",
    )

    paused = regionlink("link", "pause", "us-east:eu-west", "--state-dir", str(state_dir))
    assert paused.returncode == 0, paused.stderr
    paused_flow = status(state_dir)["flows"][0]
    assert paused_flow["state"] == "paused"
    assert {p["state"] for p in paused_flow["partitions"]} == {"paused"}, "figures kept"
    produce(us, "orders", [b"while-paused"] * 10)
    time.sleep(2)
    assert sum(end_offsets(eu, "us-east.orders").values()) == 510
    resumed = regionlink("link", "resume", "us-east:eu-west", "--state-dir", str(state_dir))
    assert resumed.returncode == 0, resumed.stderr
    wait_until(lambda: sum(end_offsets(eu, "us-east.orders").values()) == 520, 30, "resume")

    stopped = regionlink("down", "--state-dir", str(state_dir))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    everyone = [first["supervisor"]["pid"], *(p["pid"] for p in status_rows(state_dir))]
    assert not [pid for pid in everyone if pid_alive(pid)], "down leaves no process behind"
    assert "nothing is running" in regionlink("down", "--state-dir", str(state_dir)).stdout


def status_rows(state_dir: Path) -> list[dict[str, Any]]:
    from mirror.runtime.state import StateDB

    return [row.__dict__ for row in StateDB(state_dir).processes()]


def test_up_refuses_bad_files_and_a_second_topology(state_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[regions.a]\nbrokers = 3\ncontrollers = 3\n')
    done = regionlink("up", str(bad), "--state-dir", str(state_dir))
    assert done.returncode == 2 and "multi-broker regions" in done.stderr
    assert "Traceback" not in done.stderr
    typo = tmp_path / "typo.toml"
    typo.write_text('name = "x"\n[regions.a]\nbrokerz = 1\n')
    done = regionlink("up", str(typo), "--state-dir", str(state_dir))
    assert done.returncode == 2 and f"{typo}:3: regions.a.brokerz" in done.stderr
    missing = regionlink("status", "--state-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no topology in" in missing.stderr


def test_up_reports_a_broker_that_cannot_start(state_dir: Path) -> None:
    import socket

    assert regionlink("up", str(TOPOLOGY), "--state-dir", str(state_dir)).returncode == 0
    assert regionlink("down", "--state-dir", str(state_dir)).returncode == 0
    from mirror.runtime.state import StateDB

    port = StateDB(state_dir).meta()["ports"]["us-east/broker-1"]
    with socket.socket() as squatter:  # someone took the region's port meanwhile
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = regionlink("up", str(TOPOLOGY), "--state-dir", str(state_dir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "us-east/broker-1 was not ready" in done.stderr and "Traceback" not in done.stderr
    log = (state_dir / "logs" / "us-east-broker-1.log").read_text()
    assert "Address already in use" in log
    assert not [p for p in status_rows(state_dir) if pid_alive(p["pid"])], "nothing left running"
