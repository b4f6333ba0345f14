"""An instrumented application for the tracing tests, run as its own process (its tracer
provider is process-wide and flushes at exit): produces keyed records with trace contexts
into one region, or consumes them in another with a `process` span per record.

    python -m tests.integration.traced_app produce BOOTSTRAP TOPIC COUNT REGION [KEY_PREFIX]
    python -m tests.integration.traced_app consume BOOTSTRAP TOPIC COUNT REGION

The span store and its bounds come from the environment (REGIONLINK_SPAN_STORE...), as for
every regionlink process. Prints one JSON line: the keys handled.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from confluent_kafka import Consumer

from broker import telemetry
from mirror.client_tracing import process_span, traced_producer

WAIT_S = 60.0


def produce(bootstrap: str, topic: str, count: int, region: str, prefix: str) -> list[str]:
    producer = traced_producer({"bootstrap.servers": bootstrap, "linger.ms": 5}, region)
    keys = [f"{prefix}{i}" for i in range(count)]
    for key in keys:
        producer.produce(topic, value=f"value of {key}".encode(), key=key.encode())
        producer.poll(0)
    assert producer.flush(WAIT_S) == 0, "every record acknowledged"
    return keys


def consume(bootstrap: str, topic: str, count: int, region: str) -> list[str]:
    group = f"traced-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    keys: list[str] = []
    deadline_s = time.monotonic() + WAIT_S
    try:
        while len(keys) < count and time.monotonic() < deadline_s:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            with process_span(message, group, region, bootstrap):
                keys.append((message.key() or b"").decode())
    finally:
        consumer.close()
    return keys


def main(argv: list[str]) -> None:
    mode, bootstrap, topic, count, region, *rest = argv
    provider = telemetry.configure(f"traced-app-{mode}")
    assert provider is not None, "no span store in the environment"
    if mode == "produce":
        keys = produce(bootstrap, topic, int(count), region, rest[0] if rest else "k")
    else:
        keys = consume(bootstrap, topic, int(count), region)
    provider.shutdown()  # flushes every span before the keys are reported
    print(json.dumps({"keys": keys}))


if __name__ == "__main__":
    main(sys.argv[1:])
