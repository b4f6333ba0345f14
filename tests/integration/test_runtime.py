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
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from mirror.runtime.state import pid_alive
from tests.integration.mirror_harness import create_topic, end_offsets, produce, wait_until

pytestmark = pytest.mark.integration
TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
TOPOLOGY = TOPOLOGIES / "two-regions.toml"


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
        lambda: metrics.exists() and "regionlink_mirror_lag_records" in metrics.read_text(),
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
    bad.write_text('name = "x"\n[regions.a]\nbrokers = 3\n')
    done = regionlink("up", str(bad), "--state-dir", str(state_dir))
    assert done.returncode == 2, done.stderr
    assert f"{bad}:2: regions.a.controllers: a region with brokers = 3 needs" in done.stderr
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


def test_up_runs_a_region_of_three_brokers_and_three_controllers(state_dir: Path) -> None:
    started = regionlink(
        "up", str(TOPOLOGIES / "three-brokers.toml"), "--state-dir", str(state_dir), "--json"
    )
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    assert first["supervisor"]["status"] == "healthy"
    assert servers(first, "us-east") == (3, 3, 3, 3)
    assert servers(first, "eu-west") == (1, 1, 0, 0), "a single-node region has no controllers"
    us, eu = (first["regions"][r]["bootstrap"] for r in ("us-east", "eu-west"))
    assert len(us.split(",")) == 3

    wait_until(lambda: len(broker_ids(us)) == 3, 60, "all three brokers to be unfenced")
    admin = AdminClient({"bootstrap.servers": us})
    new = NewTopic("orders", 2, replication_factor=-1)  # the controllers' default: min(3, 3)
    admin.create_topics([new])["orders"].result(30)
    partitions = admin.list_topics("orders", timeout=10).topics["orders"].partitions
    assert [len(p.replicas) for p in partitions.values()] == [3, 3]
    produce(us, "orders", [b"o%d" % i for i in range(100)])  # idempotent, so acks=all
    wait_until(
        lambda: sum(end_offsets(eu, "us-east.orders").values()) == 100,
        60,
        "orders to reach eu-west",
    )

    pids = {p["name"]: p["pid"] for p in first["processes"]}
    os.kill(pids["us-east/broker-2"], signal.SIGKILL)

    def restarted() -> bool:
        now = status(state_dir)
        row = next(p for p in now["processes"] if p["name"] == "us-east/broker-2")
        fresh = row["restarts"] == 1 and row["pid"] != pids["us-east/broker-2"]
        return fresh and servers(now, "us-east") == (3, 3, 3, 3)

    wait_until(restarted, 60, "the supervisor to restart the killed broker")
    produce(us, "orders", [b"after-restart"] * 10)
    wait_until(
        lambda: sum(end_offsets(eu, "us-east.orders").values()) == 110,
        60,
        "copying after the restart",
    )

    stopped = regionlink("down", "--state-dir", str(state_dir))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    everyone = [first["supervisor"]["pid"], *(p["pid"] for p in status_rows(state_dir))]
    assert not [pid for pid in everyone if pid_alive(pid)], "down leaves no process behind"


def servers(status: dict[str, Any], region: str) -> tuple[int, int, int, int]:
    """(brokers running, brokers, controllers running, controllers) of a region."""
    r = status["regions"][region]
    return r["brokers_running"], r["brokers"], r["controllers_running"], r["controllers"]


def broker_ids(bootstrap: str) -> set[int]:
    """The brokers a region's metadata lists as live (unfenced); none while unreachable."""
    try:
        return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2).brokers)
    except KafkaException:
        return set()
