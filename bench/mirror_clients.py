"""Client steps of the mirror bench, each in its own process; each prints one JSON line.

    python -m bench.mirror_clients produce --bootstrap B --topic T --records N
    python -m bench.mirror_clients naive --bootstrap SRC --target-bootstrap DST --topic T
        --target-topic T2 --records N --started-at-ns NS
    python -m bench.mirror_clients lag-consume --bootstrap B --topic T --records N
    python -m bench.mirror_clients lag-produce --bootstrap B --topic T --records N --rate R

The harness (bench.mirror_bench) runs these so that client CPU never shares a GIL with
the harness or with another client. Every wait is bounded by --timeout-s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from bench import workload
from bench.workload import (
    CONSUMER_CONFIG,
    PRODUCER_CONFIG,
    DeliveryStats,
    Traceparents,
    assign_from_beginning,
    make_values,
    percentile_ms,
)

# The producer config of every mirror-bench step: the broker bench's, plus idempotence.
IDEMPOTENT_PRODUCER_CONFIG: dict[str, Any] = {**PRODUCER_CONFIG, "enable.idempotence": True}
LAG_FETCH_WAIT_MS = 10
WARMUP_KEY = b"warmup"
SEND_TIME_BYTES = 8
DRAIN_BATCH = 10_000


def run_produce(args: argparse.Namespace) -> dict[str, Any]:
    """The broker bench's produce step with idempotence (first produce() to flush())."""
    return workload.run_produce(args, IDEMPOTENT_PRODUCER_CONFIG, traceparents(args))


def traceparents(args: argparse.Namespace) -> Traceparents | None:
    """--trace-sampled-ratio R: every record carries a traceparent, R of them sampled."""
    ratio = args.trace_sampled_ratio
    return None if ratio is None else Traceparents(ratio)


def produce_retrying(producer: Producer, topic: str, msg: Message) -> None:
    """Forward one consumed message to the same partition; wait when the queue is full."""
    timestamp = msg.timestamp()[1]
    while True:
        try:
            producer.produce(
                topic,
                value=msg.value(),
                key=msg.key(),
                partition=msg.partition() or 0,
                headers=msg.headers(),
                timestamp=timestamp if timestamp > 0 else 0,
            )
            return
        except BufferError:
            producer.poll(0.01)


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """A quick mirror as people write it: group consumer, poll() -> produce() per message."""
    stats = DeliveryStats()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"naive-mirror-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    producer_config = {**IDEMPOTENT_PRODUCER_CONFIG, "bootstrap.servers": args.target_bootstrap}
    producer_config["on_delivery"] = stats.on_delivery
    producer = Producer(producer_config)
    deadline_s = time.monotonic() + args.timeout_s
    first_ns: int | None = None
    copied = 0
    consume_errors = 0
    first_error: str | None = None
    try:
        consumer.subscribe([args.topic])
        while copied < args.records and time.monotonic() < deadline_s:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                consume_errors += 1
                first_error = first_error or str(msg.error())
                continue
            if first_ns is None:
                first_ns = time.time_ns()
            produce_retrying(producer, args.target_topic, msg)
            copied += 1
            producer.poll(0)
        unflushed = producer.flush(max(0.0, deadline_s - time.monotonic()))
        done_ns = time.time_ns()
    finally:
        consumer.close()
    delivered = len(stats.latencies_s)
    elapsed_s = (done_ns - args.started_at_ns) / 1e9
    steady_s = (done_ns - first_ns) / 1e9 if first_ns is not None else None
    return {
        "step": "naive",
        "records": delivered,
        "copied": copied,
        "elapsed_s": elapsed_s,
        "records_per_s": delivered / elapsed_s,
        "first_record_s": (first_ns - args.started_at_ns) / 1e9 if first_ns else None,
        "steady_records_per_s": delivered / steady_s if steady_s else None,
        "errors": stats.errors + consume_errors,
        "first_error": stats.first_error or first_error,
        "unflushed": unflushed,
        "ok": delivered == args.records and stats.errors == 0 and unflushed == 0,
    }


def stamped(value: bytes) -> bytes:
    """`value` with its first 8 bytes replaced by the send time (time.time_ns, big-endian)."""
    return time.time_ns().to_bytes(SEND_TIME_BYTES, "big") + value[SEND_TIME_BYTES:]


def run_lag_produce(args: argparse.Namespace) -> dict[str, Any]:
    """Send args.records stamped values at args.rate records/s (paced, not bursty)."""
    stats = DeliveryStats()
    config = {**IDEMPOTENT_PRODUCER_CONFIG, "bootstrap.servers": args.bootstrap}
    config["on_delivery"] = stats.on_delivery
    producer = Producer(config)
    values = make_values(args.value_bytes)
    headers = traceparents(args)
    # One acked record first: the stamped ones must not wait for the producer's own
    # start-up (connect, metadata, InitProducerId), which is not the mirror's latency.
    producer.produce(args.topic, key=WARMUP_KEY, value=b"", partition=0)
    if producer.flush(args.timeout_s) or stats.errors:
        error = stats.first_error or "warm-up record not acknowledged"
        return {"step": "lag-produce", "records": 0, "first_error": error, "ok": False}
    stats.latencies_s.clear()
    sent = 0
    worst_behind_s = 0.0
    started_s = time.perf_counter()
    while sent < args.records:
        now_s = time.perf_counter()
        due = min(args.records, int((now_s - started_s) * args.rate) + 1)
        worst_behind_s = max(worst_behind_s, (due - sent - 1) / args.rate)
        while sent < due:
            value = stamped(values[sent % len(values)])
            try:
                producer.produce(
                    args.topic, value=value, headers=headers(sent) if headers else None
                )
            except BufferError:
                producer.poll(0.001)
                continue
            sent += 1
        producer.poll(0)
        next_due_s = started_s + sent / args.rate
        pause_s = next_due_s - time.perf_counter()
        if pause_s > 0:
            time.sleep(pause_s)
    sending_s = time.perf_counter() - started_s
    unflushed = producer.flush(args.timeout_s)
    acked = len(stats.latencies_s)
    return {
        "step": "lag-produce",
        "records": acked,
        "target_rate": args.rate,
        "sending_s": sending_s,
        "achieved_rate": sent / sending_s,
        "worst_behind_schedule_ms": worst_behind_s * 1000,
        "p99_ack_latency_ms": percentile_ms(stats.latencies_s, 99),
        "errors": stats.errors,
        "first_error": stats.first_error,
        "unflushed": unflushed,
        "ok": acked == args.records and stats.errors == 0 and unflushed == 0,
    }


class LagTally:
    """End-to-end latencies (receive time - send time) of stamped records."""

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.warmups = 0
        self.first_error: str | None = None
        self.first_received_s: float | None = None
        self.last_received_s: float | None = None
        self.per_second_max_ms: dict[int, float] = {}

    def add(self, msg: Message, received_ns: int) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                self.first_error = self.first_error or str(err)
            return
        if msg.key() == WARMUP_KEY:
            self.warmups += 1
            return
        value = msg.value() or b""
        sent_ns = int.from_bytes(value[:SEND_TIME_BYTES], "big")
        latency_s = (received_ns - sent_ns) / 1e9
        self.latencies_s.append(latency_s)
        if self.first_received_s is None:
            self.first_received_s = received_ns / 1e9
        self.last_received_s = received_ns / 1e9
        second = int(received_ns / 1e9 - self.first_received_s)
        previous = self.per_second_max_ms.get(second, 0.0)
        self.per_second_max_ms[second] = max(previous, latency_s * 1000)


def drain(consumer: Consumer, tally: LagTally, timeout_s: float) -> None:
    """poll() returns as soon as one record is there; then take whatever else is queued."""
    msg = consumer.poll(timeout_s)
    if msg is None:
        return
    received_ns = time.time_ns()
    tally.add(msg, received_ns)
    for more in consumer.consume(num_messages=DRAIN_BATCH, timeout=0):
        tally.add(more, received_ns)


def run_lag_consume(args: argparse.Namespace) -> dict[str, Any]:
    """Read the mirrored topic from offset 0 (assign, no group) and time every record.

    Prints a "ready" line once it has seen one warm-up record per partition (so its
    fetchers run on every partition), then reads args.records stamped records (and
    skips the lag producer's own warm-up record).
    """
    config = {
        **CONSUMER_CONFIG,
        "bootstrap.servers": args.bootstrap,
        "group.id": f"lag-{uuid.uuid4().hex[:8]}",
        "fetch.wait.max.ms": LAG_FETCH_WAIT_MS,
    }
    consumer = Consumer(config)
    tally = LagTally()
    deadline_s = time.monotonic() + args.timeout_s
    try:
        partitions = assign_from_beginning(consumer, args.topic, args.timeout_s)
        while tally.warmups < partitions and time.monotonic() < deadline_s:
            drain(consumer, tally, 0.1)
        print("ready", flush=True)
        while len(tally.latencies_s) < args.records and time.monotonic() < deadline_s:
            drain(consumer, tally, 0.1)
    finally:
        consumer.close()
    latencies = tally.latencies_s
    seconds = sorted(tally.per_second_max_ms)
    first_s, last_s = tally.first_received_s, tally.last_received_s
    receiving_s = last_s - first_s if first_s is not None and last_s is not None else 0.0
    return {
        "step": "lag-consume",
        "records": len(latencies),
        "warmups": tally.warmups,
        "fetch_wait_max_ms": LAG_FETCH_WAIT_MS,
        "records_per_s": (len(latencies) - 1) / receiving_s if receiving_s > 0 else None,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "p999_ms": percentile_ms(latencies, 99.9),
        "max_ms": max(latencies) * 1000 if latencies else None,
        "per_second_max_ms": [round(tally.per_second_max_ms[s], 1) for s in seconds],
        "first_error": tally.first_error,
        "ok": len(latencies) == args.records and tally.warmups >= partitions,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.mirror_clients", description=__doc__)
    parser.add_argument("step", choices=["produce", "naive", "lag-produce", "lag-consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--target-bootstrap", help="naive: where to write")
    parser.add_argument("--target-topic", help="naive: topic to write")
    parser.add_argument("--started-at-ns", type=int, default=0, help="naive: harness start")
    parser.add_argument("--rate", type=float, default=1000.0, help="lag-produce: records/s")
    parser.add_argument(
        "--trace-sampled-ratio",
        type=float,
        help="produce, lag-produce: a traceparent header on every record, this share sampled",
    )
    return parser.parse_args(argv)


STEPS = {
    "produce": run_produce,
    "naive": run_naive,
    "lag-produce": run_lag_produce,
    "lag-consume": run_lag_consume,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = STEPS[args.step](args)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
