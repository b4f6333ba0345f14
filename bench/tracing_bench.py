"""`make bench` (tracing): what tracing costs the broker and the mirror at 1 % sampling, and
the end-to-end replication latency at half of the mirror's maximum load.

Two modes, each with fresh brokers and a fresh worker:

- off: OTEL_SDK_DISABLED=true in every process: no tracing at all;
- on: what `regionlink up` gives its processes, sampled: the span store
  (REGIONLINK_SPAN_STORE), OTEL_TRACES_SAMPLER=parentbased_traceidratio with
  OTEL_TRACES_SAMPLER_ARG=0.01 (--sample-ratio), no OTLP.

The load is the same in both: every record carries a W3C traceparent header, 1 % of them
flagged sampled, as producers instrumented to sample 1 % send them. With parent-based
sampling that decision travels with the record, so "on" looks into every batch for sampled
contexts and records a span wherever a sampled record goes.

Per round, in each mode (off first in odd rounds, on first in even ones), one topology:

1. produce: N records into a fresh us broker (idempotent, acks=all): the broker's throughput;
2. mirror: a worker copies them into eu's mirror topic (LinkAppend; --remote-topics: Produce
   into us.<topic>): steady records/s, first to last record on eu — the mirror catching up;
3. live: with the worker running, N more records as fast as a producer sends them into us:
   the rate at which they land on eu (first to last) is the mirror's maximum load, live —
   producer, both brokers and the worker sharing the machine; and the CPU per record of us,
   the worker and eu meanwhile (from /proc), which others' load moves less than the rate.
   (The catch-up rate of 2 is no load a producer on this machine can offer while the mirror
   runs: the mirror bench found its half out of the load generator's reach.)
4. capacity: the latency phase's own set-up flat out — its producer stamping every record
   with the send time, sending N records without pacing, and its consumer on eu timing each
   one — at the rate the records arrive on eu (first to last). That is the mirror's maximum
   load with the measuring clients on the same two cores: a stamping Python producer and a
   timing consumer take CPU that live's producer does not, so half of live would be no half
   load here (measured: at 130,000 records/s the paced producer fell behind and p99 ran to
   hundreds of ms, at 50,000 it was 33 ms).
5. latency: at half of that capacity, a paced producer on us and a consumer on eu time every
   record from produce() to receipt (the mirror bench's lag phase: linger and fetch wait
   included); with tracing on, the span store also gives, per sampled record, us accepting
   it -> eu appending it. It starts once the page cache has written back what the phases
   before wrote (os.sync(), then a quiet machine): with ~3 GB of theirs still dirty, the
   kernel throttled the brokers' writes and p99 swung between 60 and 300 ms from round to
   round; with nothing before it, 14 ms at the same load.

Every wait is bounded and every process started is stopped. Results go to the terminal,
bench-results/tracing-bench-<date>.json, and markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.broker_bench import exit_on_sigterm, positive_int, warn_if_busy
from bench.brokers import REPO_ROOT, RunningBroker
from bench.machine import machine_info, machine_summary
from bench.mirror_bench import (
    Child,
    Goal,
    Options,
    PhaseError,
    Processes,
    Round,
    alive_check,
    client_argv,
    client_result,
    cpu_seconds,
    format_value,
    lag_phase,
    machine_cpu_s,
    make_topic,
    mirror_phase,
    positive_float,
    produce_step,
    run_phase,
    verdict,
    watch_end_offsets,
)
from bench.report import save_results
from bench.span_latency import replication_latencies_s
from bench.workload import percentile_ms
from broker.telemetry import SPAN_STORE_ENV

MODES = ("off", "on")
# 200,000 records in 3 rounds made phases of under a second (live: 0.6 s) whose ratios swung
# 0.75-0.98 by round: 500,000 in 5 rounds (docs/benchmarks.md, Tracing).
DEFAULT_RECORDS = 500_000
DEFAULT_ROUNDS = 5
GOAL_THROUGHPUT_RATIO = 0.9  # tracing on costs under 10 % of throughput
GOAL_P99_MS = 100.0
SETTLE_MAX_S = 30.0
SETTLE_SAMPLE_S = 0.5
SETTLE_BUSY_CORES = 0.2
FLAT_OUT_RATE = 1e9  # records/s: a "paced" producer that never waits
_TRACING_ENV = (
    SPAN_STORE_ENV,
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_TRACES_EXPORTER",
)


@contextlib.contextmanager
def tracing_mode(mode: str, store: Path, sample_ratio: float) -> Iterator[None]:
    """The tracing environment every process started inside inherits."""
    saved = dict(os.environ)
    for name in _TRACING_ENV:
        os.environ.pop(name, None)
    if mode == "on":
        os.environ[SPAN_STORE_ENV] = str(store)
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = f"{sample_ratio:g}"
        os.environ["OTEL_TRACES_EXPORTER"] = "none"  # the store only, whatever the shell says
    else:
        os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class TracingOptions:
    load: Options  # the mirror bench's options, with trace_sampled_ratio set
    sample_ratio: float


@contextlib.contextmanager
def topology(o: TracingOptions, mode: str) -> Iterator[tuple[Processes, Path]]:
    """A work dir with `mode`'s environment; everything started in it is stopped after."""
    with tempfile.TemporaryDirectory(prefix=f"tracing-bench-{mode}-") as work_dir:
        store = Path(work_dir) / "spans.db"
        with tracing_mode(mode, store, o.sample_ratio):
            procs = Processes(Path(work_dir))
            try:
                yield procs, store
            finally:
                procs.stop_all()


def brokers(procs: Processes, o: Options) -> tuple[RunningBroker, RunningBroker]:
    return procs.broker("us", o.start_timeout_s), procs.broker("eu", o.start_timeout_s)


def mode_phases(o: TracingOptions, mode: str, round_: Round, status: Console) -> None:
    """Every phase of one mode, in one topology: produce, mirror, live, latency."""
    with topology(o, mode) as (procs, store):
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        started: list[RunningBroker] = []
        workers: list[Child] = []

        def produce() -> dict[str, Any]:
            started.extend(brokers(procs, o.load))
            us = started[0]
            make_topic(us, topic, o.load.partitions)
            before_s = cpu_seconds(us.process.pid) or 0.0
            result = dict(produce_step(procs, "produce", us, topic, o.load))
            used_s = (cpu_seconds(us.process.pid) or 0.0) - before_s
            result["us_cpu_us_per_record"] = used_s * 1e6 / o.load.records
            return result

        def mirror() -> dict[str, Any]:
            us, eu = started
            worker, result = mirror_phase(procs, us, eu, topic, o.load)
            workers.append(worker)
            return result

        def live() -> dict[str, Any]:
            us, eu = started
            return live_phase(procs, us, eu, workers[0], o.load)

        def capacity() -> dict[str, Any]:
            us, eu = started
            flat_out = lag_phase(procs, us, eu, workers[0], FLAT_OUT_RATE, o.load, o.load.records)
            if not flat_out["consumed_rate"]:
                raise PhaseError("the timing consumer saw no records flow")
            return {"rate": flat_out["consumed_rate"], "p99_ms": flat_out["p99_ms"]}

        def latency() -> dict[str, Any]:
            us, eu = started
            settle(status)  # the phases before wrote ~3 GB: their writeback is not its latency
            rate = o.load.lag_rate or o.load.lag_load * round_.phases[f"capacity-{mode}"]["rate"]
            result = lag_phase(procs, us, eu, workers[0], rate, o.load)
            if mode == "on":
                procs.stop_all()  # each process flushes its spans as it exits
                lag_topic = result["topic"]
                source, target = (lag_topic, us.port), (o.load.remote(lag_topic), eu.port)
                result.update(span_figures(replication_latencies_s(store, source, target)))
            return result

        for name, phase in (("produce", produce), ("mirror", mirror), ("live", live),
                            ("capacity", capacity), ("latency", latency)):  # fmt: skip
            if not run_phase(procs, round_, f"{name}-{mode}", phase, status):
                return


def live_phase(
    procs: Processes, us: RunningBroker, eu: RunningBroker, worker: Child, o: Options
) -> dict[str, Any]:
    """N records sent as fast as they go into us while the worker mirrors them to eu."""
    topic = f"bench-live-{uuid.uuid4().hex[:8]}"
    make_topic(us, topic, o.partitions)
    check = alive_check(worker, us, eu)
    pids = {"us": us.process.pid, "worker": worker.process.pid, "eu": eu.process.pid}
    before_s = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    before_calls = {name: syscalls(pid) for name, pid in pids.items()}
    producer = procs.start(
        "live-produce",
        client_argv(
            "produce",
            bootstrap=us.bootstrap,
            topic=topic,
            records=o.records,
            value_bytes=o.value_bytes,
            timeout_s=o.phase_timeout_s,
            **o.producer_options(),
        ),
    )
    watch = watch_end_offsets(
        eu, o.remote(topic), o.partitions, o.records, o.phase_timeout_s, o.stall_s, check
    )
    produced = client_result(producer, o.phase_timeout_s, check)
    used_us = {  # CPU per record, which others' load on the machine moves less than rates
        f"{name}_cpu_us_per_record": ((cpu_seconds(pid) or 0.0) - before_s[name]) * 1e6 / o.records
        for name, pid in pids.items()
    }
    calls = {  # how the processes batch: fewer, larger requests make fewer syscalls
        f"{name}_{kind}_per_1k_records": (syscalls(pid)[i] - before_calls[name][i])
        * 1e3
        / o.records
        for name, pid in pids.items()
        for i, kind in enumerate(("reads", "writes"))
    }
    first = watch.first_nonzero()
    assert first is not None
    (first_s, first_count), last_s = first, watch.samples[-1][0]
    steady_s = last_s - first_s
    return {
        "rate": (o.records - first_count) / steady_s if steady_s > 0 else produced["records_per_s"],
        "producer_records_per_s": produced["records_per_s"],
        **used_us,
        **calls,
        "cpu_us_per_record": sum(used_us.values()),
    }


def syscalls(pid: int) -> tuple[int, int]:
    """(read, write) system calls the process has made so far (/proc/<pid>/io)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


def span_figures(latencies_s: list[float]) -> dict[str, Any]:
    if not latencies_s:
        raise PhaseError("no sampled record has spans in both brokers")
    return {
        "span_records": len(latencies_s),
        "span_p50_ms": percentile_ms(latencies_s, 50),
        "span_p99_ms": percentile_ms(latencies_s, 99),
        "span_max_ms": max(latencies_s) * 1000,
    }


def settle(status: Console) -> None:
    """Let the machine go quiet before the next mode: a mode writes gigabytes of logs, and
    the kernel's writeback of them would otherwise land on the mode that runs next (seen as
    0.5-1 core of "other processes" in the second mode of most rounds)."""
    os.sync()
    deadline_s, busy_cores = time.monotonic() + SETTLE_MAX_S, 0.0
    while time.monotonic() < deadline_s:
        busy_s, _ = machine_cpu_s()
        time.sleep(SETTLE_SAMPLE_S)
        busy_cores = (machine_cpu_s()[0] - busy_s) / SETTLE_SAMPLE_S
        if busy_cores < SETTLE_BUSY_CORES:
            return
    status.print(f"  the machine stayed busy ({busy_cores:.2f} cores) for {SETTLE_MAX_S:g} s")


def bench_round(o: TracingOptions, index: int, status: Console) -> Round:
    round_ = Round()
    for mode in MODES if index % 2 == 0 else MODES[::-1]:
        settle(status)
        mode_phases(o, mode, round_, status)
    return round_


# --- figures and report ---------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str  # "phase.metric"; the phase gets "-off" / "-on"
    label: str
    unit: str
    compare: bool = True  # an on/off ratio is meaningful


FIGURES = (
    Figure("produce.records_per_s", "produce into us (broker)", "records/s"),
    Figure("produce.us_cpu_us_per_record", "produce: us broker CPU", "us/record"),
    Figure("mirror.steady_records_per_s", "mirror us -> eu, first -> last record", "records/s"),
    Figure("mirror.worker_cpu_s", "mirror: worker CPU (start-up included)", "s"),
    Figure("mirror.us_cpu_s", "mirror: us broker CPU", "s"),
    Figure("mirror.eu_cpu_s", "mirror: eu broker CPU", "s"),
    Figure("live.rate", "live: producer -> us -> mirror -> eu, on eu", "records/s"),
    Figure("live.us_cpu_us_per_record", "live: us broker CPU", "us/record"),
    Figure("live.worker_cpu_us_per_record", "live: worker CPU", "us/record"),
    Figure("live.eu_cpu_us_per_record", "live: eu broker CPU", "us/record"),
    Figure("live.cpu_us_per_record", "live: us + worker + eu CPU", "us/record"),
    Figure(
        "capacity.rate",
        "capacity: the latency set-up flat out, on eu (stamping producer, timing consumer)",
        "records/s",
    ),
    Figure(
        "latency.target_rate",
        "latency: offered load on us (half of capacity, or --lag-rate)",
        "records/s",
    ),
    Figure("latency.achieved_rate", "latency: achieved load on us", "records/s"),
    Figure("latency.p50_ms", "latency: produce() -> consumed on eu, p50", "ms"),
    Figure("latency.p99_ms", "latency: produce() -> consumed on eu, p99", "ms"),
    Figure("latency.span_p50_ms", "latency: accepted in us -> appended in eu, p50", "ms"),
    Figure("latency.span_p99_ms", "latency: accepted in us -> appended in eu, p99", "ms"),
    Figure("latency.span_records", "latency: sampled records timed by spans", "records"),
)


def median(rounds: list[Round], key: str, mode: str) -> float | None:
    phase, metric = key.split(".", 1)
    values = [
        float(value)
        for r in rounds
        if (value := r.phases.get(f"{phase}-{mode}", {}).get(metric)) is not None
    ]
    return statistics.median(values) if values else None


def ratio(rounds: list[Round], key: str) -> float | None:
    on, off = median(rounds, key, "on"), median(rounds, key, "off")
    return on / off if on is not None and off else None


def goals(rounds: list[Round]) -> list[Goal]:
    """Tracing's cost in throughput, and the replication latency as the metric defines it
    (accepted in us -> appended in eu, from the spans); produce() -> consumed on eu adds the
    producer's linger and the timing consumer's fetch wait and Python, and is a figure."""
    produce = ratio(rounds, "produce.records_per_s")
    mirror = ratio(rounds, "mirror.steady_records_per_s")
    live = ratio(rounds, "live.rate")
    span_p99 = median(rounds, "latency.span_p99_ms", "on")

    def at_least(label: str, value: float | None) -> Goal:
        met = None if value is None else value >= GOAL_THROUGHPUT_RATIO
        text = "-" if value is None else f"{value:.3f}x"
        return Goal(label, value, f">= {GOAL_THROUGHPUT_RATIO:.2f}x", met, text)

    def under(label: str, value: float | None) -> Goal:
        met = None if value is None else value < GOAL_P99_MS
        text = "-" if value is None else f"{value:.1f} ms"
        return Goal(label, value, f"< {GOAL_P99_MS:.0f} ms", met, text)

    return [
        at_least("produce throughput, tracing on / off", produce),
        at_least("mirror throughput (catching up), tracing on / off", mirror),
        at_least("live throughput (producer, brokers, mirror), on / off", live),
        under("p99 accepted in us -> appended in eu (on, spans)", span_p99),
    ]


def rows(rounds: list[Round]) -> list[tuple[str, str, str, str, str]]:
    out = []
    for f in FIGURES:
        off, on = median(rounds, f.key, "off"), median(rounds, f.key, "on")
        compared = ratio(rounds, f.key) if f.compare else None
        shown = "-" if compared is None else f"{compared:.3f}"
        out.append((f.label, f.unit, format_value(off), format_value(on), shown))
    return out


def markdown_block(command: str, machine: dict[str, Any], rounds: list[Round]) -> list[str]:
    lines = [
        f"`{command}`, {machine_summary(machine)}, {machine['date_utc']}, "
        f"median of {len(rounds)} round{'s' if len(rounds) != 1 else ''}",
        "",
        "| figure | unit | tracing off | tracing on (1 %) | on / off |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows(rounds)]
    lines += ["", "| goal | measured | target | result |", "|---|---|---|---|"]
    lines += [f"| {g.label} | {g.text} | {g.goal} | {verdict(g.met)} |" for g in goals(rounds)]
    return lines


def print_report(
    console: Console, command: str, machine: dict[str, Any], rounds: list[Round], title: str
) -> None:
    console.print(f"[bold]machine[/]: {machine_summary(machine)}")
    console.print(f"[bold]date[/]: {machine['date_utc']}")
    table = Table(title=title)
    for column in ("figure", "unit", "tracing off", "tracing on", "on / off"):
        table.add_column(column, justify="left" if column in ("figure", "unit") else "right")
    for row in rows(rounds):
        table.add_row(*row)
    console.print(table)
    goal_table = Table(title="goals")
    for column in ("goal", "measured", "target", "result"):
        goal_table.add_column(column)
    for g in goals(rounds):
        style = "green" if g.met else "red"
        goal_table.add_row(g.label, g.text, g.goal, f"[{style}]{verdict(g.met)}[/]")
    console.print(goal_table)
    for index, r in enumerate(rounds, 1):
        for phase, error in r.errors.items():
            console.print(f"round {index} / {phase}: {error}", style="red", markup=False)
    console.print("\nmarkdown for docs/benchmarks.md:")
    for line in markdown_block(command, machine, rounds):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def results_json(
    command: str, machine: dict[str, Any], options: dict[str, Any], rounds: list[Round]
) -> dict[str, Any]:
    return {
        "command": command,
        "machine": machine,
        "options": options,
        "median": {
            f"{f.key}-{mode}": median(rounds, f.key, mode) for f in FIGURES for mode in MODES
        },
        "goals": [
            {"label": g.label, "value": g.value, "goal": g.goal, "met": g.met}
            for g in goals(rounds)
        ],
        "rounds": [{"phases": r.phases, "errors": r.errors} for r in rounds],
    }


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracing_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--records", type=positive_int, default=DEFAULT_RECORDS, help="records per phase"
    )
    parser.add_argument("--partitions", type=positive_int, default=8)
    parser.add_argument("--value-bytes", type=positive_int, default=1024, help="value size")
    parser.add_argument(
        "--repeat", type=positive_int, default=DEFAULT_ROUNDS, help="rounds; medians shown"
    )
    parser.add_argument("--sample-ratio", type=positive_float, default=0.01)
    parser.add_argument("--lag-seconds", type=positive_float, default=20.0)
    parser.add_argument(
        "--lag-load", type=positive_float, default=0.5, help="latency load, x the capacity"
    )
    parser.add_argument("--lag-rate", type=positive_float, help="latency load in records/s")
    parser.add_argument(
        "--remote-topics",
        action="store_true",
        help="prefixed remote topics written with Produce instead of mirror topics",
    )
    parser.add_argument("--json", action="store_true", help="print JSON results only")
    parser.add_argument("--start-timeout-s", type=positive_float, default=30.0)
    parser.add_argument("--phase-timeout-s", type=positive_float, default=300.0)
    parser.add_argument("--stall-s", type=positive_float, default=60.0)
    args = parser.parse_args(argv)
    if args.sample_ratio > 1:
        parser.error("--sample-ratio is a share: 0 < ratio <= 1")
    if args.value_bytes < 8:
        parser.error("--value-bytes must be >= 8 (the latency phase stamps 8 bytes)")
    return args


def options(args: argparse.Namespace) -> TracingOptions:
    load = Options(
        records=args.records,
        partitions=args.partitions,
        value_bytes=args.value_bytes,
        lag_seconds=args.lag_seconds,
        lag_load=args.lag_load,
        lag_rate=args.lag_rate,
        start_timeout_s=args.start_timeout_s,
        phase_timeout_s=args.phase_timeout_s,
        stall_s=args.stall_s,
        mirror_topics=not args.remote_topics,
    )
    return TracingOptions(replace(load, trace_sampled_ratio=args.sample_ratio), args.sample_ratio)


def command_line(argv: list[str]) -> str:
    return "make bench" if not argv else f"python -m bench.tracing_bench {shlex.join(argv)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    exit_on_sigterm()
    status = Console(stderr=True, highlight=False)
    machine = machine_info()
    warn_if_busy(machine, status)
    o = options(args)
    rounds = []
    for index in range(args.repeat):
        status.print(f"round {index + 1}/{args.repeat}")
        rounds.append(bench_round(o, index, status))
    command = command_line(argv)
    results = results_json(command, machine, vars(args), rounds)
    saved = save_results(results, "tracing-bench")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        target = "remote topics (Produce)" if args.remote_topics else "mirror topics (LinkAppend)"
        title = (
            f"tracing: {args.records:,} x {args.value_bytes} B records, {args.partitions} "
            f"partitions, acks=all, idempotent, {target}, sampling {args.sample_ratio:g}"
        )
        print_report(Console(), command, machine, rounds, title)
        status.print(f"results saved to {saved.relative_to(REPO_ROOT)}")
    return 1 if any(r.errors for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
