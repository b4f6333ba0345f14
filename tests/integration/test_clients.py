"""Unmodified Kafka clients produce to and consume from our broker."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from tests.integration.conftest import BrokerProcess

RECORDS = 500


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
    )
    futures[name].result(timeout=10)


def produce_confluent(
    bootstrap: str, topic: str, count: int, **config: object
) -> list[tuple[int, int]]:
    """Produce `count` keyed records; return (partition, offset) of each acknowledged one."""
    acked: list[tuple[int, int]] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        assert err is None, err
        acked.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **config})
    for i in range(count):
        producer.produce(
            topic,
            key=f"k{i}".encode(),
            value=f"value-{i}".encode(),
            headers=[("h", f"{i}".encode())],
            on_delivery=on_delivery,
        )
        producer.poll(0)
    assert producer.flush(20) == 0
    return acked


def consume_confluent(
    bootstrap: str, topic: str, count: int, group: str, timeout_s: float = 20
) -> list[object]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[object] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            messages.append(msg)
    finally:
        consumer.close()
    return messages


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_round_trip(broker: BrokerProcess, compression: str) -> None:
    topic = f"orders-{compression}"
    create_topic(broker.bootstrap, topic, partitions=3)
    acked = produce_confluent(broker.bootstrap, topic, RECORDS, **{"compression.type": compression})
    assert len(acked) == RECORDS
    messages = consume_confluent(broker.bootstrap, topic, RECORDS, group=f"g-{compression}")
    assert sorted(m.value() for m in messages) == sorted(
        f"value-{i}".encode() for i in range(RECORDS)
    )  # type: ignore[attr-defined]
    by_key = {m.key(): m for m in messages}  # type: ignore[attr-defined]
    assert by_key[b"k7"].headers() == [("h", b"7")]  # type: ignore[attr-defined]
    per_partition: dict[int, list[int]] = {}
    for m in messages:
        per_partition.setdefault(m.partition(), []).append(m.offset())  # type: ignore[attr-defined]
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets))), "offsets are dense and in order"


def test_idempotent_confluent_producer(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "idem")
    acked = produce_confluent(broker.bootstrap, "idem", RECORDS, **{"enable.idempotence": True})
    assert sorted(offset for _, offset in acked) == list(range(RECORDS))


def test_kafka_python_round_trip(broker: BrokerProcess) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    futures = [producer.send("kp-topic", key=b"k%d" % i, value=b"v%d" % i) for i in range(RECORDS)]
    producer.flush(timeout=20)
    offsets = [f.get(timeout=10).offset for f in futures]
    assert offsets == list(range(RECORDS))
    producer.close()
    consumer = KafkaConsumer(
        "kp-topic",
        bootstrap_servers=broker.bootstrap,
        group_id="kp-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    values = [m.value for m in consumer]
    consumer.close()
    assert values == [b"v%d" % i for i in range(RECORDS)]


def test_aiokafka_round_trip(broker: BrokerProcess) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def scenario() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(RECORDS):
                await producer.send("aio-topic", key=b"k", value=b"a%d" % i)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "aio-topic",
            bootstrap_servers=broker.bootstrap,
            group_id="aio",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            async with asyncio.timeout(20):
                async for msg in consumer:
                    values.append(msg.value)
                    if len(values) == RECORDS:
                        break
        finally:
            await consumer.stop()
        return values

    assert asyncio.run(scenario()) == [b"a%d" % i for i in range(RECORDS)]


def test_kcat_round_trip(broker: BrokerProcess) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is required (apt-get install -y kcat); .ci/run installs it"
    lines = "".join(f"key{i}:line {i}\n" for i in range(100))
    subprocess.run(
        [kcat, "-P", "-b", broker.bootstrap, "-t", "kcat-topic", "-K:"],
        input=lines.encode(),
        check=True,
        timeout=30,
    )
    out = subprocess.run(
        [
            kcat,
            "-C",
            "-b",
            broker.bootstrap,
            "-t",
            "kcat-topic",
            "-e",
            "-o",
            "beginning",
            "-f",
            "%k=%s\n",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert out.stdout.decode().splitlines() == [f"key{i}=line {i}" for i in range(100)]


def test_list_offsets_by_time(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "timed")
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce("timed", value=b"x", timestamp=1_000_000 + i * 1000)
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "t"})
    found = consumer.offsets_for_times([TopicPartition("timed", 0, 1_000_000 + 4500)], timeout=10)
    low, high = consumer.get_watermark_offsets(TopicPartition("timed", 0), timeout=10)
    consumer.close()
    assert found[0].offset == 5
    assert (low, high) == (0, 10)


def test_validate_only_admin_requests_change_nothing(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics(
        [NewTopic("dry", num_partitions=2, replication_factor=1)], validate_only=True
    )["dry"].result(10)
    assert "dry" not in admin.list_topics(timeout=10).topics
    create_topic(broker.bootstrap, "grow", partitions=2)
    admin.create_partitions([NewPartitions("grow", 4)], validate_only=True)["grow"].result(10)
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 2
    with pytest.raises(KafkaException):
        admin.create_partitions([NewPartitions("grow", 1)], validate_only=True)["grow"].result(10)
    with pytest.raises(KafkaException):
        admin.create_topics([NewTopic("grow", 1, 1)], validate_only=True)["grow"].result(10)
