"""SIGKILL during acks=all production: every acknowledged record survives, in order."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from tests.integration.conftest import BrokerProcess
from tests.integration.test_clients import create_topic

PRODUCER_SCRIPT = """
import sys
from confluent_kafka import Producer
bootstrap, topic, out = sys.argv[1], sys.argv[2], sys.argv[3]
acked = open(out, "w", buffering=1)
def on_delivery(err, msg):
    if err is None:
        acked.write(f"{msg.offset()} {msg.value().decode()}\\n")
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
              "linger.ms": 2, "message.timeout.ms": 4000})
i = 0
while True:
    p.produce(topic, value=f"record-{i}".encode(), on_delivery=on_delivery)
    i += 1
    if i % 100 == 0:
        p.poll(0.001)
"""


def test_sigkill_under_acks_all_loses_no_acknowledged_record(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    create_topic(broker.bootstrap, "durable")
    acked_file = tmp_path / "acked.txt"
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER_SCRIPT, broker.bootstrap, "durable", str(acked_file)]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            not acked_file.exists() or acked_file.stat().st_size < 200_000
        ):
            time.sleep(0.1)
        broker.kill()
        time.sleep(0.5)  # let in-flight acknowledgements land in the file
    finally:
        producer.kill()
        producer.wait(10)
    acked = {}
    for line in acked_file.read_text().splitlines():
        offset, value = line.split(" ", 1)
        acked[int(offset)] = value
    assert len(acked) > 5000, "the producer was acknowledged for a meaningful amount of data"

    broker.start()
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "verify", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition("durable", 0, 0)])
    stored: dict[int, str] = {}
    deadline = time.monotonic() + 30
    while len(stored) < max(acked) + 1 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            stored[msg.offset()] = msg.value().decode()
    consumer.close()
    missing = [offset for offset in acked if stored.get(offset) != acked[offset]]
    assert not missing, f"{len(missing)} acknowledged records lost, first {missing[:5]}"
    assert list(stored) == list(range(len(stored))), "offsets are dense and in order"
    values = [int(v.split("-")[1]) for v in stored.values()]
    assert values == sorted(values) and len(set(values)) == len(values), "in order, no duplicates"
