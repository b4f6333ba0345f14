"""`make bench`, part 3: what replication costs and how fast a region heals.

Each round runs, one after another on this machine (never side by side):
  1. the broker bench's acks=all produce client against one single-node broker (RF=1), as
     fast as it can (throughput, broker CPU per GB, p99) and then held to --paced-mb-s (p99
     at an offered load: flat out, p99 is mostly time spent queued in the client);
  2. the same client and workloads against a region of 3 controllers and 3 brokers, on a
     topic with RF=3 and min.insync.replicas=2;
  3. in that region, an idempotent acks=all producer writing steadily while the topic
     leader is SIGKILLed: the time from the signal to the first acknowledged write that
     was issued after the process was gone (only the new leader can have taken it).
Medians over --repeat rounds; goals (issue 15): RF=3 throughput ≥ 0.5x single node, broker
CPU per GB ≤ 3.5x, p99 ≤ 4x; failover < 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from bench.broker_bench import exit_on_sigterm, positive_int
from bench.brokers import BROKERS, BrokerStartError, launch
from bench.copy_floor import Floor, measure_floor
from bench.machine import machine_info, machine_summary, process_cpu_s, warm_memory
from bench.region import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, RunningRegion, running_region
from bench.report import save_results
from bench.scenarios import BenchOptions, ScenarioError, create_topic, run_client, step_error

THROUGHPUT_GOAL_RATIO = 0.5
CPU_GOAL_RATIO = 3.5  # region's broker CPU per GB / the single node's
P99_GOAL_RATIO = 4.0
PACED_MB_S = 100.0  # below both maxima: latency at an offered load, not with the queue full
FAILOVER_GOAL_S = 2.0
WARM_UP_S = 1.0
WARM_UP_TIMEOUT_S = 15.0
FAILOVER_TIMEOUT_S = 30.0
PRODUCE_INTERVAL_S = 0.001
RF3_CONFIGS = {"min.insync.replicas": "2"}
WARM_MARGIN = 1.25  # record and batch overheads, and the page cache's own pages
# librdkafka re-asks for a dead leader on a 1 s timer and, with idempotence, waits one more
# round after the move; a client that refreshes metadata every 250 ms sees the region's own
# speed. Both run side by side in the failover step.
CLIENTS = {
    "librdkafka_default": {},
    "librdkafka_refresh_250ms": {"topic.metadata.refresh.interval.ms": 250},
}
METADATA_POLL_S = 0.02


@dataclass
class Round:
    """One round's figures (None where a step failed; the error says why)."""

    single: Produced | None = None
    rf3: Produced | None = None
    single_paced: Produced | None = None  # the same client held to --paced-mb-s
    rf3_paced: Produced | None = None
    failover_s: dict[str, float] = field(default_factory=dict)  # see measure_failover
    floor: Floor | None = None  # the same bytes moved by plain processes: bench/copy_floor.py
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Produced:
    mb_per_s: float
    p99_ms: float
    broker_cpu_s_per_gb: float  # user + system CPU of every broker process, per GB produced


def warm_for(work: Path, options: BenchOptions, copies: int) -> None:
    """Warm as much memory as `copies` of the step's records will take (see warm_memory)."""
    warm_memory(work, int(options.records * options.value_bytes * copies * WARM_MARGIN))


def produce(
    bootstrap: str, options: BenchOptions, rf: int, pids: Iterable[int], work: Path
) -> Produced:
    """The broker bench's produce client on a fresh 1-partition topic, and what the brokers
    (`pids`) spent on it in CPU: the figure that explains RF=3 on one small machine. Memory
    is warmed in `work` first, as much as the brokers will write (see warm_memory)."""
    topic = f"bench-rf{rf}-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1, rf, RF3_CONFIGS if rf > 1 else None)
    warm_for(work, options, rf)
    cpu_before_s = sum(process_cpu_s(pid) for pid in pids)
    produced = run_client("produce", bootstrap, topic, options)
    cpu_s = sum(process_cpu_s(pid) for pid in pids) - cpu_before_s
    error = step_error(produced, options.records)
    if error:
        raise ScenarioError(f"RF={rf}: {error}")
    gigabytes = produced["bytes"] / 1e9
    return Produced(produced["mb_per_s"], produced["p99_latency_ms"], cpu_s / gigabytes)


class FailoverProbe:
    """An idempotent acks=all producer whose values carry their own produce time."""

    def __init__(self, bootstrap: str, config: dict[str, Any]) -> None:
        self.acks: list[tuple[float, float]] = []  # (produced at, acknowledged at)
        self.errors: list[str] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 1,
                "on_delivery": self.on_delivery,
                **config,
            }
        )

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(str(error))
            return
        value = message.value()
        assert value is not None
        self.acks.append((float(value), time.monotonic()))

    def first_ack_after(self, produced_after: float) -> float | None:
        return next((acked for produced, acked in self.acks if produced > produced_after), None)


def measure_failover(region: RunningRegion) -> dict[str, float]:
    """Seconds from the leader's SIGKILL to: the new leader in metadata, and each client's
    first acknowledged write that was issued after the process was gone."""
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    create_topic(region.bootstrap, topic, 1, 3, RF3_CONFIGS)
    probes = {name: FailoverProbe(region.bootstrap, config) for name, config in CLIENTS.items()}
    warm_until = time.monotonic() + WARM_UP_TIMEOUT_S
    while not all(p.acks for p in probes.values()) and time.monotonic() < warm_until:
        produce_for(probes.values(), topic, METADATA_POLL_S)
    if not all(p.acks for p in probes.values()):
        raise ScenarioError(f"failover: nothing acknowledged in {WARM_UP_TIMEOUT_S:g} s")
    produce_for(probes.values(), topic, WARM_UP_S)  # a steady stream when the leader dies
    leader = region.leader(topic)
    survivors = ",".join(b.bootstrap for n, b in region.brokers.items() if n != leader)
    admin = AdminClient({"bootstrap.servers": survivors})
    killed_at = time.monotonic()
    region.kill(leader)
    gone_at = time.monotonic()
    deadline = gone_at + FAILOVER_TIMEOUT_S
    seen: dict[str, float] = {}
    while len(seen) <= len(probes) and time.monotonic() < deadline:
        if "leader_in_metadata_s" not in seen and _leader_moved(admin, topic, leader):
            seen["leader_in_metadata_s"] = time.monotonic() - killed_at
        produce_for(probes.values(), topic, METADATA_POLL_S)
        for name, probe in probes.items():
            acked = probe.first_ack_after(gone_at)
            if acked is not None and name not in seen:
                seen[name] = acked - killed_at
    for probe in probes.values():
        probe.producer.flush(FAILOVER_TIMEOUT_S)
    if len(seen) <= len(probes):
        raise ScenarioError(f"failover: only {sorted(seen)} within {FAILOVER_TIMEOUT_S:g} s")
    return seen


def _leader_moved(admin: AdminClient, topic: str, old_leader: int) -> bool:
    with contextlib.suppress(Exception):
        leader = admin.list_topics(topic, timeout=1).topics[topic].partitions[0].leader
        return leader >= 0 and leader != old_leader
    return False


def produce_for(probes: Iterable[FailoverProbe], topic: str, duration_s: float) -> None:
    """Each producer writes one small record per millisecond or so for `duration_s`."""
    until = time.monotonic() + duration_s
    while time.monotonic() < until:
        for probe in probes:
            with contextlib.suppress(BufferError):  # queue full: poll below drains it
                probe.producer.produce(topic, repr(time.monotonic()).encode(), partition=0)
            probe.producer.poll(0)
        time.sleep(PRODUCE_INTERVAL_S)


def run_round(options: BenchOptions, paced: BenchOptions, status: Console) -> Round:
    """Single node, then the region (throughput, latency at `paced`'s rate, then failover);
    every process stopped."""
    result = Round()
    with tempfile.TemporaryDirectory(prefix="bench-replication-") as work_dir:
        work = Path(work_dir)
        try:
            status.print("single node: produce (RF=1, acks=all)")
            broker = launch(BROKERS["ours"], work / "single", 30.0)
            try:
                single_pids = [broker.process.pid]
                result.single = produce(broker.bootstrap, options, 1, single_pids, work)
                status.print(f"single node: produce at {paced.rate_mb_s:g} MB/s")
                result.single_paced = produce(broker.bootstrap, paced, 1, single_pids, work)
            finally:
                broker.stop()
            status.print("region of 3: produce (RF=3, acks=all, min.insync.replicas=2)")
            with running_region(work / "region") as region:
                pids = [b.process.pid for b in region.brokers.values()]
                result.rf3 = produce(region.bootstrap, options, 3, pids, work)
                status.print(f"region of 3: produce at {paced.rate_mb_s:g} MB/s")
                result.rf3_paced = produce(region.bootstrap, paced, 3, pids, work)
                status.print("region of 3: SIGKILL the leader under acks=all load")
                result.failover_s = measure_failover(region)
            status.print("the same bytes moved by plain processes (bench/copy_floor.py)")
            warm_for(work, options, 3)
            result.floor = measure_floor(work, options.records * options.value_bytes >> 20)
        except (ScenarioError, BrokerStartError) as exc:
            result.errors.append(str(exc))
    return result


def median(rounds: list[Round], step: str, name: str) -> float | None:
    values = [getattr(p, name) for r in rounds if (p := getattr(r, step)) is not None]
    return statistics.median(values) if values else None


FAILOVER_FIGURES = {
    "leader_in_metadata_s": "SIGKILL → new leader in metadata",
    "librdkafka_default": "SIGKILL → first ack, librdkafka defaults",
    "librdkafka_refresh_250ms": "SIGKILL → first ack, metadata refresh 250 ms",
}


def _median_of(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def summary(rounds: list[Round]) -> dict[str, Any]:
    single, rf3 = median(rounds, "single", "mb_per_s"), median(rounds, "rf3", "mb_per_s")
    figures: dict[str, Any] = {
        "single_node_mb_per_s": single,
        "rf3_mb_per_s": rf3,
        "rf3_over_single": ratio(rf3, single),
        "single_node_p99_ms": median(rounds, "single", "p99_ms"),
        "rf3_p99_ms": median(rounds, "rf3", "p99_ms"),
        "single_node_broker_cpu_s_per_gb": median(rounds, "single", "broker_cpu_s_per_gb"),
        "rf3_broker_cpu_s_per_gb": median(rounds, "rf3", "broker_cpu_s_per_gb"),
        "single_node_paced_p99_ms": median(rounds, "single_paced", "p99_ms"),
        "rf3_paced_p99_ms": median(rounds, "rf3_paced", "p99_ms"),
    }
    figures["rf3_cpu_over_single"] = ratio(
        figures["rf3_broker_cpu_s_per_gb"], figures["single_node_broker_cpu_s_per_gb"]
    )
    floors = [r.floor for r in rounds if r.floor is not None]
    figures["floor_single_cpu_s_per_gb"] = _median_of([f.single_s_per_gb for f in floors])
    figures["floor_rf3_cpu_s_per_gb"] = _median_of([f.region_s_per_gb for f in floors])
    figures["floor_rf3_cpu_over_single"] = _median_of([f.ratio for f in floors])
    figures["rf3_p99_over_single"] = ratio(figures["rf3_p99_ms"], figures["single_node_p99_ms"])
    figures["rf3_paced_p99_over_single"] = ratio(
        figures["rf3_paced_p99_ms"], figures["single_node_paced_p99_ms"]
    )
    for key in FAILOVER_FIGURES:
        values = [r.failover_s[key] for r in rounds if key in r.failover_s]
        figures[f"{key}_median"] = statistics.median(values) if values else None
        figures[f"{key}_max"] = max(values) if values else None
    return figures


def print_table(
    figures: dict[str, Any], machine: dict[str, Any], title: str, paced_mb_s: float
) -> None:
    table = Table(title=title)
    for column in ("figure", "median", "worst", "goal"):
        table.add_column(column)

    def show(value: float | None, unit: str) -> str:
        return "-" if value is None else f"{value:.2f}{unit}"

    table.add_row("produce, single node, RF=1", show(figures["single_node_mb_per_s"], " MB/s"))
    table.add_row("produce, region, RF=3", show(figures["rf3_mb_per_s"], " MB/s"))
    table.add_row(
        "RF=3 / single node",
        show(figures["rf3_over_single"], "x"),
        "",
        f"≥ {THROUGHPUT_GOAL_RATIO}x",
    )
    table.add_row("p99 produce latency, RF=1", show(figures["single_node_p99_ms"], " ms"))
    table.add_row("p99 produce latency, RF=3", show(figures["rf3_p99_ms"], " ms"))
    table.add_row(
        "p99 RF=3 / RF=1", show(figures["rf3_p99_over_single"], "x"), "", f"≤ {P99_GOAL_RATIO:g}x"
    )
    paced = f"p99 at {paced_mb_s:g} MB/s"
    table.add_row(f"{paced}, RF=1", show(figures["single_node_paced_p99_ms"], " ms"))
    table.add_row(f"{paced}, RF=3", show(figures["rf3_paced_p99_ms"], " ms"))
    table.add_row(f"{paced}, RF=3 / RF=1", show(figures["rf3_paced_p99_over_single"], "x"))
    table.add_row("broker CPU per GB, RF=1", show(figures["single_node_broker_cpu_s_per_gb"], " s"))
    table.add_row(
        "broker CPU per GB, RF=3 (3 brokers)", show(figures["rf3_broker_cpu_s_per_gb"], " s")
    )
    table.add_row(
        "CPU per GB RF=3 / RF=1",
        show(figures["rf3_cpu_over_single"], "x"),
        "",
        f"≤ {CPU_GOAL_RATIO}x",
    )
    table.add_row(
        "same bytes, no broker: CPU per GB RF=1 / RF=3",
        f"{show(figures['floor_single_cpu_s_per_gb'], ' s')} / "
        f"{show(figures['floor_rf3_cpu_s_per_gb'], ' s')}",
    )
    table.add_row(
        "same bytes, no broker: RF=3 / RF=1 (the floor)",
        show(figures["floor_rf3_cpu_over_single"], "x"),
    )
    for key, label in FAILOVER_FIGURES.items():
        median_s, worst_s = figures[f"{key}_median"], figures[f"{key}_max"]
        table.add_row(label, show(median_s, " s"), show(worst_s, " s"), "< 2 s")
    Console().print(table)
    Console().print(f"machine: {machine_summary(machine)}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replication_bench", description=__doc__)
    parser.add_argument("--records", type=positive_int, default=100_000, help="records per run")
    parser.add_argument("--value-bytes", type=positive_int, default=1024, help="value size")
    parser.add_argument("--repeat", type=positive_int, default=3, help="rounds; medians shown")
    parser.add_argument("--json", action="store_true", help="print JSON results only")
    parser.add_argument("--client-timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--paced-mb-s",
        type=float,
        default=PACED_MB_S,
        help="offered load of the latency step (the throughput step's p99 is queueing time)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    exit_on_sigterm()
    options = BenchOptions(args.records, args.value_bytes, args.client_timeout_s)
    paced = dataclasses.replace(options, rate_mb_s=args.paced_mb_s)
    status = Console(stderr=True, highlight=False)
    machine = machine_info()
    rounds = []
    for number in range(1, args.repeat + 1):
        status.print(f"round {number}/{args.repeat}")
        rounds.append(run_round(options, paced, status))
    figures = summary(rounds)
    results = {
        "command": "python -m bench.replication_bench " + " ".join(argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "options": vars(args),
        "failure_detection": {
            "broker_session_timeout_ms": SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        },
        "figures": figures,
        "rounds": [dataclasses.asdict(r) for r in rounds],
    }
    save_results(results, "replication-bench")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        title = f"{args.records:,} x {args.value_bytes} B records, acks=all, 1 partition"
        print_table(figures, machine, title, args.paced_mb_s)
        for number, r in enumerate(rounds, 1):
            for error in r.errors:
                status.print(f"round {number}: {error}", style="red")
    return 1 if any(r.errors for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
