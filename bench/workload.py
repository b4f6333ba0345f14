"""One confluent-kafka client run, in its own process; prints one JSON object.

    python -m bench.workload produce --bootstrap HOST:PORT --topic T --records N
    python -m bench.workload consume --bootstrap HOST:PORT --topic T --records N

The harness (bench.broker_bench) starts one of these per step so the client's CPU
never shares a GIL with the harness. Every wait is bounded by --timeout-s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

MB = 1_000_000
DISTINCT_VALUES = 256
POLL_EVERY_RECORDS = 1_000
CONSUME_BATCH = 10_000

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "compression.type": "none",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}

CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "max.partition.fetch.bytes": 8 * 1_048_576,
    "fetch.max.bytes": 64 * 1_048_576,
}


def make_values(value_bytes: int) -> list[bytes]:
    """Distinct incompressible payloads, reused round-robin (librdkafka copies them)."""
    return [os.urandom(value_bytes) for _ in range(DISTINCT_VALUES)]


def percentile_ms(latencies_s: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of latencies given in seconds, returned in ms."""
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index] * 1000


class DeliveryStats:
    """Delivery-report sink: produce()→report latency (librdkafka's msg.latency()) and errors."""

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.errors = 0
        self.first_error: str | None = None

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors += 1
            self.first_error = self.first_error or str(err)
            return
        latency_s = msg.latency()
        if latency_s is not None:
            self.latencies_s.append(latency_s)


Headers = list[tuple[str, str | bytes | None]]


class Traceparents:
    """A W3C `traceparent` header per record, each its own trace, every `1 / sampled_ratio`-th
    flagged sampled: what producers instrumented to sample that share of their records send
    (the tracing bench). Made from a counter, so a record costs a string format."""

    def __init__(self, sampled_ratio: float) -> None:
        self.sampled_every = max(1, round(1 / sampled_ratio)) if sampled_ratio > 0 else 0
        self.base = int.from_bytes(os.urandom(12), "big") << 32

    def __call__(self, n: int) -> Headers:
        sampled = self.sampled_every and n % self.sampled_every == 0
        flags = b"01" if sampled else b"00"
        return [("traceparent", b"00-%032x-%016x-%s" % (self.base + n, n + 1, flags))]


def produce_all(
    producer: Producer,
    topic: str,
    values: list[bytes],
    records: int,
    headers: Traceparents | None = None,
    rate_mb_s: float | None = None,
) -> None:
    """Queue `records` values, polling for delivery reports and backing off on a full queue;
    with `rate_mb_s`, no faster than that (checked every POLL_EVERY_RECORDS records), so
    latency is measured at an offered load rather than with the queue full."""
    started_s = time.perf_counter()
    for i in range(records):
        if rate_mb_s and i % POLL_EVERY_RECORDS == 0:
            due_s = started_s + i * len(values[0]) / MB / rate_mb_s
            while (wait_s := due_s - time.perf_counter()) > 0:
                producer.poll(wait_s)
        value = values[i % DISTINCT_VALUES]
        record_headers = headers(i) if headers is not None else None
        while True:
            try:
                producer.produce(topic, value=value, headers=record_headers)
                break
            except BufferError:
                producer.poll(0.01)
        if i % POLL_EVERY_RECORDS == 0:
            producer.poll(0)


def run_produce(
    args: argparse.Namespace,
    producer_config: dict[str, Any] = PRODUCER_CONFIG,
    headers: Traceparents | None = None,
) -> dict[str, Any]:
    """Produce args.records values of args.value_bytes; time until every report is in."""
    stats = DeliveryStats()
    config = {**producer_config, "bootstrap.servers": args.bootstrap}
    config["on_delivery"] = stats.on_delivery
    producer = Producer(config)
    values = make_values(args.value_bytes)
    started_s = time.perf_counter()
    rate_mb_s = getattr(args, "rate_mb_s", None)  # bench.mirror_clients has no such option
    produce_all(producer, args.topic, values, args.records, headers, rate_mb_s)
    unflushed = producer.flush(args.timeout_s)
    elapsed_s = time.perf_counter() - started_s
    acked = len(stats.latencies_s)
    return {
        "step": "produce",
        "records": acked,
        "bytes": acked * args.value_bytes,
        "elapsed_s": elapsed_s,
        "records_per_s": acked / elapsed_s,
        "mb_per_s": acked * args.value_bytes / MB / elapsed_s,
        "p50_latency_ms": percentile_ms(stats.latencies_s, 50),
        "p99_latency_ms": percentile_ms(stats.latencies_s, 99),
        "errors": stats.errors,
        "first_error": stats.first_error,
        "unflushed": unflushed,
        "ok": acked == args.records and stats.errors == 0 and unflushed == 0,
    }


def assign_from_beginning(consumer: Consumer, topic: str, timeout_s: float) -> int:
    """Assign every partition of `topic` at the first offset; returns the partition count."""
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return len(partitions)


class ConsumeTally:
    """Counts records and bytes, and checks each partition's offsets run 0, 1, 2, ... once."""

    def __init__(self, partitions: int) -> None:
        self.records = 0
        self.bytes = 0
        self.per_partition = [0] * partitions
        self.last_offset = [-1] * partitions
        self.first_error: str | None = None

    def add(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            self.first_error = self.first_error or str(err)
            return
        value = msg.value()
        partition = msg.partition() or 0
        self.records += 1
        self.bytes += len(value) if value is not None else 0
        self.per_partition[partition] += 1
        self.last_offset[partition] = msg.offset() or 0

    def offsets_contiguous(self) -> bool:
        """No duplicate or skipped offset: partition p ends at offset count(p) - 1."""
        return all(
            last + 1 == n for last, n in zip(self.last_offset, self.per_partition, strict=True)
        )


def consume_until(consumer: Consumer, tally: ConsumeTally, records: int, deadline_s: float) -> None:
    """Read into `tally` until `records` records or the deadline."""
    while tally.records < records and time.perf_counter() < deadline_s:
        # Ask for no more than remain, or consume() waits out its timeout at the end.
        wanted = min(CONSUME_BATCH, records - tally.records)
        for msg in consumer.consume(num_messages=wanted, timeout=0.5):
            tally.add(msg)


def run_consume(
    args: argparse.Namespace, client_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read args.records values from offset 0 of every partition (assign, no group join)."""
    group_id = f"bench-{uuid.uuid4().hex[:12]}"
    config = {
        **CONSUMER_CONFIG,
        **(client_config or {}),
        "bootstrap.servers": args.bootstrap,
        "group.id": group_id,
    }
    consumer = Consumer(config)
    try:
        started_s = time.perf_counter()
        partitions = assign_from_beginning(consumer, args.topic, args.timeout_s)
        tally = ConsumeTally(partitions)
        consume_until(consumer, tally, args.records, started_s + args.timeout_s)
        elapsed_s = time.perf_counter() - started_s
    finally:
        consumer.close()
    contiguous = tally.offsets_contiguous()
    first_error = tally.first_error
    if not contiguous:
        first_error = first_error or f"offsets not contiguous: {tally.per_partition=}"
    return {
        "step": "consume",
        "partitions": partitions,
        "records": tally.records,
        "records_per_partition": tally.per_partition,
        "bytes": tally.bytes,
        "elapsed_s": elapsed_s,
        "records_per_s": tally.records / elapsed_s,
        "mb_per_s": tally.bytes / MB / elapsed_s,
        "offsets_contiguous": contiguous,
        "first_error": first_error,
        "ok": tally.records == args.records and contiguous,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__)
    parser.add_argument("step", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--rate-mb-s", type=float, help="produce at this rate instead of as fast as possible"
    )
    parser.add_argument(
        "--client-config",
        type=Path,
        help="JSON file of librdkafka settings added to both clients' (e.g. security.protocol, "
        "sasl.*, ssl.ca.location: bench.security_bench)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    extra = json.loads(args.client_config.read_text()) if args.client_config else {}
    if args.step == "produce":
        result = run_produce(args, {**PRODUCER_CONFIG, **extra})
    else:
        result = run_consume(args, extra)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
