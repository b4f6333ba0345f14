"""`make bench`, after the replication bench: how long a broker with 1 GB of log takes to
serve, with and without producer-state snapshots.

A broker rebuilds each partition's idempotent-producer state before it serves; without a
snapshot that means reading every batch of the log. The bench creates one single-partition
topic through a broker, stops it, writes --log-mib of idempotent batches (--records-per-batch
records of 1 KiB from --producers producers; the last segment gets --active-mib) straight into
the partition through PartitionLog (no network, so it is quick), then times process start -> a
Metadata answer naming the partition's leader (confluent-kafka AdminClient), in four cases:
  clean / snapshot      after SIGTERM: the snapshot written on close covers the whole log;
  clean / no snapshot   the same with the *.snapshot files deleted (the full scan);
  sigkill / snapshot    after SIGKILL, with the snapshot at the active segment's base (as a
                        crash mid-segment leaves it): the last segment is CRC-checked and replayed;
  sigkill / no snapshot the same with no snapshot files.
Medians over --repeat rounds, page cache warm (the log was just written); goal < 2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from bench.broker_bench import exit_on_sigterm, positive_int
from bench.brokers import REPO_ROOT, ours_argv, port_accepts, read_tail, signal_group, stop_process
from bench.machine import machine_info, machine_summary
from bench.report import save_results
from bench.scenarios import create_topic
from broker.log import LogConfig, PartitionLog
from broker.log.partition_log import CLEAN_SHUTDOWN_FILE
from broker.log.producer_snapshot_files import snapshot_offsets, snapshot_path
from broker.partitions import partition_dir
from broker.ports import free_port
from broker.producer_state import ProducerStateTable
from broker.protocol.batch import CRC_START, read_header
from broker.protocol.records import NewRecord, build_batch

GOAL_S = 2.0
TOPIC = "startup"
RECORD_BYTES = 1024
FIRST_PRODUCER_ID = 1000
READY_TIMEOUT_S = 120.0
PORT_POLL_S = 0.005
CASES = (("clean", True), ("clean", False), ("sigkill", True), ("sigkill", False))
_PRODUCER_FIELDS = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence
_PRODUCER_FIELDS_AT = 43
_CRC = struct.Struct(">I")
_CRC_AT = 17


class StartupError(Exception):
    """A broker did not start, answer or stop as the bench needs."""


@dataclass(frozen=True)
class Written:
    bytes: int
    batches: int
    segments: int
    active_segment_bytes: int  # what a start after SIGKILL CRC-checks and replays
    seconds: float


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_bench", description=__doc__)
    parser.add_argument("--log-mib", type=positive_int, default=1024, help="log size (MiB)")
    parser.add_argument("--segment-mib", type=positive_int, default=128, help="segment.bytes")
    parser.add_argument(
        "--active-mib", type=positive_int, default=64,
        help="the last segment's size: what a start after SIGKILL CRC-checks and replays",
    )  # fmt: skip
    parser.add_argument("--records-per-batch", type=positive_int, default=8)
    parser.add_argument("--producers", type=positive_int, default=1000)
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def write_log(directory: Path, config: LogConfig, args: argparse.Namespace) -> Written:
    """Fill the partition with idempotent batches, round-robin over the producers, and close
    it (a clean shutdown with its snapshot). One batch is encoded; the rest are copies with
    their producer id and sequence patched and the CRC recomputed."""
    started_s = time.perf_counter()
    now_ms = int(time.time() * 1000)
    value = os.urandom(RECORD_BYTES)
    records = [NewRecord(None, value, (), now_ms) for _ in range(args.records_per_batch)]
    template = build_batch(records, producer_id=0, producer_epoch=0, base_sequence=0)
    log = PartitionLog.open(directory, config, now_ms=now_ms)
    table = ProducerStateTable()
    log.producers = table
    sequences = [0] * args.producers
    target_bytes, written_bytes, batches = args.log_mib << 20, 0, 0
    roll_at_bytes = target_bytes - min(args.active_mib << 20, (args.segment_mib << 20) * 3 // 4)
    while written_bytes < target_bytes:
        if written_bytes >= roll_at_bytes > 0:
            log.roll(now_ms)  # the last segment gets --active-mib, whatever the sizes
            roll_at_bytes = 0
        producer = batches % args.producers
        data = bytearray(template)
        _PRODUCER_FIELDS.pack_into(
            data, _PRODUCER_FIELDS_AT, FIRST_PRODUCER_ID + producer, 0, sequences[producer]
        )
        _CRC.pack_into(data, _CRC_AT, crc32c.crc32c(memoryview(data)[CRC_START:]))
        appended = log.append(data, leader_epoch=0, now_ms=now_ms)
        table.record(read_header(data), appended.first_offset, appended.last_offset)
        sequences[producer] += args.records_per_batch
        written_bytes += len(data)
        batches += 1
    segments, active_bytes = log.segment_count, log.active.size_bytes
    log.close()
    return Written(written_bytes, batches, segments, active_bytes, time.perf_counter() - started_s)


def start_broker(
    data_dir: Path, port: int, log_path: Path, *, metadata: bool = True
) -> tuple[subprocess.Popen[bytes], float]:
    """Launch the broker; (process, seconds from launch to a Metadata answer naming the
    partition's leader, or only to an open port without `metadata`)."""
    started_s = time.perf_counter()
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            ours_argv(port, data_dir),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    try:
        wait_ready(process, port, started_s + READY_TIMEOUT_S, log_path, metadata=metadata)
    except BaseException:
        stop_process(process)
        raise
    return process, time.perf_counter() - started_s


def wait_ready(
    process: subprocess.Popen[bytes], port: int, deadline_s: float, log_path: Path,
    *, metadata: bool,
) -> None:  # fmt: skip
    """Poll the port, then ask Metadata until partition 0 of TOPIC has a leader."""
    while not port_accepts(port):
        if process.poll() is not None or time.perf_counter() > deadline_s:
            raise StartupError(f"broker not accepting: {read_tail(log_path) or 'no output'}")
        time.sleep(PORT_POLL_S)
    if not metadata:
        return
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    while time.perf_counter() < deadline_s:
        topic = admin.list_topics(TOPIC, timeout=READY_TIMEOUT_S).topics.get(TOPIC)
        partitions = topic.partitions if topic is not None and topic.error is None else {}
        if 0 in partitions and partitions[0].leader >= 0:
            return
        time.sleep(PORT_POLL_S)
    raise StartupError(f"no leader for {TOPIC}-0: {read_tail(log_path) or 'no output'}")


def stop_clean(process: subprocess.Popen[bytes], partition: Path) -> None:
    stop_process(process)
    if not (partition / CLEAN_SHUTDOWN_FILE).exists():
        raise StartupError(f"broker exited with {process.returncode} but no clean shutdown")


def hide_snapshots(partition: Path, *, above: int = -1) -> list[tuple[Path, Path]]:
    """Move the snapshots past `above` aside; (hidden, original) pairs to put back."""
    aside = partition.parent.parent / "hidden-snapshots"
    aside.mkdir(exist_ok=True)
    moved = []
    for offset in snapshot_offsets(partition):
        if offset > above:
            original = snapshot_path(partition, offset)
            moved.append((original.replace(aside / original.name), original))
    return moved


def put_back(moved: list[tuple[Path, Path]]) -> None:
    """Every case starts from the snapshots write_log left (a broker's close rewrites and
    prunes them, so a case without them would otherwise leave the next with fewer)."""
    for hidden, original in moved:
        hidden.replace(original)


def measure(
    kind: str, with_snapshot: bool, data_dir: Path, partition: Path, log_path: Path
) -> float:
    """Seconds to a Metadata answer in one case; leaves the log cleanly shut down."""
    port = free_port()
    moved = []
    if kind == "sigkill":
        process, _ = start_broker(data_dir, port, log_path)
        signal_group(process, signal.SIGKILL)
        process.wait()
        # As a crash mid-segment: no snapshot past the active segment's base.
        moved = hide_snapshots(partition, above=max(int(p.stem) for p in partition.glob("*.log")))
    if not with_snapshot:
        moved += hide_snapshots(partition)
    process, seconds = start_broker(data_dir, port, log_path)
    stop_clean(process, partition)
    put_back(moved)
    return seconds


def run(args: argparse.Namespace, status: Console) -> dict[str, Any]:
    config_map = {"segment.bytes": str(args.segment_mib << 20), "retention.ms": "-1"}
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        data_dir, log_path = Path(tmp) / "data", Path(tmp) / "broker.log"
        partition = partition_dir(data_dir, TOPIC, 0)
        port = free_port()
        process, _ = start_broker(data_dir, port, log_path, metadata=False)  # no topic yet
        try:
            create_topic(f"127.0.0.1:{port}", TOPIC, 1, 1, config_map)
        finally:
            stop_process(process)
        status.print(f"writing {args.log_mib} MiB of idempotent batches")
        written = write_log(partition, LogConfig.from_topic_configs(config_map), args)
        seconds: dict[str, list[float]] = {case_name(*case): [] for case in CASES}
        for number in range(1, args.repeat + 1):
            for kind, with_snapshot in CASES:
                name = case_name(kind, with_snapshot)
                status.print(f"round {number}/{args.repeat}: {name}")
                seconds[name].append(measure(kind, with_snapshot, data_dir, partition, log_path))
    return {
        "written": dataclasses.asdict(written),
        "median_s": {name: statistics.median(values) for name, values in seconds.items()},
        "seconds": seconds,
    }


def case_name(kind: str, with_snapshot: bool) -> str:
    return f"{kind} / {'snapshot' if with_snapshot else 'no snapshot'}"


def print_table(figures: dict[str, Any], machine: dict[str, Any], title: str) -> None:
    table = Table(title=title, caption=machine_summary(machine))
    table.add_column("start-up after")
    table.add_column("median s", justify="right")
    table.add_column("runs s", justify="right")
    table.add_column(f"goal < {GOAL_S:g} s")
    for name, median_s in figures["median_s"].items():
        runs = ", ".join(f"{s:.2f}" for s in figures["seconds"][name])
        verdict = "met" if median_s < GOAL_S else "missed"
        table.add_row(name, f"{median_s:.2f}", runs, verdict if "/ snapshot" in name else "")
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    exit_on_sigterm()
    status = Console(stderr=True, highlight=False)
    machine = machine_info()
    try:
        figures = run(args, status)
    except StartupError as exc:
        status.print(f"startup bench: {exc}", style="red")
        return 1
    results = {
        "command": "python -m bench.startup_bench " + " ".join(argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "options": vars(args),
        "figures": figures,
    }
    save_results(results, "startup-bench")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        written = figures["written"]
        title = (
            f"start-up with {written['bytes'] / 1e9:.2f} GB of log in {written['segments']} "
            f"segments, the last {written['active_segment_bytes'] / 2**20:.0f} MiB "
            f"({written['batches']:,} batches of {args.records_per_batch} x 1 KiB "
            f"from {args.producers} idempotent producers)"
        )
        print_table(figures, machine, title)
    met = all(s < GOAL_S for name, s in figures["median_s"].items() if "/ snapshot" in name)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
