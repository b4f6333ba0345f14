"""Idempotent producer state across broker restarts, restored from producer snapshots and
the batches after them: retries keep their offsets, a gap is still refused, and a
confluent-kafka idempotent producer carries on across a SIGKILL without duplicates."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from broker.log.producer_snapshot_files import snapshot_offsets
from broker.partitions import partition_dir
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, build_batch
from broker.protocol.versions import ApiKey
from tests.integration.conftest import BrokerProcess
from tests.integration.rawclient import RawClient
from tests.integration.test_clients import create_topic

SMALL_SEGMENTS = {"segment.bytes": "4096"}  # many rolls, so many snapshots


def _batch(producer_id: int, sequence: int, count: int = 5) -> bytes:
    records = [Record(i, 1000 + i, b"k", b"v" * 100) for i in range(count)]
    return build_batch(records, producer_id=producer_id, producer_epoch=0, base_sequence=sequence)


def _init_producer_id(client: RawClient) -> int:
    init = client.request(
        ApiKey.INIT_PRODUCER_ID, 4, "InitProducerIdRequest", transactional_id=None,
        transaction_timeout=60000, producer_id=-1, producer_epoch=-1,
    )  # fmt: skip
    assert init.error_code == ErrorCode.none
    return int(init.producer_id)


def test_retries_and_gaps_are_judged_after_sigkill_and_clean_restarts(
    broker: BrokerProcess,
) -> None:
    create_topic(broker.bootstrap, "snap", config=SMALL_SEGMENTS)
    with RawClient(broker.bootstrap) as client:
        pid = _init_producer_id(client)
        offsets = [client.produce("snap", _batch(pid, n * 5)).base_offset for n in range(40)]
    assert len(snapshot_offsets(partition_dir(broker.data_dir, "snap", 0))) == 2
    sequence = 40 * 5
    for restart in (broker.kill, broker.stop):
        restart()
        broker.start()
        with RawClient(broker.bootstrap) as client:
            retry = client.produce("snap", _batch(pid, sequence - 5))
            assert (retry.error_code, retry.base_offset) == (ErrorCode.none, offsets[-1])
            gap = client.produce("snap", _batch(pid, sequence + 50))
            assert gap.error_code == ErrorCode.out_of_order_sequence_number
            offsets.append(client.produce("snap", _batch(pid, sequence)).base_offset)
            assert offsets[-1] == offsets[-2] + 5
            sequence += 5


def test_confluent_idempotent_producer_carries_on_across_sigkill(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    create_topic(broker.bootstrap, "snap", config=SMALL_SEGMENTS)
    errors: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(str(error))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 500,
            "on_delivery": on_delivery,
        }
    )  # fmt: skip

    def send(numbers: range) -> None:
        for number in numbers:
            producer.produce("snap", value=f"{number:06d}".encode().ljust(100, b"."))
            producer.poll(0)

    for start in range(0, 300, 25):  # a batch per flush, several per segment
        send(range(start, start + 25))
        assert producer.flush(30) == 0
    assert snapshot_offsets(partition_dir(broker.data_dir, "snap", 0))
    send(range(300, 400))
    producer.poll(0.01)  # some of these may be in flight when the broker dies
    broker.kill()
    send(range(400, 500))
    broker.start()
    send(range(500, 800))
    assert producer.flush(60) == 0
    assert not errors, errors[:5]

    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "verify", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition("snap", 0, 0)])
    stored: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while len(stored) < 800 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            value, offset = message.value(), message.offset()
            assert value is not None and offset is not None
            stored[offset] = int(value[:6])
    consumer.close()
    assert list(stored.values()) == list(range(800)), "each record once, in order"
    assert list(stored) == list(range(800))
