"""Throughput of the chaos fault proxy with no toxic, against direct loopback (issue 12).

The mirror's traffic through a proxy is large Kafka frames: Fetch responses and Produce
requests of about 1 MiB. Each workload runs direct and through `regionlink chaos proxy` (a
separate process, as in a drill), rounds alternating so load from elsewhere hits both:

- kafka-mirror: a `regionlink worker` copies --mirror-records pre-loaded records (8
  partitions) from a source broker into a target it reaches directly, or through the proxy
  as across a WAN link, where the worker writes into the other region: the mirror's own
  traffic, timed from the worker's start until the target holds every record;
- kafka-produce, kafka-consume: bench.workload's confluent-kafka producer (1 KiB records,
  1 MB batches, acks=all) and consumer against our broker. Two identical single-node
  brokers: one reached directly, one advertised on 127.0.0.2 where the proxy listens, so
  every connection the client opens after bootstrap goes through the proxy too;
- stream: one connection carries --stream-mb MB of 1 MiB frames one way, then the sink
  acknowledges the byte count (raw sockets, no broker: the proxy's own ceiling);
- fetch: --fetches requests of 64 bytes, each answered with a 1 MiB frame before the next
  is sent (raw sockets: round trips and frame size both count).

The target, at least 0.8 of direct, is for the mirror's traffic (kafka-mirror; the client
workloads show each direction of large frames on its own). The
raw ones bound what any copying relay can do here: measured on the 2-core machine, socat
(C, read/write) got the same as ours, 0.5-0.8 of direct loopback, which the sender and the
receiver alone nearly saturate; the copies are kernel work (profiled with py-spy: 7 % of
the proxy's samples are Python). Since every figure moves with load from elsewhere, the
proxy's CPU seconds per GB carried are reported too: a load-independent cost.
Prints a table; --json prints JSON only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from toxiproxy import Toxiproxy

from bench.brokers import REPO_ROOT, BrokerSpec, RunningBroker, launch, ours_argv, regionlink_argv
from bench.machine import process_cpu_s
from bench.mirror_bench import Processes, watch_end_offsets
from bench.scenarios import BenchOptions, create_topic, run_client, step_error

FRAME_BYTES = 1 << 20
REQUEST_BYTES = 64
TARGET_RATIO = 0.8
PROXIED_HOST = "127.0.0.2"
"""Loopback address the proxied broker advertises and the proxy listens on (Linux routes
all of 127/8 to lo), so the direct broker and the proxied one can share a port number."""
START_TIMEOUT_S = 30.0
_COUNT = struct.Struct(">Q")


# Raw sockets ----------------------------------------------------------------------------


def _sink(listener: socket.socket, mode: str) -> None:
    """Serve one connection per round: count a stream, or answer each request with a frame."""
    frame = memoryview(bytes(FRAME_BYTES))
    buffer = bytearray(FRAME_BYTES)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if mode == "stream":
                total = 0
                while n := conn.recv_into(buffer):
                    total += n
                conn.sendall(_COUNT.pack(total))
            else:
                while _recv_exactly(conn, buffer, REQUEST_BYTES):
                    conn.sendall(frame)


def _recv_exactly(conn: socket.socket, buffer: bytearray, size: int) -> bool:
    view = memoryview(buffer)[:size]
    got = 0
    while got < size:
        n = conn.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def _stream(port: int, total_bytes: int) -> float:
    """Seconds to send `total_bytes` and hear the sink confirm it got them all."""
    frame = memoryview(bytes(FRAME_BYTES))
    with socket.create_connection(("127.0.0.1", port)) as conn:
        start = time.perf_counter()
        sent = 0
        while sent < total_bytes:
            conn.sendall(frame)
            sent += FRAME_BYTES
        conn.shutdown(socket.SHUT_WR)
        ack = bytearray(_COUNT.size)
        _recv_exactly(conn, ack, _COUNT.size)
        elapsed = time.perf_counter() - start
    (received,) = _COUNT.unpack(ack)
    if received != sent:
        raise RuntimeError(f"sink got {received} bytes of {sent}")
    return elapsed


def _fetch(port: int, fetches: int) -> float:
    """Seconds for `fetches` request/response round trips with 1 MiB responses."""
    request = bytes(REQUEST_BYTES)
    buffer = bytearray(FRAME_BYTES)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        for _ in range(fetches):
            conn.sendall(request)
            if not _recv_exactly(conn, buffer, FRAME_BYTES):
                raise RuntimeError("sink closed mid-frame")
        return time.perf_counter() - start


def _client(pipe: Connection, run: Callable[[int, int], float]) -> None:
    """In its own process: run one measurement per (port, amount) received."""
    while (job := pipe.recv()) is not None:
        pipe.send(run(*job))


@contextmanager
def _process(target: Callable[..., None], *args: object) -> Iterator[None]:
    process = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=True)
    process.start()
    try:
        yield
    finally:
        process.kill()
        process.join()


class ProxyProcess:
    """`regionlink chaos proxy` on a free port, as drills run it, with a client for its API."""

    def __init__(self, process: subprocess.Popen[str], api: Toxiproxy) -> None:
        self.process = process
        self.api = api

    def cpu_s(self) -> float:
        """CPU seconds the proxy has used so far (user + system)."""
        return process_cpu_s(self.process.pid)


@contextmanager
def _proxy_server() -> Iterator[ProxyProcess]:
    command = regionlink_argv("chaos", "proxy", "--listen", "127.0.0.1:0")
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "ready on" not in line:
            raise RuntimeError(f"the proxy did not start: {line!r}")
        host, port = line.rsplit(" ", 1)[1].strip().rsplit(":", 1)
        api = Toxiproxy()
        api.update_api_consumer(host, int(port))
        yield ProxyProcess(process, api)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def measure_raw(mode: str, amount: int, rounds: int) -> dict[str, object]:
    """Median throughput of a raw workload, direct and through the proxy."""
    listener = socket.create_server(("127.0.0.1", 0))
    sink_port = listener.getsockname()[1]
    run = _stream if mode == "stream" else _fetch
    moved_bytes = amount if mode == "stream" else amount * FRAME_BYTES
    parent, child = multiprocessing.get_context("fork").Pipe()
    with _process(_sink, listener, mode), _process(_client, child, run), _proxy_server() as px:
        proxy = px.api.create(upstream=f"127.0.0.1:{sink_port}", name=f"bench-{mode}")
        ports = {"direct": sink_port, "proxy": _port(proxy.listen)}
        seconds: dict[str, list[float]] = {"direct": [], "proxy": []}
        cpu_before_s = px.cpu_s()
        for _ in range(rounds):
            for path, port in ports.items():
                parent.send((port, amount))
                seconds[path].append(parent.recv())
        proxy_cpu_s = px.cpu_s() - cpu_before_s
        parent.send(None)
    mb_s = {path: moved_bytes / statistics.median(s) / 1e6 for path, s in seconds.items()}
    gb_moved = moved_bytes * rounds / 1e9
    return _result(
        mode, moved_bytes / 1e6, rounds, mb_s["direct"], mb_s["proxy"], proxy_cpu_s / gb_moved
    )


# Kafka ----------------------------------------------------------------------------------


def _proxied_argv(port: int, data_dir: Path) -> list[str]:
    return [*ours_argv(port, data_dir), "--advertised-host", PROXIED_HOST]


def measure_kafka(records: int, rounds: int) -> list[dict[str, object]]:
    """Median produce and consume MB/s of confluent-kafka against our broker, both ways."""
    options = BenchOptions(records=records)
    steps = ("produce", "consume")
    rates: dict[str, dict[str, list[float]]] = {step: {"direct": [], "proxy": []} for step in steps}
    proxy_cpu_s = dict.fromkeys(steps, 0.0)
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as work, _proxy_server() as px:
        work_dir = Path(work)
        direct = launch(BrokerSpec("direct", ours_argv), work_dir, START_TIMEOUT_S)
        proxied: RunningBroker | None = None
        try:
            proxied = launch(BrokerSpec("proxied", _proxied_argv), work_dir, START_TIMEOUT_S)
            px.api.create(
                upstream=proxied.bootstrap,
                name="bench-kafka",
                listen=f"{PROXIED_HOST}:{proxied.port}",
            )
            bootstraps = {"direct": direct.bootstrap, "proxy": f"{PROXIED_HOST}:{proxied.port}"}
            for _ in range(rounds):
                for path, bootstrap in bootstraps.items():
                    topic = f"proxy-bench-{uuid.uuid4().hex[:8]}"
                    create_topic(bootstrap, topic, 1)
                    for step in steps:
                        cpu_before_s = px.cpu_s()
                        result = run_client(step, bootstrap, topic, options)
                        proxy_cpu_s[step] += px.cpu_s() - cpu_before_s
                        if error := step_error(result, records):
                            raise RuntimeError(f"{path} {error}")
                        rates[step][path].append(result["mb_per_s"])
        finally:
            direct.stop()
            if proxied is not None:
                proxied.stop()
    moved_mb = records * options.value_bytes / 1e6
    return [
        _result(
            f"kafka-{step}",
            moved_mb,
            rounds,
            statistics.median(by_path["direct"]),
            statistics.median(by_path["proxy"]),
            proxy_cpu_s[step] / (moved_mb * rounds / 1e3),
        )
        for step, by_path in rates.items()
    ]


# The mirror itself --------------------------------------------------------------------------

MIRROR_PARTITIONS = 8


def measure_mirror(records: int, rounds: int) -> dict[str, object]:
    """Median MB/s of a `regionlink worker` mirroring pre-loaded records into a target it
    reaches directly, or through the proxy as across a WAN link (where the worker writes
    into the other region): the mirror's own traffic, measured end to end."""
    options = BenchOptions(records=records)
    seconds: dict[str, list[float]] = {"direct": [], "proxy": []}
    proxy_cpu_s = 0.0
    with tempfile.TemporaryDirectory(prefix="proxy-mirror-") as work, _proxy_server() as px:
        procs = Processes(Path(work))
        try:
            source = launch(BrokerSpec("source", ours_argv), procs.work_dir, START_TIMEOUT_S)
            direct = launch(BrokerSpec("direct", ours_argv), procs.work_dir, START_TIMEOUT_S)
            proxied = launch(BrokerSpec("proxied", _proxied_argv), procs.work_dir, START_TIMEOUT_S)
            procs.brokers += [source, direct, proxied]
            listen = f"{PROXIED_HOST}:{proxied.port}"
            px.api.create(upstream=proxied.bootstrap, name="bench-mirror", listen=listen)
            targets = {"direct": (direct, direct.bootstrap), "proxy": (proxied, listen)}
            for index in range(rounds):
                topic = f"bench-{index}-{uuid.uuid4().hex[:6]}"
                create_topic(source.bootstrap, topic, MIRROR_PARTITIONS)
                if error := step_error(
                    run_client("produce", source.bootstrap, topic, options), records
                ):
                    raise RuntimeError(f"preload: {error}")
                for path, (target, bootstrap) in targets.items():
                    cpu_before_s = px.cpu_s()
                    seconds[path].append(
                        _mirror_once(procs, source, target, bootstrap, topic, records)
                    )
                    if path == "proxy":
                        proxy_cpu_s += px.cpu_s() - cpu_before_s
        finally:
            procs.stop_all()
    moved_mb = records * options.value_bytes / 1e6
    return _result(
        "kafka-mirror",
        moved_mb,
        rounds,
        moved_mb / statistics.median(seconds["direct"]),
        moved_mb / statistics.median(seconds["proxy"]),
        proxy_cpu_s / (moved_mb * rounds / 1e3),
    )


def _mirror_once(
    procs: Processes,
    source: RunningBroker,
    target: RunningBroker,
    bootstrap: str,
    topic: str,
    records: int,
) -> float:
    """Seconds from starting a worker (source -> `bootstrap`) until `target` holds `topic`."""
    config = procs.work_dir / f"mirror-{target.name}.toml"
    config.write_text(
        f'[clusters.us]\nbootstrap = "{source.bootstrap}"\n'
        f'[clusters.eu]\nbootstrap = "{bootstrap}"\n'
        f'[[flows]]\nsource = "us"\ntarget = "eu"\ntopics = ["{topic}"]\n'
        "refresh_topics_interval_s = 0.5\n"
    )
    started_s = time.perf_counter()
    worker = procs.start(
        f"worker-{target.name}", [*regionlink_argv("worker"), "--config", str(config)]
    )
    try:
        watch_end_offsets(
            target, f"us.{topic}", MIRROR_PARTITIONS, records, 300.0, 60.0, lambda: None
        )
        return time.perf_counter() - started_s
    finally:
        worker.stop()


# Report ---------------------------------------------------------------------------------


def _result(
    workload: str,
    moved_mb: float,
    rounds: int,
    direct_mb_s: float,
    proxy_mb_s: float,
    proxy_cpu_s_per_gb: float,
) -> dict[str, object]:
    return {
        "workload": workload,
        "moved_mb": round(moved_mb),
        "rounds": rounds,
        "direct_mb_s": round(direct_mb_s, 1),
        "proxy_mb_s": round(proxy_mb_s, 1),
        "ratio": round(proxy_mb_s / direct_mb_s, 3),
        "proxy_cpu_s_per_gb": round(proxy_cpu_s_per_gb, 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_bench", description=__doc__)
    parser.add_argument("--records", type=int, default=500_000, help="Kafka records per round")
    parser.add_argument("--stream-mb", type=int, default=500, help="MB per raw stream round")
    parser.add_argument("--fetches", type=int, default=500, help="1 MiB raw fetches per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per path; medians shown")
    parser.add_argument(
        "--only",
        choices=["kafka", "mirror", "raw"],
        help="run the Kafka client, the mirror or the raw workloads only",
    )
    parser.add_argument(
        "--mirror-records", type=int, default=200_000, help="records the mirror copies per round"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    stream_bytes = args.stream_mb * 1_000_000 // FRAME_BYTES * FRAME_BYTES
    results = []
    if args.only in (None, "kafka"):
        results += measure_kafka(args.records, args.rounds)
    if args.only in (None, "mirror"):
        results.append(measure_mirror(args.mirror_records, args.rounds))
    if args.only in (None, "raw"):
        results += [
            measure_raw("stream", stream_bytes, args.rounds),
            measure_raw("fetch", args.fetches, args.rounds),
        ]
    judged = [r for r in results if r["workload"] == "kafka-mirror"] or [
        r for r in results if str(r["workload"]).startswith("kafka")
    ]
    target_met = all(float(str(r["ratio"])) >= TARGET_RATIO for r in judged)
    report = {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "target_ratio": TARGET_RATIO,
        "target_met": target_met,
        "judged": [r["workload"] for r in judged],
        "results": results,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{'workload':<14} {'MB':>6} {'direct MB/s':>12} {'proxy MB/s':>11} {'ratio':>6} "
            f"{'proxy CPU s/GB':>15}"
        )
        for r in results:
            print(
                f"{r['workload']:<14} {r['moved_mb']:>6} {r['direct_mb_s']:>12} "
                f"{r['proxy_mb_s']:>11} {r['ratio']:>6} {r['proxy_cpu_s_per_gb']:>15}"
            )
        names = ", ".join(str(r["workload"]) for r in judged)
        print(f"target for {names}: proxy >= {TARGET_RATIO} x direct: {target_met}")
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
