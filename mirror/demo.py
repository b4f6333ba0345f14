"""`make demo`: start a broker, push records through it with confluent-kafka, show them.

Grows into the multi-region demo (topologies issue); today it proves a real client
produces to and consumes from a regionlink region.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

RECORDS = 10_000
console = Console()


def start_broker(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mirror.cli",
            "broker",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"ready on ([\d.]+:\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"broker failed to start: {line!r}")
    return process, match.group(1)


def produce(bootstrap: str, topic: str) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    started = time.perf_counter()
    for i in range(RECORDS):
        producer.produce(topic, key=f"customer-{i % 100}".encode(), value=f"order #{i}".encode())
        producer.poll(0)
    producer.flush(30)
    return time.perf_counter() - started


def consume(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, bytes]]:
    """Read the topic back through a consumer group, as an application would."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "demo", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    rows: list[tuple[int, int, bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while len(rows) < RECORDS and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            rows.append(
                (msg.partition() or 0, msg.offset() or 0, msg.key() or b"", msg.value() or b"")
            )
    consumer.close()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="regionlink-demo-") as tmp:
        process, bootstrap = start_broker(Path(tmp) / "us-east")
        try:
            console.print(f"[bold]regionlink broker[/bold] up on [cyan]{bootstrap}[/cyan]")
            admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
            admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])[
                "orders"
            ].result(10)
            elapsed_s = produce(bootstrap, "orders")
            console.print(
                f"produced {RECORDS:,} records (acks=all, idempotent, lz4) in {elapsed_s:.2f}s"
            )
            rows = consume(bootstrap, "orders")
            table = Table(title=f"consumed {len(rows):,} records — first five")
            for column in ("partition", "offset", "key", "value"):
                table.add_column(column)
            for partition, offset, key, value in sorted(rows)[:5]:
                table.add_row(str(partition), str(offset), key.decode(), value.decode())
            console.print(table)
            if len(rows) != RECORDS:
                raise SystemExit(f"expected {RECORDS} records, read {len(rows)}")
            console.print(
                "[green]every record came back.[/green] Next: `make test`, then "
                "`.venv/bin/regionlink broker --help`."
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)


if __name__ == "__main__":
    main()
