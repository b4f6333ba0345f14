"""A partition's whole log in one region, read once a drill's workload has ended.

The cross-region checks and the failover RPO need what each region finally holds, not what
consumers happened to poll: the runner reads every partition of the workload's topics in
every region and records them (`HistoryWriter.contents`). A plain assigned consumer reads
from the log start to the end it reports when it reaches it (`enable.partition.eof`), so
gaps — transaction markers, a mirror topic's kept gaps — are passed over, not waited for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from chaos.endpoint import Endpoint
from chaos.model import PartitionContents, StoredRecord

READ_BATCH = 1_000
READ_WAIT_S = 0.5
READER_GROUP = "regionlink-drill-reader"  # never commits: only satisfies librdkafka


def read_partition(
    endpoint: Endpoint, topic: str, partition: int, timeout_s: float = 30.0
) -> PartitionContents:
    """Everything in `topic` (its name in that region) partition `partition`, in order."""
    consumer = Consumer(
        {
            "bootstrap.servers": endpoint.bootstrap,
            "group.id": READER_GROUP,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        start, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout_s)
        consumer.assign([TopicPartition(topic, partition, start)])
        records, end = _read_to_end(consumer, time.monotonic() + timeout_s)
    finally:
        consumer.close()
    return PartitionContents(endpoint.region, topic, partition, start, end, tuple(records))


def read_topics(
    endpoint: Endpoint, topics: Iterable[str], timeout_s: float = 30.0
) -> list[PartitionContents]:
    """Every partition of the logical `topics` as the region `endpoint` holds them."""
    names = [endpoint.topic(topic) for topic in topics]
    consumer = Consumer({"bootstrap.servers": endpoint.bootstrap, "group.id": READER_GROUP})
    try:
        metadata = {name: consumer.list_topics(name, timeout_s).topics[name] for name in names}
    finally:
        consumer.close()
    return [
        read_partition(endpoint, name, partition, timeout_s)
        for name, topic in metadata.items()
        for partition in sorted(topic.partitions)
    ]


def end_offsets(
    endpoint: Endpoint, topics: Iterable[str], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """(logical topic, partition) -> end offset in the region `endpoint` points at."""
    consumer = Consumer({"bootstrap.servers": endpoint.bootstrap, "group.id": READER_GROUP})
    try:
        out = {}
        for topic in topics:
            name = endpoint.topic(topic)
            for partition in sorted(consumer.list_topics(name, timeout_s).topics[name].partitions):
                _, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout_s)
                out[(topic, partition)] = high
        return out
    finally:
        consumer.close()


def _read_to_end(consumer: Consumer, deadline_s: float) -> tuple[list[StoredRecord], int]:
    records: list[StoredRecord] = []
    while time.monotonic() < deadline_s:
        for message in consumer.consume(READ_BATCH, READ_WAIT_S):
            error, offset = message.error(), message.offset()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"reading {message.topic()}: {error}")
            assert offset is not None
            if error is not None:
                return records, offset
            key = message.key()
            records.append(
                StoredRecord(
                    offset,
                    None if key is None else key.decode(errors="replace"),
                    (message.value() or b"").decode(errors="replace"),
                )
            )
    raise TimeoutError("the log's end was not reached in time")
