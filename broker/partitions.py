"""The partitions this broker hosts: each a log with its producer state."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from broker.log import LogConfig, PartitionLog
from broker.log.producer_snapshot_files import restore_producer_state
from broker.producer_state import ProducerStateTable
from broker.protocol.errors import ErrorCode
from broker.replication.state import LeaderState

SINGLE_NODE = -2  # leader_id of a partition in a single-node region: this broker, always


@dataclass
class Partition:
    """A hosted partition; in a multi-broker region also its replication role.

    `leader_id` is SINGLE_NODE (everything appended is committed), this broker's id with a
    `leader` state, or another broker's id (or -1, no leader) while this one follows.
    """

    topic: str
    index: int
    log: PartitionLog
    on_append: Callable[[], None]
    producers: ProducerStateTable = field(default_factory=ProducerStateTable)
    leader_epoch: int = 0
    leader_id: int = SINGLE_NODE
    leader: LeaderState | None = None
    min_insync_replicas: int = 1
    follower_high_watermark: int = 0
    replicated: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        self.log.producers = self.producers  # snapshotted by the log at each roll and close

    def restore_producer_state(self) -> None:
        """Rebuild the producer state for the log as it now is (after open or truncation):
        from the newest producer snapshot and the batches after it, or the whole log."""
        restore_producer_state(self.log, self.producers)

    @property
    def is_leader(self) -> bool:
        return self.leader_id == SINGLE_NODE or self.leader is not None

    def refusal(self, client_leader_epoch: int = -1) -> int:
        """Why a request for this partition must go elsewhere (Kafka's leader and leader
        epoch checks), or 0: a follower, or a client whose epoch is ahead or behind ours."""
        if not self.is_leader:
            return ErrorCode.not_leader_or_follower
        if client_leader_epoch > self.leader_epoch:
            return ErrorCode.unknown_leader_epoch
        if 0 <= client_leader_epoch < self.leader_epoch:
            return ErrorCode.fenced_leader_epoch
        return ErrorCode.none

    @property
    def high_watermark(self) -> int:
        if self.leader_id == SINGLE_NODE:
            return self.log.log_end_offset
        if self.leader is not None:
            return self.leader.high_watermark
        return min(self.follower_high_watermark, self.log.log_end_offset)

    def notify_replicated(self) -> None:
        """Wake acks=all producers and consumers: the high watermark or the ISR changed."""
        self.replicated.set()
        self.replicated = anyio.Event()
        self.on_append()

    @property
    def last_stable_offset(self) -> int:
        return self.high_watermark

    def notify_appended(self) -> None:
        """After a leader's append: wake fetches; when the leader is the only in-sync replica
        its own log end moves the high watermark (no follower fetch will), as Kafka's
        maybeIncrementLeaderHW after an append."""
        leader = self.leader
        if leader is not None and leader.advance_high_watermark(
            self.log.log_end_offset, self.min_insync_replicas
        ):
            self.notify_replicated()
        else:
            self.on_append()


def partition_dir(data_dir: Path, topic: str, index: int) -> Path:
    return data_dir / "topics" / f"{topic}-{index}"


class PartitionManager:
    """Opens, finds and deletes partitions; wakes long-polling fetches after appends."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._appended = anyio.Event()

    def appended(self) -> anyio.Event:
        """An event set at the next append to any partition (then replaced)."""
        return self._appended

    def _notify(self) -> None:
        self._appended.set()
        self._appended = anyio.Event()

    def get(self, topic: str, index: int) -> Partition | None:
        return self._partitions.get((topic, index))

    def all(self) -> list[Partition]:
        return list(self._partitions.values())

    def open(self, topic: str, index: int, config: LogConfig, *, now_ms: int) -> Partition:
        key = (topic, index)
        existing = self._partitions.get(key)
        if existing is not None:
            return existing
        directory = partition_dir(self._data_dir, topic, index)
        directory.mkdir(parents=True, exist_ok=True)
        log = PartitionLog.open(directory, config, now_ms=now_ms)
        partition = Partition(topic, index, log, self._notify)
        partition.restore_producer_state()
        self._partitions[key] = partition
        return partition

    def reconfigure(self, topic: str, config: LogConfig) -> None:
        for (name, _), partition in self._partitions.items():
            if name == topic:
                partition.log.config = config

    def delete_topic(self, topic: str) -> None:
        for key in [k for k in self._partitions if k[0] == topic]:
            self._partitions.pop(key).log.close()
            shutil.rmtree(partition_dir(self._data_dir, *key), ignore_errors=True)
        self._notify()

    def close_all(self) -> None:
        for partition in self._partitions.values():
            partition.log.close()
        self._partitions.clear()
