"""TLS and SASL cost on one broker: confluent-kafka produce and consume throughput, and a
`regionlink worker` mirroring a topic, through a PLAINTEXT, an SSL and a SASL_SSL
(SCRAM-SHA-512) listener of the same broker process, and the time a connection takes to be
ready (TCP, TLS handshake, ApiVersions, SASL) per mechanism.
Besides wall-clock rates it reports the broker's CPU time per record, which a busy shared
machine disturbs far less.

    python -m bench.security_bench [--records N] [--repeat R] [--connections C]
        [--steps produce,consume,mirror] [--listeners PLAINTEXT,SSL,SASL_SSL]

Each client step runs in its own process (bench.workload, as `make bench`); the listeners
are measured in turn within each round, so a slow moment hits all of them. Results go to the
terminal and to bench-results/security-bench-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from bench.brokers import REPO_ROOT, BrokerSpec, RunningBroker, launch, regionlink_argv
from bench.machine import machine_info, machine_summary, process_cpu_s
from bench.mirror_bench import watch_end_offsets
from bench.report import save_results
from bench.scenarios import create_topic
from broker.ports import free_port
from broker.protocol.codec import RequestHeader, decode_response, encode_request
from broker.protocol.framing import frame
from broker.protocol.messages import request_builder
from broker.protocol.versions import ApiKey
from broker.security.scram import ScramClient
from broker.security.scram import ScramMechanism as Mechanism
from mirror.runtime.pki import ensure_ca, ensure_leaf

USER, ITERATIONS = "bench", 4096
LISTENERS = ("PLAINTEXT", "SSL", "SASL_SSL")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.security_bench", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="records per step")
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians shown")
    parser.add_argument("--connections", type=int, default=50, help="set-ups per mechanism")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--steps",
        default="produce,consume,mirror",
        help="comma-separated: produce, consume, mirror (a worker copying the topic through "
        "the listener, as `src.<topic>` on the same broker)",
    )
    parser.add_argument(
        "--listeners", default=",".join(LISTENERS), help="comma-separated, PLAINTEXT first"
    )
    parser.add_argument(
        "--client-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting for every client on every listener alike (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        args.client_settings = dict(item.split("=", 1) for item in args.client_setting)
    except ValueError:
        parser.error("--client-setting takes KEY=VALUE")
    args.steps = tuple(s for s in ("produce", "consume", "mirror") if s in args.steps.split(","))
    args.listeners = tuple(n for n in LISTENERS if n in args.listeners.split(","))
    if "PLAINTEXT" not in args.listeners or not args.steps:
        parser.error("--listeners must include PLAINTEXT and --steps at least one step")
    return args


class SecuredBroker:
    """One broker: CLIENT PLAINTEXT, TLS (SSL) and SASL (SASL_SSL) listeners."""

    def __init__(self, work: Path) -> None:
        ca = ensure_ca(work / "pki")
        leaf = ensure_leaf(ca, work / "pki", "broker")
        self.ca = ca.cert
        self.ports = {"PLAINTEXT": free_port(), "SSL": free_port(), "SASL_SSL": free_port()}
        self.password = secrets.token_urlsafe(16)
        tls, sasl = self.ports["SSL"], self.ports["SASL_SSL"]

        def argv(port: int, data_dir: Path) -> list[str]:
            return regionlink_argv(
                "broker", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}",
                "--listener", f"TLS=127.0.0.1:{tls},127.0.0.1:{tls}",
                "--listener", f"SASL=127.0.0.1:{sasl},127.0.0.1:{sasl}",
                "--listener-security-protocol-map", "TLS:SSL,SASL:SASL_SSL",
                "--ssl-certificate", str(leaf.cert), "--ssl-key", str(leaf.key),
                "--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            )  # fmt: skip

        self.running: RunningBroker = launch(
            BrokerSpec("secured", argv), work, 30.0, self.ports["PLAINTEXT"]
        )
        self._wait_for(tls)
        self._wait_for(sasl)
        admin = AdminClient({"bootstrap.servers": self.bootstrap("PLAINTEXT")})
        for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
            # one alteration per user and request, Kafka's rule
            info = ScramCredentialInfo(mechanism, ITERATIONS)
            upsertion = UserScramCredentialUpsertion(USER, info, self.password.encode())
            for future in admin.alter_user_scram_credentials([upsertion]).values():
                future.result(timeout=20)

    @staticmethod
    def _wait_for(port: int) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"listener on {port} never accepted")

    def bootstrap(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def client_config(self, listener: str) -> dict[str, str]:
        if listener == "PLAINTEXT":
            return {}
        config = {"security.protocol": listener, "ssl.ca.location": str(self.ca)}
        if listener == "SASL_SSL":
            config |= {
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": USER,
                "sasl.password": self.password,
            }
        return config


def run_step(step: str, broker: SecuredBroker, listener: str, topic: str, work: Path,
             args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    config_file = work / f"client-{listener}.json"
    descriptor = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(broker.client_config(listener) | args.client_settings, handle)
    argv = [
        sys.executable, "-m", "bench.workload", step,
        f"--bootstrap={broker.bootstrap(listener)}", f"--topic={topic}",
        f"--records={args.records}", f"--value-bytes={args.value_bytes}",
        f"--timeout-s={args.timeout_s}", f"--client-config={config_file}",
    ]  # fmt: skip
    cpu_before = process_cpu_s(broker.running.process.pid)
    try:
        done = subprocess.run(
            argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=args.timeout_s + 30
        )
    finally:
        config_file.unlink()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["broker_cpu_us_per_record"] = (
        (process_cpu_s(broker.running.process.pid) - cpu_before) / args.records * 1e6
    )
    if not result.get("ok"):
        raise RuntimeError(f"{listener} {step} failed: {result.get('first_error')}")
    return result


# ------------------------------------------------------------------ the mirror


def worker_toml(broker: SecuredBroker, listener: str, topic: str, password_file: Path) -> str:
    """A worker copying `topic` to `src.<topic>` on the same broker, both sides through
    `listener`: each record crosses it twice (fetched, then produced), as a link between two
    secured regions does once at each end."""
    security = ""
    if listener != "PLAINTEXT":
        security = f'"security.protocol" = "{listener}"\n"ssl.ca.location" = "{broker.ca}"\n'
    if listener == "SASL_SSL":
        security += (
            f'"sasl.mechanism" = "SCRAM-SHA-512"\n"sasl.username" = "{USER}"\n'
            f'"sasl.password.file" = "{password_file}"\n'
        )
    cluster = f'bootstrap = "{broker.bootstrap(listener)}"\n{security}'
    return (
        f"[clusters.src]\n{cluster}[clusters.dst]\n{cluster}"
        f'[[flows]]\nsource = "src"\ntarget = "dst"\ntopics = ["^{topic}$"]\n'
        "refresh_topics_interval_s = 0.5\n"
    )


def run_mirror(
    broker: SecuredBroker, listener: str, topic: str, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """A `regionlink worker` copies the topic's records (already there) through `listener`:
    its steady rate from the first copied record to the last, and the broker's CPU."""
    password_file = work / "bench-password"
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(broker.password)
    config = work / f"mirror-{listener}.toml"
    config.write_text(worker_toml(broker, listener, topic, password_file))
    cpu_before = process_cpu_s(broker.running.process.pid)
    log_path = work / f"worker-{listener}.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            regionlink_argv("worker", "--config", str(config), "--worker-id", "bench"),
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        watch = watch_end_offsets(
            broker.running, f"src.{topic}", args.partitions, args.records,
            args.timeout_s, args.timeout_s, lambda: _alive(worker, log_path),
        )  # fmt: skip
        worker_cpu_s = process_cpu_s(worker.pid)  # start-up included
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    first = watch.first_nonzero()
    assert first is not None
    (first_s, first_count), last_s = first, watch.samples[-1][0]
    copied = args.records - first_count
    return {
        "records_per_s": copied / (last_s - first_s) if last_s > first_s else float("nan"),
        "broker_cpu_us_per_record": (
            (process_cpu_s(broker.running.process.pid) - cpu_before) / args.records * 1e6
        ),
        "worker_cpu_us_per_record": worker_cpu_s / args.records * 1e6,
    }


def _alive(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    if worker.poll() is not None:
        tail = log_path.read_text()[-2000:]
        raise RuntimeError(f"the worker exited with {worker.returncode}: {tail}")


# ------------------------------------------------------------------ connection set-up


class Connection:
    """A bare Kafka connection (ours, synchronous): just enough to time a set-up."""

    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(sock, server_hostname="127.0.0.1") if context else sock
        self._correlation = 0

    def call(self, api_key: int, version: int, name: str, **fields: Any) -> Any:
        self._correlation += 1
        body = request_builder(api_key, version).make(name, **fields)
        header = RequestHeader(api_key, version, self._correlation, "bench")
        self.sock.sendall(frame(encode_request(header, body)))
        (size,) = struct.unpack(">i", self._read(4))
        return decode_response(api_key, version, self._read(size))[1]

    def _read(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data


def set_up_once(broker: SecuredBroker, kind: str, context: ssl.SSLContext) -> float:
    """Seconds until a connection of `kind` is ready to send requests (the client's own
    PBKDF2, as any SCRAM client does, included; its TLS context made beforehand)."""
    started = time.perf_counter()
    listener = "SSL" if kind == "SSL" else "PLAINTEXT" if kind == "PLAINTEXT" else "SASL_SSL"
    connection = Connection(broker.ports[listener], context if listener != "PLAINTEXT" else None)
    connection.call(
        ApiKey.API_VERSIONS, 3, "ApiVersionsRequest",
        client_software_name="bench", client_software_version="1",
    )  # fmt: skip
    if listener == "SASL_SSL":
        connection.call(ApiKey.SASL_HANDSHAKE, 1, "SaslHandshakeRequest", mechanism=kind)
        authenticate = (ApiKey.SASL_AUTHENTICATE, 1, "SaslAuthenticateRequest")
        if kind == "PLAIN":
            token = f"\0{USER}\0{broker.password}".encode()
            assert connection.call(*authenticate, auth_bytes=token).error_code == 0
        else:
            mechanism = Mechanism.named(kind)
            assert mechanism is not None
            client = ScramClient(mechanism, USER, broker.password, secrets.token_urlsafe(18))
            first = connection.call(*authenticate, auth_bytes=client.first())
            final = connection.call(*authenticate, auth_bytes=client.final(first.auth_bytes))
            client.verify(final.auth_bytes)
    elapsed = time.perf_counter() - started
    connection.sock.close()
    return elapsed


def set_up_times(broker: SecuredBroker, connections: int) -> dict[str, dict[str, float]]:
    out = {}
    context = ssl.create_default_context(cafile=broker.ca)
    for kind in ("PLAINTEXT", "SSL", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        times = sorted(set_up_once(broker, kind, context) for _ in range(connections))
        out[kind] = {
            "median_ms": statistics.median(times) * 1000,
            "p90_ms": times[int(len(times) * 0.9) - 1] * 1000,
        }
    return out


# ------------------------------------------------------------------ the run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    machine = machine_info()
    throughput: dict[str, dict[str, list[float]]] = {
        name: {step: [] for step in args.steps} for name in args.listeners
    }
    cpu: dict[str, dict[str, list[float]]] = {
        name: {step: [] for step in args.steps} for name in args.listeners
    }
    worker_cpu: dict[str, list[float]] = {name: [] for name in args.listeners}
    with tempfile.TemporaryDirectory(prefix="security-bench-") as tmp:
        work = Path(tmp)
        broker = SecuredBroker(work)
        try:
            for _ in range(args.repeat):
                for listener in args.listeners:
                    topic = f"bench-{listener.lower()}-{uuid.uuid4().hex[:8]}"
                    create_topic(broker.bootstrap("PLAINTEXT"), topic, args.partitions)
                    if "produce" not in args.steps:  # what consume and mirror read
                        run_step("produce", broker, "PLAINTEXT", topic, work, args)
                    for step in args.steps:
                        if step == "mirror":
                            result = run_mirror(broker, listener, topic, work, args)
                        else:
                            result = run_step(step, broker, listener, topic, work, args)
                        throughput[listener][step].append(result["records_per_s"])
                        cpu[listener][step].append(result["broker_cpu_us_per_record"])
                        if step == "mirror":
                            worker_cpu[listener].append(result["worker_cpu_us_per_record"])
            set_up = set_up_times(broker, args.connections) if args.connections else {}
        finally:
            broker.running.stop()
    medians = {
        name: {step: statistics.median(values) for step, values in steps.items()}
        for name, steps in throughput.items()
    }
    cpu_medians = {
        name: {step: statistics.median(values) for step, values in steps.items()}
        for name, steps in cpu.items()
    }
    print(f"machine: {machine_summary(machine)}; {machine['date_utc']}")
    print(f"{args.records} records of {args.value_bytes} B, {args.partitions} partition(s), "
          f"medians of {args.repeat} rounds (records/s, ratio to PLAINTEXT)")  # fmt: skip
    for name, steps in medians.items():
        row = [
            f"{step} {rate:>9,.0f} ({rate / medians['PLAINTEXT'][step]:.2f}x)"
            for step, rate in steps.items()
        ]
        print(f"  {name:<10} " + "   ".join(row))
    print("broker CPU per record (us), medians; the ratio is PLAINTEXT's over this one's:")
    for name, steps in cpu_medians.items():
        row = [
            f"{step} {us:6.2f} ({cpu_medians['PLAINTEXT'][step] / us:.2f}x)"
            for step, us in steps.items()
        ]
        print(f"  {name:<10} " + "   ".join(row))
    if "mirror" in args.steps:
        print("the mirror's worker, CPU per record (us, start-up included), medians:")
        for name, values in worker_cpu.items():
            print(f"  {name:<10} {statistics.median(values):6.2f}")
    print(f"connection set-up, {args.connections} sequential connections (ms):")
    for kind, figures in set_up.items():
        print(f"  {kind:<14} median {figures['median_ms']:6.2f}   p90 {figures['p90_ms']:6.2f}")
    path = save_results(
        {
            "machine": machine,
            "options": vars(args),
            "throughput_records_per_s": throughput,
            "medians": medians,
            "broker_cpu_us_per_record": cpu,
            "broker_cpu_medians": cpu_medians,
            "worker_cpu_us_per_record": worker_cpu,
            "set_up_ms": set_up,
        },
        "security-bench",
    )
    print(f"saved {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
