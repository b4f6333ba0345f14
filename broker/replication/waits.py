"""acks=all: wait until the ISR holds an append, as Kafka's produce purgatory does."""

from __future__ import annotations

from broker.partitions import Partition
from broker.protocol.errors import ErrorCode


async def replicated(partition: Partition, end_offset: int, leader_epoch: int) -> int:
    """Wait until the high watermark reaches `end_offset`; return the Kafka error code.

    NOT_LEADER_OR_FOLLOWER if this broker lost the leadership meanwhile, and
    NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below min.insync.replicas (then the
    high watermark cannot reach the append). The caller bounds the wait with its timeout.
    """
    while True:
        if not partition.is_leader or partition.leader_epoch != leader_epoch:
            return ErrorCode.not_leader_or_follower
        if partition.high_watermark >= end_offset:
            return ErrorCode.none
        leader = partition.leader
        if leader is not None and len(leader.isr) < partition.min_insync_replicas:
            return ErrorCode.not_enough_replicas_after_append
        await partition.replicated.wait()
