"""acks=all: wait until the ISR holds an append, as Kafka's produce purgatory does."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

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


async def all_replicated(
    appends: Sequence[tuple[Partition, int, int]], timeout_ms: int
) -> list[int]:
    """The error of each (partition, end offset, leader epoch) append once the ISR holds it,
    all within one request's timeout; REQUEST_TIMED_OUT for those still waiting then."""
    errors: list[int] = [ErrorCode.request_timed_out] * len(appends)
    with anyio.move_on_after(max(timeout_ms, 0) / 1000):
        for number, (partition, end_offset, leader_epoch) in enumerate(appends):
            errors[number] = await replicated(partition, end_offset, leader_epoch)
    return errors
