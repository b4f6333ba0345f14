"""`make bench-mirror`: how fast a `regionlink worker` mirrors, against two baselines, in one run.

Per round, with the same workload (N records of B bytes, P partitions):

1. direct ingest: an idempotent confluent-kafka producer writes N records into a fresh
   broker "eu" (the most the target takes);
2. mirror: N records pre-loaded into a fresh "us"; a fresh "eu" and a worker start; timed
   from starting the worker until eu's `us.<topic>` end offsets add up to N;
3. end-to-end lag: with that worker still running, a producer on us at half the mirror
   throughput stamps each value with its send time; a consumer on eu times every record;
4. naive loop: a Python consumer on us + producer on eu, poll() -> produce() per message,
   over the same pre-loaded records into another eu topic.

Each client runs in its own process (bench.mirror_clients). Every wait is bounded and every
process started is stopped (SIGTERM, then SIGKILL). Results go to the terminal, to
bench-results/mirror-bench-<date>.json, and with --json to stdout as JSON only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from bench.broker_bench import exit_on_sigterm, positive_int, warn_if_busy
from bench.brokers import (
    REPO_ROOT,
    BrokerSpec,
    BrokerStartError,
    RunningBroker,
    launch,
    ours_argv,
    read_tail,
    stop_process,
)
from bench.machine import CLK_TCK, machine_info, machine_summary, process_cpu_s
from bench.mirror_clients import LAG_FETCH_WAIT_MS, WARMUP_KEY
from bench.report import save_results
from bench.scenarios import ScenarioError, create_topic
from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.data import LATEST, list_offsets

T = TypeVar("T")
POLL_S = 0.02  # end-offset polling period while timing the mirror
TRAIL_STEP_S = 0.1  # spacing of the (time, records on eu) trail kept in the JSON
CLIENT_EXIT_SLACK_S = 30.0
SOURCE_ALIAS = "us"
GOAL_MIRROR_OVER_DIRECT = 0.8
GOAL_MIRROR_OVER_NAIVE = 5.0
GOAL_LAG_P99_MS = 100.0


class PhaseError(Exception):
    """A phase failed or ran out of time; the message is one readable line."""


# --- processes ------------------------------------------------------------------------


@dataclass
class Child:
    """A process we started in its own session; stdout and stderr go to files."""

    name: str
    process: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    stopped: bool = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def out_text(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self) -> str:
        return read_tail(self.err_path) or read_tail(self.out_path) or "no output"

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            stop_process(self.process)


@dataclass
class Processes:
    """Everything started in one round, stopped in reverse order by `stop_all()`."""

    work_dir: Path
    children: list[Child] = field(default_factory=list)
    brokers: list[RunningBroker] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Child:
        out_path = self.work_dir / f"{name}.out"
        err_path = self.work_dir / f"{name}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=REPO_ROOT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        child = Child(name, process, out_path, err_path)
        self.children.append(child)
        return child

    def broker(self, name: str, timeout_s: float) -> RunningBroker:
        try:
            broker = launch(BrokerSpec(name, ours_argv), self.work_dir, timeout_s)
        except BrokerStartError as exc:
            raise PhaseError(f"broker {name}: {exc}") from exc
        self.brokers.append(broker)
        return broker

    def stop_named(self, name: str) -> None:
        for child in self.children:
            if child.name == name:
                child.stop()

    def stop_broker(self, broker: RunningBroker) -> None:
        if broker in self.brokers:
            self.brokers.remove(broker)
            broker.stop()

    def cpu_s(self) -> float:
        """CPU seconds used so far by this harness and every process it started."""
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):  # children once reaped
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        live = [c.process for c in self.children] + [b.process for b in self.brokers]
        for process in live:
            if process.returncode is None:  # not reaped yet (a zombie still has /proc)
                total += cpu_seconds(process.pid) or 0.0
        return total

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        for broker in reversed(self.brokers):
            broker.stop()
        self.brokers.clear()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, None once it is gone."""
    try:
        return process_cpu_s(pid)
    except (OSError, IndexError):
        return None


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of all cores since boot, from the first line of /proc/stat."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


@dataclass(frozen=True)
class CpuMark:
    """A point in time: wall clock, machine busy/steal CPU, and CPU used by us."""

    wall_s: float
    busy_s: float
    steal_s: float
    ours_s: float

    @classmethod
    def now(cls, procs: Processes) -> CpuMark:
        busy_s, steal_s = machine_cpu_s()
        return cls(time.perf_counter(), busy_s, steal_s, procs.cpu_s())

    def since(self, start: CpuMark) -> dict[str, float]:
        """Average cores busy between `start` and this mark: all, ours, the rest, stolen."""
        wall_s = max(self.wall_s - start.wall_s, 1e-9)
        busy = (self.busy_s - start.busy_s) / wall_s
        ours = (self.ours_s - start.ours_s) / wall_s
        return {
            "phase_wall_s": wall_s,
            "machine_busy_cores": busy,
            "our_processes_cores": ours,
            "others_cores": max(0.0, busy - ours),
            "steal_cores": (self.steal_s - start.steal_s) / wall_s,
        }


def client_argv(step: str, **options: Any) -> list[str]:
    argv = [sys.executable, "-m", "bench.mirror_clients", step]
    argv += [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    return argv


def alive_check(*watched: Child | RunningBroker) -> Callable[[], None]:
    """A check that raises PhaseError naming the first of `watched` that has exited."""

    def check() -> None:
        for process in watched:
            if not process.alive():
                tail = process.tail() if isinstance(process, Child) else process.log_tail()
                code = process.process.returncode
                raise PhaseError(f"{process.name} exited {code}: {tail or 'no output'}")

    return check


def client_result(
    child: Child, timeout_s: float, check: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Wait (bounded) for a client step and return its JSON line; PhaseError if it failed.

    `check` runs while waiting (e.g. the brokers and worker are still alive).
    """
    deadline_s = time.perf_counter() + timeout_s + CLIENT_EXIT_SLACK_S
    while child.process.poll() is None:
        if time.perf_counter() > deadline_s:
            child.stop()
            raise PhaseError(
                f"{child.name} did not finish within {timeout_s + CLIENT_EXIT_SLACK_S:g} s"
            )
        if check is not None:
            try:
                check()
            except PhaseError:
                child.stop()
                raise
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=0.1)
    lines = child.out_text().strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise PhaseError(
            f"{child.name} exited {child.process.returncode}: {child.tail()}"
        ) from None
    if not result.get("ok"):
        detail = result.get("first_error") or "short count (timed out)"
        raise PhaseError(f"{child.name}: {result.get('records', 0):,} records; {detail}")
    return result


def wait_for_line(child: Child, text: str, timeout_s: float) -> float:
    """Wait until `child` prints a line containing `text`; returns perf_counter then."""
    deadline_s = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline_s:
        if any(text in line for line in child.out_text().splitlines()):
            return time.perf_counter()
        if not child.alive():
            raise PhaseError(f"{child.name} exited {child.process.returncode}: {child.tail()}")
        time.sleep(0.01)
    raise PhaseError(f"{child.name} printed no {text!r} line within {timeout_s:.0f} s")


def make_topic(broker: RunningBroker, topic: str, partitions: int) -> None:
    try:
        create_topic(broker.bootstrap, topic, partitions)
    except ScenarioError as exc:
        raise PhaseError(f"{broker.name}: {exc}") from exc


# --- watching end offsets -------------------------------------------------------------


@dataclass
class Watch:
    """End-offset samples of one topic: (perf_counter, sum of end offsets)."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def first_nonzero(self) -> tuple[float, int] | None:
        return next(((t, n) for t, n in self.samples if n > 0), None)

    def trail(self, since_s: float) -> list[tuple[float, int]]:
        """(seconds since `since_s`, records) at most every TRAIL_STEP_S, last sample kept."""
        kept: list[tuple[float, int]] = []
        for t, n in self.samples:
            if not kept or t - since_s - kept[-1][0] >= TRAIL_STEP_S or t == self.samples[-1][0]:
                kept.append((round(t - since_s, 3), n))
        return kept


async def end_offset_sum(client: KafkaClient, topic: str, partitions: int) -> int:
    """Sum of the end offsets of `topic`'s partitions; 0 while the topic does not exist."""
    by_leader: dict[int, dict[tuple[str, int], int]] = {}
    try:
        for p in range(partitions):
            leader = await client.leader_for(topic, p)
            by_leader.setdefault(leader, {})[(topic, p)] = LATEST
    except KafkaError:
        return 0
    total = 0
    for leader, wanted in by_leader.items():
        for (_, p), (error, offset) in (await list_offsets(client, leader, wanted)).items():
            if error:
                raise PhaseError(f"ListOffsets {topic}[{p}] on eu: error code {error}")
            total += offset
    return total


async def _poll_until(
    client: KafkaClient,
    topic: str,
    partitions: int,
    goal: int,
    timeout_s: float,
    stall_s: float,
    check: Callable[[], None],
) -> Watch:
    watch = Watch()
    started_s = time.perf_counter()
    last_progress_s = started_s
    while True:
        check()
        count = await end_offset_sum(client, topic, partitions)
        now_s = time.perf_counter()
        if count != watch.count:
            last_progress_s = now_s
        watch.samples.append((now_s, count))
        if count >= goal:
            return watch
        if now_s - started_s > timeout_s:
            raise PhaseError(f"{topic} on eu has {count:,}/{goal:,} records after {timeout_s:g} s")
        if count and now_s - last_progress_s > stall_s:
            raise PhaseError(
                f"{topic} on eu stalled at {count:,}/{goal:,} records for {stall_s:g} s"
            )
        await anyio.sleep(POLL_S)


async def _with_client(port: int, body: Callable[[KafkaClient], Awaitable[T]]) -> T:
    """`body` with our client on 127.0.0.1:port; its failure leaves as one PhaseError."""
    outcome: list[T] = []
    failure: PhaseError | None = None
    async with KafkaClient([("127.0.0.1", port)], client_id="mirror-bench") as client:
        try:
            outcome.append(await body(client))
        except PhaseError as exc:  # raised outside: the client's task group would wrap it
            failure = exc
        except (KafkaError, KafkaConnectionError) as exc:
            failure = PhaseError(f"client on port {port}: {exc}")
    if failure is not None:
        raise failure
    return outcome[0]


def on_eu(eu: RunningBroker, body: Callable[[KafkaClient], Awaitable[T]]) -> T:
    try:
        return anyio.run(_with_client, eu.port, body)
    except (KafkaError, KafkaConnectionError) as exc:
        raise PhaseError(f"client on eu: {exc}") from exc
    except ExceptionGroup as group:
        raise PhaseError(f"client on eu: {group.exceptions[0]}") from group


def watch_end_offsets(
    eu: RunningBroker,
    topic: str,
    partitions: int,
    goal: int,
    timeout_s: float,
    stall_s: float,
    check: Callable[[], None],
) -> Watch:
    """Poll eu's end offsets of `topic` every POLL_S until they add up to `goal` (bounded)."""

    async def body(client: KafkaClient) -> Watch:
        return await _poll_until(client, topic, partitions, goal, timeout_s, stall_s, check)

    return on_eu(eu, body)


def final_count(eu: RunningBroker, topic: str, partitions: int) -> int:
    async def body(client: KafkaClient) -> int:
        return await end_offset_sum(client, topic, partitions)

    return on_eu(eu, body)


# --- phases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    records: int
    partitions: int
    value_bytes: int
    lag_seconds: float
    lag_load: float
    lag_rate: float | None
    start_timeout_s: float
    phase_timeout_s: float
    stall_s: float
    mirror_topics: bool = False  # identity naming onto a regionlink target: LinkAppend
    trace_sampled_ratio: float | None = None  # records carry traceparents (tracing bench)

    def remote(self, topic: str) -> str:
        """The topic's name on eu: the same for mirror topics, else MM2's prefix."""
        return topic if self.mirror_topics else f"{SOURCE_ALIAS}.{topic}"

    def producer_options(self) -> dict[str, float]:
        """What the produce and lag-produce steps are told besides the load itself."""
        ratio = self.trace_sampled_ratio
        return {} if ratio is None else {"trace_sampled_ratio": ratio}


def produce_step(procs: Processes, name: str, broker: RunningBroker, topic: str, o: Options) -> Any:
    child = procs.start(
        name,
        client_argv(
            "produce",
            bootstrap=broker.bootstrap,
            topic=topic,
            records=o.records,
            value_bytes=o.value_bytes,
            timeout_s=o.phase_timeout_s,
            **o.producer_options(),
        ),
    )
    return client_result(child, o.phase_timeout_s, alive_check(broker))


def direct_phase(procs: Processes, o: Options) -> dict[str, Any]:
    """Idempotent producer straight into a fresh eu; its broker is stopped afterwards."""
    eu = procs.broker("eu-direct", o.start_timeout_s)
    topic = f"direct-{uuid.uuid4().hex[:8]}"
    make_topic(eu, topic, o.partitions)
    result = produce_step(procs, "direct-produce", eu, topic, o)
    procs.stop_broker(eu)
    return dict(result)


def worker_config(us: RunningBroker, eu: RunningBroker, mirror_topics: bool) -> str:
    link = 'kind = "regionlink"\n' if mirror_topics else ""
    naming = 'naming = "identity"\n' if mirror_topics else ""
    return (
        f'[clusters.{SOURCE_ALIAS}]\nbootstrap = "{us.bootstrap}"\n'
        f'[clusters.eu]\nbootstrap = "{eu.bootstrap}"\n{link}'
        f'[[flows]]\nsource = "{SOURCE_ALIAS}"\ntarget = "eu"\ntopics = ["bench-.*"]\n'
        f"refresh_topics_interval_s = 0.5\n{naming}"
    )


def start_worker(procs: Processes, us: RunningBroker, eu: RunningBroker, o: Options) -> Child:
    config = procs.work_dir / "mirror.toml"
    config.write_text(worker_config(us, eu, o.mirror_topics))
    script = Path(sys.executable).parent / "regionlink"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "mirror.cli"]
    return procs.start(
        "worker", [*prefix, "worker", "--config", str(config), "--worker-id", "bench"]
    )


def mirror_phase(
    procs: Processes, us: RunningBroker, eu: RunningBroker, topic: str, o: Options
) -> tuple[Child, dict[str, Any]]:
    """Start the worker and time it until eu holds every pre-loaded record."""
    brokers_cpu = {b.name: cpu_seconds(b.process.pid) for b in (us, eu)}
    started_s = time.perf_counter()
    worker = start_worker(procs, us, eu, o)
    ready_s: list[float] = []
    running = alive_check(worker, us, eu)

    def check() -> None:
        running()
        if not ready_s and "ready" in worker.out_text():
            ready_s.append(time.perf_counter())

    remote = o.remote(topic)
    watch = watch_end_offsets(
        eu, remote, o.partitions, o.records, o.phase_timeout_s, o.stall_s, check
    )
    done_s = watch.samples[-1][0]
    worker_cpu = cpu_seconds(worker.process.pid)
    cpu = {
        name: (now - before) if now is not None and before is not None else None
        for name, before, now in (
            (b.name, brokers_cpu[b.name], cpu_seconds(b.process.pid)) for b in (us, eu)
        )
    }
    first = watch.first_nonzero()
    assert first is not None
    first_s, first_count = first
    elapsed_s = done_s - started_s
    steady_s = done_s - first_s
    time.sleep(0.5)
    settled = final_count(eu, remote, o.partitions)
    if settled != o.records:
        raise PhaseError(f"{remote} on eu settled at {settled:,} records, not {o.records:,}")
    return worker, {
        "records": o.records,
        "elapsed_s": elapsed_s,
        "records_per_s": o.records / elapsed_s,
        "mb_per_s": o.records * o.value_bytes / 1e6 / elapsed_s,
        "ready_s": ready_s[0] - started_s if ready_s else None,
        "first_record_s": first_s - started_s,
        "first_sample_records": first_count,
        "steady_records_per_s": (o.records - first_count) / steady_s if steady_s > 0 else None,
        "worker_cpu_s": worker_cpu,
        "us_cpu_s": cpu["us"],
        "eu_cpu_s": cpu["eu"],
        "samples": len(watch.samples),
        "trail": watch.trail(started_s),
    }


def warm_up(us: RunningBroker, topic: str, partitions: int, timeout_s: float) -> None:
    """One keyed record per partition, so the lag consumer knows every copier is running."""
    producer = Producer({"bootstrap.servers": us.bootstrap, "acks": "all"})
    for p in range(partitions):
        producer.produce(topic, key=WARMUP_KEY, value=b"", partition=p)
    if producer.flush(timeout_s):
        raise PhaseError(f"warm-up records to {topic} on us not acknowledged in {timeout_s} s")


def lag_phase(
    procs: Processes,
    us: RunningBroker,
    eu: RunningBroker,
    worker: Child,
    rate: float,
    o: Options,
    records: int | None = None,
) -> dict[str, Any]:
    """Paced producer on us, consumer on eu's remote topic; latency of every record.
    `records` (default: `rate` x --lag-seconds) with a rate no producer reaches runs it
    flat out: the set-up's maximum load."""
    topic = f"bench-lag-{uuid.uuid4().hex[:8]}"
    remote = o.remote(topic)
    make_topic(us, topic, o.partitions)
    warm_up(us, topic, o.partitions, o.start_timeout_s)

    check = alive_check(worker, us, eu)
    watch_end_offsets(eu, remote, o.partitions, o.partitions, o.start_timeout_s, 1e9, check)
    records = records or max(1, round(rate * o.lag_seconds))
    timeout_s = o.lag_seconds + o.phase_timeout_s
    consumer = procs.start(
        "lag-consume",
        client_argv(
            "lag-consume",
            bootstrap=eu.bootstrap,
            topic=remote,
            records=records,
            timeout_s=timeout_s,
        ),
    )
    wait_for_line(consumer, "ready", o.start_timeout_s)
    producer = procs.start(
        "lag-produce",
        client_argv(
            "lag-produce",
            bootstrap=us.bootstrap,
            topic=topic,
            records=records,
            rate=rate,
            value_bytes=o.value_bytes,
            timeout_s=timeout_s,
            **o.producer_options(),
        ),
    )
    produced = client_result(producer, timeout_s, check)
    consumed = client_result(consumer, timeout_s, check)
    return {
        "topic": topic,
        "records": records,
        "target_rate": rate,
        "achieved_rate": produced["achieved_rate"],
        "consumed_rate": consumed["records_per_s"],
        "worst_behind_schedule_ms": produced["worst_behind_schedule_ms"],
        "p50_ms": consumed["p50_ms"],
        "p99_ms": consumed["p99_ms"],
        "p999_ms": consumed["p999_ms"],
        "max_ms": consumed["max_ms"],
        "fetch_wait_max_ms": consumed["fetch_wait_max_ms"],
        "per_second_max_ms": consumed["per_second_max_ms"],
        "producer_p99_ack_ms": produced["p99_ack_latency_ms"],
    }


def naive_phase(
    procs: Processes, us: RunningBroker, eu: RunningBroker, topic: str, o: Options
) -> dict[str, Any]:
    target_topic = f"naive.{topic}"
    make_topic(eu, target_topic, o.partitions)
    child = procs.start(
        "naive",
        client_argv(
            "naive",
            bootstrap=us.bootstrap,
            target_bootstrap=eu.bootstrap,
            topic=topic,
            target_topic=target_topic,
            records=o.records,
            timeout_s=o.phase_timeout_s,
            started_at_ns=time.time_ns(),
        ),
    )
    return dict(client_result(child, o.phase_timeout_s, alive_check(us, eu)))


@dataclass
class Round:
    """One round's figures per phase, and the error of each phase that failed."""

    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def run_phase(
    procs: Processes,
    round_: Round,
    name: str,
    run: Callable[[], dict[str, Any]],
    status: Console,
) -> bool:
    """Run one phase into `round_`, with how busy the machine was meanwhile."""
    status.print(f"  {name} ...")
    start = CpuMark.now(procs)
    try:
        result = run()
    except PhaseError as exc:
        round_.errors[name] = str(exc)
        status.print(f"  {name} failed: {exc}", style="red", markup=False, highlight=False)
        return False
    cpu = CpuMark.now(procs).since(start)
    round_.phases[name] = {**result, **cpu}
    status.print(
        f"  {name} done in {cpu['phase_wall_s']:.1f} s "
        f"(other processes busy {cpu['others_cores']:.2f} cores)"
    )
    return True


def lag_rate(round_: Round, o: Options) -> float:
    if o.lag_rate is not None:
        return o.lag_rate
    # Half of the maximum load: the steady mirror rate (start-up is latency, not throughput).
    mirror = round_.phases["mirror"]
    rate = mirror.get("steady_records_per_s") or mirror["records_per_s"]
    return float(rate) * o.lag_load


def bench_round(o: Options, status: Console) -> Round:
    """Every phase once, with fresh brokers; everything started is stopped at the end."""
    round_ = Round()
    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as work_dir:
        procs = Processes(Path(work_dir))
        try:
            run_phase(procs, round_, "direct", lambda: direct_phase(procs, o), status)
            source_phases(procs, round_, o, status)
        finally:
            procs.stop_all()
    return round_


def source_phases(procs: Processes, round_: Round, o: Options, status: Console) -> None:
    """Pre-load us, then mirror, lag (same worker) and the naive loop (same records)."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    brokers: list[RunningBroker] = []

    def preload() -> dict[str, Any]:
        brokers.append(procs.broker("us", o.start_timeout_s))
        brokers.append(procs.broker("eu", o.start_timeout_s))
        make_topic(brokers[0], topic, o.partitions)
        return dict(produce_step(procs, "preload", brokers[0], topic, o))

    if not run_phase(procs, round_, "preload", preload, status):
        return
    us, eu = brokers
    workers: list[Child] = []

    def mirror() -> dict[str, Any]:
        worker, result = mirror_phase(procs, us, eu, topic, o)
        workers.append(worker)
        return result

    if run_phase(procs, round_, "mirror", mirror, status):
        rate = lag_rate(round_, o)
        run_phase(
            procs, round_, "lag", lambda: lag_phase(procs, us, eu, workers[0], rate, o), status
        )
    procs.stop_named("worker")
    run_phase(procs, round_, "naive", lambda: naive_phase(procs, us, eu, topic, o), status)


# --- figures and report ---------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str  # "phase.metric"
    label: str
    unit: str


FIGURES = (
    Figure("direct.records_per_s", "target direct ingest", "records/s"),
    Figure("direct.mb_per_s", "target direct ingest", "MB/s"),
    Figure("preload.records_per_s", "source pre-load (same producer, us)", "records/s"),
    Figure("mirror.records_per_s", "mirror, worker start -> last record on eu", "records/s"),
    Figure("mirror.mb_per_s", "mirror, worker start -> last record on eu", "MB/s"),
    Figure("mirror.ready_s", "mirror: worker printed 'ready'", "s after start"),
    Figure("mirror.first_record_s", "mirror: first record on eu", "s after start"),
    Figure("mirror.steady_records_per_s", "mirror, first -> last record on eu", "records/s"),
    Figure("mirror.worker_cpu_s", "mirror: worker CPU time (start-up included)", "s"),
    Figure("mirror.us_cpu_s", "mirror: us broker CPU time", "s"),
    Figure("mirror.eu_cpu_s", "mirror: eu broker CPU time", "s"),
    Figure("naive.records_per_s", "naive loop, process start -> last ack", "records/s"),
    Figure("naive.first_record_s", "naive loop: first record consumed", "s after start"),
    Figure("naive.steady_records_per_s", "naive loop, first record -> last ack", "records/s"),
    Figure("lag.target_rate", "lag: offered load on us", "records/s"),
    Figure("lag.achieved_rate", "lag: achieved load on us", "records/s"),
    Figure("lag.p50_ms", "lag: end-to-end p50", "ms"),
    Figure("lag.p99_ms", "lag: end-to-end p99", "ms"),
    Figure("lag.max_ms", "lag: end-to-end max", "ms"),
    Figure("direct.others_cores", "direct: other processes busy", "cores"),
    Figure("mirror.others_cores", "mirror: other processes busy", "cores"),
    Figure("lag.others_cores", "lag: other processes busy", "cores"),
    Figure("naive.others_cores", "naive: other processes busy", "cores"),
)


def median(rounds: list[Round], key: str) -> float | None:
    phase, metric = key.split(".", 1)
    values = [
        float(value) for r in rounds if (value := r.phases.get(phase, {}).get(metric)) is not None
    ]
    return statistics.median(values) if values else None


def divide(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass(frozen=True)
class Goal:
    label: str
    value: float | None
    goal: str
    met: bool | None
    text: str


def goals(rounds: list[Round]) -> list[Goal]:
    # Rates compare steady states: first record to last for the mirror and the naive loop
    # (their process start-up is reported separately), first produce() to flush() for the
    # direct producer, which has no start-up to speak of.
    mirror = median(rounds, "mirror.steady_records_per_s")
    over_direct = divide(mirror, median(rounds, "direct.records_per_s"))
    over_naive = divide(mirror, median(rounds, "naive.steady_records_per_s"))
    p99 = median(rounds, "lag.p99_ms")

    def goal(label: str, value: float | None, target: str, met: bool | None, text: str) -> Goal:
        return Goal(label, value, target, met if value is not None else None, text)

    return [
        goal(
            "mirror / direct ingest (steady state)",
            over_direct,
            f">= {GOAL_MIRROR_OVER_DIRECT:.1f}x",
            over_direct is not None and over_direct >= GOAL_MIRROR_OVER_DIRECT,
            f"{over_direct:.2f}x" if over_direct is not None else "-",
        ),
        goal(
            "mirror / naive loop (steady states)",
            over_naive,
            f">= {GOAL_MIRROR_OVER_NAIVE:.0f}x",
            over_naive is not None and over_naive >= GOAL_MIRROR_OVER_NAIVE,
            f"{over_naive:.2f}x" if over_naive is not None else "-",
        ),
        goal(
            "end-to-end lag p99 at half load",
            p99,
            f"< {GOAL_LAG_P99_MS:.0f} ms",
            p99 is not None and p99 < GOAL_LAG_P99_MS,
            f"{p99:.1f} ms" if p99 is not None else "-",
        ),
    ]


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "MISSED"


def print_report(
    console: Console, command: str, machine: dict[str, Any], rounds: list[Round], title: str
) -> None:
    console.print(f"[bold]machine[/]: {machine_summary(machine)}")
    console.print(f"[bold]date[/]: {machine['date_utc']}")
    console.print(
        f"[bold]client[/]: python {machine['python']}, "
        f"confluent-kafka {machine['confluent_kafka']}, librdkafka {machine['librdkafka']}"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("unit")
    table.add_column(f"median of {len(rounds)}", justify="right")
    for figure in FIGURES:
        table.add_row(figure.label, figure.unit, format_value(median(rounds, figure.key)))
    console.print(table)
    goal_table = Table(title="goals")
    for column in ("ratio / figure", "measured", "goal", "result"):
        goal_table.add_column(column)
    for g in goals(rounds):
        style = "green" if g.met else "red"
        goal_table.add_row(g.label, g.text, g.goal, f"[{style}]{verdict(g.met)}[/]")
    console.print(goal_table)
    console.print(
        f"lag: the eu consumer uses fetch.wait.max.ms={LAG_FETCH_WAIT_MS}, so up to "
        f"{LAG_FETCH_WAIT_MS} ms of each figure can be the consumer's own fetch wait; the "
        "producer's linger.ms=5 is included too (latency is receive time - produce() time)."
    )
    for index, r in enumerate(rounds, 1):
        for phase, error in r.errors.items():
            console.print(f"round {index} / {phase}: {error}", style="red", markup=False)
    console.print("\nmarkdown for docs/benchmarks.md:")
    for line in markdown_block(command, machine, rounds):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def markdown_block(command: str, machine: dict[str, Any], rounds: list[Round]) -> list[str]:
    """The docs/benchmarks.md tables for this run: every figure, then the goals."""
    lines = [
        f"`{command}`, {machine_summary(machine)}, {machine['date_utc']}, "
        f"median of {len(rounds)} round{'s' if len(rounds) != 1 else ''}",
        "",
        "| figure | unit | measured |",
        "|---|---|---|",
    ]
    lines += [f"| {f.label} | {f.unit} | {format_value(median(rounds, f.key))} |" for f in FIGURES]
    lines += ["", "| ratio / figure | measured | goal | result |", "|---|---|---|---|"]
    lines += [f"| {g.label} | {g.text} | {g.goal} | {verdict(g.met)} |" for g in goals(rounds)]
    return lines


def results_json(
    command: str, machine: dict[str, Any], options: dict[str, Any], rounds: list[Round]
) -> dict[str, Any]:
    return {
        "command": command,
        "machine": machine,
        "options": options,
        "median": {f.key: median(rounds, f.key) for f in FIGURES},
        "goals": [
            {"label": g.label, "value": g.value, "goal": g.goal, "met": g.met}
            for g in goals(rounds)
        ],
        "rounds": [{"phases": r.phases, "errors": r.errors} for r in rounds],
    }


# --- command line ---------------------------------------------------------------------


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mirror_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=positive_int, default=200_000, help="records per phase")
    parser.add_argument("--partitions", type=positive_int, default=8)
    parser.add_argument("--value-bytes", type=positive_int, default=1024, help="value size")
    parser.add_argument("--repeat", type=positive_int, default=3, help="rounds; medians shown")
    parser.add_argument("--json", action="store_true", help="print JSON results only")
    parser.add_argument("--lag-seconds", type=positive_float, default=20.0)
    parser.add_argument(
        "--lag-load", type=positive_float, default=0.5, help="lag load, x mirror throughput"
    )
    parser.add_argument("--lag-rate", type=positive_float, help="lag load in records/s instead")
    parser.add_argument(
        "--mirror-topics",
        action="store_true",
        help="identity naming onto a regionlink target: mirror topics written with LinkAppend",
    )
    parser.add_argument("--start-timeout-s", type=positive_float, default=30.0)
    parser.add_argument("--phase-timeout-s", type=positive_float, default=300.0)
    parser.add_argument(
        "--stall-s", type=positive_float, default=60.0, help="fail if the mirror makes no progress"
    )
    args = parser.parse_args(argv)
    if args.value_bytes < 8:
        parser.error("--value-bytes must be >= 8 (the lag phase stamps 8 bytes)")
    return args


def command_line(argv: list[str]) -> str:
    return "make bench-mirror" if not argv else f"python -m bench.mirror_bench {shlex.join(argv)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    exit_on_sigterm()
    options = Options(
        records=args.records,
        partitions=args.partitions,
        value_bytes=args.value_bytes,
        lag_seconds=args.lag_seconds,
        lag_load=args.lag_load,
        lag_rate=args.lag_rate,
        start_timeout_s=args.start_timeout_s,
        phase_timeout_s=args.phase_timeout_s,
        stall_s=args.stall_s,
        mirror_topics=args.mirror_topics,
    )
    status = Console(stderr=True, highlight=False)
    machine = machine_info()
    warn_if_busy(machine, status)
    rounds = []
    for index in range(args.repeat):
        status.print(f"round {index + 1}/{args.repeat}")
        rounds.append(bench_round(options, status))
    command = command_line(argv)
    results = results_json(command, machine, vars(args), rounds)
    saved = save_results(results, "mirror-bench")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        title = (
            f"mirror: {args.records:,} x {args.value_bytes} B records, "
            f"{args.partitions} partitions, acks=all, idempotent, no compression"
        )
        print_report(Console(), command, machine, rounds, title)
        status.print(f"results saved to {saved.relative_to(REPO_ROOT)}")
    return 1 if any(r.errors for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
