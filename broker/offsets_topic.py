"""`__consumer_offsets`: the group coordinator's durable store, a compacted internal topic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from broker.clock import now_ms
from broker.groups import GroupCoordinator
from broker.partitions import Partition
from broker.protocol.records import Record, build_batch, decode_batch_records

if TYPE_CHECKING:
    from broker.broker import Broker

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": str(100 << 20)}


class LogOffsetStore:
    """Appends group records as one batch per call; written to the OS before returning."""

    def __init__(self, partition: Partition) -> None:
        self._partition = partition

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        timestamp_ms = now_ms()
        batch = build_batch(
            [
                Record(offset, timestamp_ms, key, value)
                for offset, (key, value) in enumerate(records)
            ]
        )
        self._partition.log.append(
            bytearray(batch), leader_epoch=self._partition.leader_epoch, now_ms=timestamp_ms
        )
        self._partition.notify_appended()

    def load(self) -> Iterable[tuple[bytes, bytes | None]]:
        log = self._partition.log
        for header, data in log.iter_batches(log.log_start_offset):
            if header.is_control:
                continue
            for record in decode_batch_records(data, header):
                if record.key is not None:
                    yield record.key, record.value


def build_group_coordinator(broker: Broker) -> GroupCoordinator:
    """A coordinator over the local `__consumer_offsets` partition (created if missing)."""
    partition = broker.partition(OFFSETS_TOPIC, 0)
    if partition is None:  # a single-node region creates it itself
        broker.open_topic(
            broker.topics.create(OFFSETS_TOPIC, 1, OFFSETS_TOPIC_CONFIGS, internal=True)
        )
        partition = broker.partition(OFFSETS_TOPIC, 0)
    assert partition is not None
    coordinator = GroupCoordinator(
        LogOffsetStore(partition),
        clock_ms=now_ms,
        initial_rebalance_delay_ms=broker.config.group_initial_rebalance_delay_ms,
    )
    coordinator.load()
    return coordinator
