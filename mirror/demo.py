"""`make demo`: two regions with mirror topics, data flowing, a planned switchover.

`regionlink up topologies/active-passive.toml` starts us-east, eu-west and a mirror worker as
separate processes under a supervisor; eu-west holds every topic of us-east under the same
name at the same offsets. The demo produces orders in the primary region, lets a consumer
group read part of them there, runs `regionlink switchover` to move the primary role to the
other region (fence, drain to lag 0, sync group offsets, promote, reverse the flow), and
continues the group there — nothing re-read, nothing missed — while new orders flow back.
Run it again and it switches back. The topology keeps running afterwards for you to explore.

Every order carries a trace context (W3C `traceparent`, injected by OpenTelemetry's
confluent-kafka instrumentation) and every hop records a span in the topology's span store:
the producer and the broker in the primary, the mirror, the broker in the standby, and the
consumer wherever it reads the order. The demo prints one trace to look up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from broker import telemetry
from mirror.client_tracing import process_span, traced_producer
from mirror.runtime.render import status_view
from mirror.runtime.topology import load_topology
from mirror.runtime.tracing_env import tracing_environment

TOPOLOGY = Path(__file__).resolve().parents[1] / "topologies" / "active-passive.toml"
STATE_DIR = Path(".regionlink-demo")
RECORDS = 10_000
READ_AT_SOURCE = 4_000
RUN = time.strftime("%H%M%S")
TOPIC, GROUP = f"orders-{RUN}", f"billing-{RUN}"
console = Console(width=max(120, Console().width))


def regionlink(*args: str, show: bool = False) -> str:
    """Run the CLI; with `show`, its live output goes to the terminal as it comes."""
    done = subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args],
        stdout=None if show else subprocess.PIPE,
        stderr=None if show else subprocess.PIPE,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        raise SystemExit(f"regionlink {' '.join(args)} failed: {(done.stderr or '').strip()}")
    return done.stdout or ""


def status() -> dict[str, Any]:
    return dict(json.loads(regionlink("status", "--state-dir", str(STATE_DIR), "--json")))


def endpoint() -> dict[str, Any]:
    return dict(json.loads(regionlink("endpoint", "--state-dir", str(STATE_DIR), "--json")))


def start_tracing() -> None:
    """Trace the demo's clients into the topology's span store, as its processes do."""
    tracing = load_topology(TOPOLOGY).tracing
    os.environ.update(tracing_environment(tracing, STATE_DIR, os.environ))
    # 10,000 orders in a burst, a span each: the SDK's default queue of 2048 would drop most.
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", str(4 * RECORDS))
    telemetry.configure("regionlink-demo")


def produce(bootstrap: str, region: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(10)
    config = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    producer = traced_producer(config, region)
    for i in range(RECORDS):
        producer.produce(TOPIC, key=f"customer-{i % 100}".encode(), value=f"order #{i}".encode())
        producer.poll(0)
    assert producer.flush(30) == 0


def consume(bootstrap: str, region: str, limit: int | None, traces: dict[bytes, str]) -> set[bytes]:
    """Read as group GROUP; commit and stop after `limit` records (or when idle). Each
    record is processed in a span continuing its trace; `traces` gets each one's trace id."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    values: set[bytes] = set()
    idle_since = time.monotonic()
    while (limit is None or len(values) < limit) and time.monotonic() - idle_since < 3:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        with process_span(message, GROUP, region, bootstrap) as span:
            values.add(message.value() or b"")
            traces[message.value() or b""] = format(span.get_span_context().trace_id, "032x")
        idle_since = time.monotonic()
    consumer.commit(asynchronous=False)
    consumer.close()
    return values


def main() -> None:
    console.print(f"[bold]regionlink up topologies/{TOPOLOGY.name}[/bold] --state-dir {STATE_DIR}")
    regionlink("up", str(TOPOLOGY), "--state-dir", str(STATE_DIR))
    primary = endpoint()["region"]
    regions = status()["regions"]
    standby = next(name for name in regions if name != primary)
    source, target = regions[primary]["bootstrap"], regions[standby]["bootstrap"]
    console.print(
        f"regions up: primary {primary} [cyan]{source}[/cyan], standby {standby} "
        f"[cyan]{target}[/cyan] (each its own process; state in {STATE_DIR}/)"
    )
    start_tracing()
    produce(source, primary)
    traces: dict[bytes, str] = {}
    first = consume(source, primary, READ_AT_SOURCE, traces)
    console.print(
        f"produced {RECORDS:,} orders to {primary} topic {TOPIC}; group {GROUP} read "
        f"{len(first):,} of them there and committed\n"
    )
    console.print(f"[bold]regionlink switchover --to {standby}[/bold] --state-dir {STATE_DIR}")
    regionlink("switchover", "--to", standby, "--state-dir", str(STATE_DIR), show=True)
    rest = consume(target, standby, None, traces)
    report(first, rest, primary, standby)
    show_trace(rest, traces, primary, standby)
    console.print(status_view(status()))
    console.print(
        f"\nThe topology keeps running with {standby} as primary. Try:\n"
        f"  .venv/bin/regionlink endpoint --state-dir {STATE_DIR}   # where clients go now\n"
        f"  kcat -b {target} -t {TOPIC} -P   # type lines; {primary} gets them, same offsets:\n"
        f"  kcat -b {source} -t {TOPIC} -C -f '%o %s\\n'\n"
        f"  .venv/bin/regionlink switchover --to {primary} --state-dir {STATE_DIR}\n"
        f"  .venv/bin/regionlink failover history --state-dir {STATE_DIR}\n"
        f"  make demo   # again: switches back the other way\n"
        f"Stop it with: make demo-down   (regionlink down --state-dir {STATE_DIR})"
    )


def show_trace(rest: set[bytes], traces: dict[bytes, str], primary: str, standby: str) -> None:
    """One order produced in `primary` and read in `standby`, to follow in the dashboard."""
    order = min(rest, key=lambda value: int(value.split(b"#")[1]), default=None)
    if order is None or not telemetry.tracing_enabled():
        return
    trace_id = traces[order]
    console.print(
        f"\n{order.decode()} went from {primary} to {standby}: trace [bold]{trace_id}[/bold] "
        "(producer, both brokers, the mirror, the consumer). Look it up with\n"
        f"  .venv/bin/regionlink dashboard --state-dir {STATE_DIR}   "
        f"# then http://127.0.0.1:8080/traces/{trace_id}\n"
        "or in Jaeger/Tempo when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/observability.md)."
    )


def report(first: set[bytes], rest: set[bytes], primary: str, standby: str) -> None:
    table = Table(title=f"group {GROUP} moved from {primary} to {standby}")
    for column in (f"read in {primary}", f"read in {standby}", "read twice", "never read"):
        table.add_column(column)
    everything = {f"order #{i}".encode() for i in range(RECORDS)}
    twice, missed = first & rest, everything - first - rest
    table.add_row(f"{len(first):,}", f"{len(rest):,}", f"{len(twice):,}", f"{len(missed):,}")
    console.print(table)
    if twice or missed:
        raise SystemExit("the switchover was not exact")
    console.print("[green]exact switchover: nothing re-read, nothing missed.[/green]")


if __name__ == "__main__":
    main()
