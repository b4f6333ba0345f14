"""`make bench`, part 4: how long failing over takes, measured by a client under load.

One topology (topologies/active-passive.toml: two single-node regions, mirror topics) runs
under `regionlink up`. Then:
  1. --repeat planned switchovers, alternating direction, each under an idempotent acks=all
     producer that writes steadily to the primary and, when the primary refuses it
     (POLICY_VIOLATION), moves to the other region as an application following
     `regionlink endpoint` would. RTO (client) = the fence step's start to the first write
     acknowledged by the new primary; RTO (report) = fence start to promotion done.
  2. a forced failover: the flow paused, then the primary's broker frozen (SIGSTOP); the
     command's wall time and the report's RTO and RPO.
  3. a failback after --catch-up-records were written to the new primary: the catch-up
     rate (records the old primary had to mirror back, per second from the reverse flow's
     start to the catch_up step seeing both regions level).
Goal: switchover RTO < 5 s, RPO 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from bench.broker_bench import exit_on_sigterm, positive_int
from bench.brokers import REPO_ROOT
from bench.machine import machine_info, machine_summary
from bench.report import save_results

TOPOLOGY = REPO_ROOT / "topologies" / "active-passive.toml"
TOPIC = "bench-orders"
PARTITIONS = 3
RTO_GOAL_S = 5.0
LOAD_WARM_UP_S = 1.0
CLI_TIMEOUT_S = 180.0
console = Console()


def regionlink(state_dir: Path, *args: str) -> dict[str, Any]:
    """Run `regionlink ARGS --state-dir DIR --json`; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args, "--state-dir", str(state_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"regionlink {' '.join(args)}: {done.stderr.strip()}")
    return dict(json.loads(done.stdout))


class Load:
    """A steady idempotent acks=all producer that follows the primary role."""

    def __init__(self, bootstraps: dict[str, str], primary: str) -> None:
        self.bootstraps = bootstraps
        self.region = primary
        self.acks: list[tuple[str, float]] = []  # (region, wall time acknowledged)
        self.refused_at: float | None = None
        self.lost: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.bootstraps[self.region],
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "on_delivery": self._delivered,
            }
        )

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.acks.append((self.region, time.time()))
        elif error.code() == KafkaError.POLICY_VIOLATION:
            self.refused_at = self.refused_at or time.time()
        else:
            self.lost.append(str(error))

    def _run(self) -> None:
        producer = self._producer()
        while not self._stop.is_set():
            if self.refused_at is not None:  # the primary fenced us: go where it moved
                producer.flush(5)
                self.region = next(r for r in self.bootstraps if r != self.region)
                self.refused_at = None
                producer = self._producer()
            producer.produce(TOPIC, b"x" * 100)
            producer.poll(0)
            time.sleep(0.0005)
        producer.flush(10)

    def first_ack_in(self, region: str, after: float) -> float | None:
        return next((t for r, t in self.acks if r == region and t >= after), None)


@dataclass
class Results:
    switchover_rto_client_s: list[float] = field(default_factory=list)
    switchover_rto_report_s: list[float] = field(default_factory=list)
    switchover_command_s: list[float] = field(default_factory=list)
    switchover_rpo_records: list[int] = field(default_factory=list)
    failover: dict[str, Any] = field(default_factory=dict)
    failback: dict[str, Any] = field(default_factory=dict)


def switchover_round(state_dir: Path, bootstraps: dict[str, str], results: Results) -> None:
    primary = regionlink(state_dir, "endpoint")["region"]
    standby = next(r for r in bootstraps if r != primary)
    with Load(bootstraps, primary) as load:
        time.sleep(LOAD_WARM_UP_S)
        started = time.monotonic()
        report = regionlink(state_dir, "switchover", "--to", standby)
        results.switchover_command_s.append(time.monotonic() - started)
        fence_at = report["steps"][0]["started_ms"] / 1000
        time.sleep(LOAD_WARM_UP_S)
    if report["outcome"] != "done":
        raise SystemExit(f"switchover failed: {report['reason']}")
    first = load.first_ack_in(standby, fence_at)
    if first is None:
        raise SystemExit(f"no write was acknowledged by {standby} after the switchover")
    results.switchover_rto_client_s.append(first - fence_at)
    results.switchover_rto_report_s.append(report["rto_seconds"])
    results.switchover_rpo_records.append(report["rpo_records"])
    if load.lost:
        raise SystemExit(f"writes failed other than by the fence: {load.lost[:3]}")


def broker_pid(state_dir: Path, region: str) -> int:
    status = regionlink(state_dir, "status")
    return next(int(p["pid"]) for p in status["processes"] if p["name"] == f"{region}/broker-1")


def end_offsets(bootstrap: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


def produce(bootstrap: str, records: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for _ in range(records):
        producer.produce(TOPIC, b"y" * 100)
        producer.poll(0)
    assert producer.flush(60) == 0


def failover_and_back(
    state_dir: Path, bootstraps: dict[str, str], catch_up_records: int, results: Results
) -> None:
    primary = regionlink(state_dir, "endpoint")["region"]
    standby = next(r for r in bootstraps if r != primary)
    subprocess.run(
        [sys.executable, "-m", "mirror.cli", "link", "pause", f"{primary}:{standby}",
         "--state-dir", str(state_dir)],
        check=True, capture_output=True, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip
    produce(bootstraps[primary], 500)  # acknowledged by the primary, never mirrored
    time.sleep(1.0)  # observed by the flow's end-offset probe
    pid = broker_pid(state_dir, primary)
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        report = regionlink(state_dir, "failover", "--to", standby, "--force")
        results.failover = {
            "command_s": time.monotonic() - started,
            "rto_s": report["rto_seconds"],
            "rpo_records": report["rpo_records"],
            "observed_age_s": report["observed_age_s"],
            "outcome": report["outcome"],
        }
    finally:
        os.kill(pid, signal.SIGCONT)
    promoted_end = end_offsets(bootstraps[standby])
    produce(bootstraps[standby], catch_up_records)
    report = regionlink(state_dir, "failback", "--to", primary)
    # The reverse flow copies from its start (start_flow) until catch_up sees it level.
    steps: dict[str, dict[str, Any]] = {}
    for step in report["steps"]:
        steps.setdefault(step["kind"], step)  # the first: failback's own, not its switchover's
    seconds = (steps["catch_up"]["finished_ms"] - steps["start_flow"]["started_ms"]) / 1000
    copied = end_offsets(bootstraps[standby]) - promoted_end
    results.failback = {
        "outcome": report["outcome"],
        "diverged_records": sum(d["records"] for d in report["diverged"]),
        "catch_up_records": copied,
        "catch_up_s": seconds,
        "catch_up_records_per_s": copied / seconds,
    }


def run(repeat: int, catch_up_records: int) -> Results:
    results = Results()
    state_dir = Path(tempfile.mkdtemp(prefix="regionlink-failover-bench-"))
    try:
        regionlink(state_dir, "up", str(TOPOLOGY))
        status = regionlink(state_dir, "status")
        bootstraps = {name: r["bootstrap"] for name, r in status["regions"].items()}
        primary = regionlink(state_dir, "endpoint")["region"]
        admin = AdminClient({"bootstrap.servers": bootstraps[primary]})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(10)
        produce(bootstraps[primary], 1000)
        for index in range(repeat):
            console.print(f"switchover round {index + 1}/{repeat}")
            switchover_round(state_dir, bootstraps, results)
        console.print("forced failover, then failback")
        failover_and_back(state_dir, bootstraps, catch_up_records, results)
    finally:
        subprocess.run(
            [sys.executable, "-m", "mirror.cli", "down", "--state-dir", str(state_dir)],
            capture_output=True, timeout=CLI_TIMEOUT_S,
        )  # fmt: skip
        shutil.rmtree(state_dir, ignore_errors=True)
    return results


def show(results: Results, info: dict[str, Any]) -> None:
    table = Table(title=f"failover — {machine_summary(info)}")
    for column in ("what", "median", "worst", "goal"):
        table.add_column(column)
    for label, values, goal in (
        ("switchover RTO, client (s)", results.switchover_rto_client_s, f"< {RTO_GOAL_S:g}"),
        ("switchover RTO, report (s)", results.switchover_rto_report_s, f"< {RTO_GOAL_S:g}"),
        ("switchover command (s)", results.switchover_command_s, ""),
        ("switchover RPO (records)", results.switchover_rpo_records, "0"),
    ):
        table.add_row(label, f"{statistics.median(values):.3f}", f"{max(values):.3f}", goal)
    console.print(table)
    console.print(f"forced failover: {results.failover}")
    console.print(f"failback: {results.failback}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=positive_int, default=5, help="switchover rounds")
    parser.add_argument("--catch-up-records", type=positive_int, default=100_000)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    info = machine_info()
    results = run(args.repeat, args.catch_up_records)
    show(results, info)
    path = save_results(
        {"machine": info, "args": vars(args), "results": results.__dict__}, "failover"
    )
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
