"""Turn the controller's partition records into this broker's replica roles.

The metadata image says who leads each partition at which leader epoch; this module makes a
hosted partition a leader (fresh `LeaderState`, high watermark kept) or a follower (fetching
from the leader after truncating to it), and updates a leader's ISR when the controller
changes it. Waiting producers are woken on every change so they re-check what they wait for.
"""

from __future__ import annotations

from broker.kraft.metadata import PartitionInfo
from broker.partitions import Partition
from broker.replication.follower import ReplicaFetcher
from broker.replication.state import LeaderState


def apply_partition_info(
    partition: Partition, info: PartitionInfo, local_id: int, fetcher: ReplicaFetcher, now_ms: int
) -> None:
    """Bring a hosted partition's role in line with the committed `info`."""
    key = (partition.topic, partition.index)
    if info.leader == local_id:
        fetcher.unfollow(key)
        leader = partition.leader
        if leader is None or leader.leader_epoch != info.leader_epoch:
            _become_leader(partition, info, local_id, now_ms)
        elif info.partition_epoch > leader.partition_epoch:
            leader.update(info.isr, info.partition_epoch)
            advance_high_watermark(partition)
        return
    changed = (partition.leader_id, partition.leader_epoch) != (info.leader, info.leader_epoch)
    if partition.leader is not None or changed:
        partition.leader = None
        partition.leader_id, partition.leader_epoch = info.leader, info.leader_epoch
        partition.notify_replicated()
    if info.leader >= 0:
        fetcher.follow(key, info.leader, info.leader_epoch)
    else:
        fetcher.unfollow(key)  # no leader (no unclean election): wait for one to come back


def _become_leader(partition: Partition, info: PartitionInfo, local_id: int, now_ms: int) -> None:
    high_watermark = partition.high_watermark
    assert info.leader_epoch >= partition.leader_epoch, "leader epochs never go back"
    partition.leader_id, partition.leader_epoch = local_id, info.leader_epoch
    partition.leader = LeaderState(
        local_id=local_id,
        replicas=info.replicas,
        isr=info.isr,
        leader_epoch=info.leader_epoch,
        partition_epoch=info.partition_epoch,
        high_watermark=high_watermark,
        epoch_start_offset=partition.log.log_end_offset,
        now_ms=now_ms,
    )
    advance_high_watermark(partition)
    partition.notify_replicated()


def advance_high_watermark(partition: Partition) -> None:
    leader = partition.leader
    assert leader is not None
    if leader.advance_high_watermark(partition.log.log_end_offset, partition.min_insync_replicas):
        partition.notify_replicated()


def follower_fetched(partition: Partition, replica_id: int, fetch_offset: int, now_ms: int) -> None:
    """A follower fetched at `fetch_offset` (its log end): maybe the high watermark moves."""
    leader = partition.leader
    if leader is None:
        return
    if leader.follower_fetched(replica_id, fetch_offset, partition.log.log_end_offset, now_ms):
        advance_high_watermark(partition)


def stop_replica(partition: Partition, fetcher: ReplicaFetcher | None) -> None:
    """The partition is no longer hosted here (deleted): wake whoever waits on it."""
    if fetcher is not None:
        fetcher.unfollow((partition.topic, partition.index))
    partition.leader = None
    partition.leader_id = -1
    partition.notify_replicated()
