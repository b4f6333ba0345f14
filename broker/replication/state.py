"""A partition leader's view of its replicas: follower progress, ISR changes, high watermark.

Pure code (time is passed in), as Kafka's `Partition`/`Replica` bookkeeping:

* A follower's fetch offset is its log end offset. It is *caught up* at a fetch whose offset
  reaches the leader's log end offset; a fetch reaching the leader's end offset as of the
  follower's previous fetch proves it was caught up at that previous fetch.
* The high watermark is the lowest log end offset in the ISR. As KIP-966 has it, it does not
  advance while the ISR is smaller than `min.insync.replicas`. It never moves back.
* The ISR shrinks by followers not caught up for `replica.lag.time.max.ms`; it grows by a
  follower whose log reaches the high watermark and the start of the current leader epoch.
  Both changes are only *proposed* here; the controller decides, and `update` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FollowerProgress:
    log_end_offset: int = -1  # unknown until the follower's first fetch
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    leader_end_at_last_fetch: int = 0


class LeaderState:
    """Leader-side replication state of one partition for one leader epoch."""

    def __init__(
        self,
        *,
        local_id: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
        leader_epoch: int,
        partition_epoch: int,
        high_watermark: int,
        epoch_start_offset: int,
        now_ms: int,
    ) -> None:
        assert local_id in isr, f"leader {local_id} must be in the ISR {isr}"
        self.local_id = local_id
        self.replicas = replicas
        self.isr = isr
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.high_watermark = high_watermark
        self.epoch_start_offset = epoch_start_offset
        # A new leader gives every follower a full lag window before judging it.
        self.followers = {
            r: FollowerProgress(last_caught_up_ms=now_ms) for r in replicas if r != local_id
        }

    def update(self, isr: tuple[int, ...], partition_epoch: int) -> None:
        """The controller committed an ISR change (ours or its own) for this leader epoch."""
        assert self.local_id in isr and partition_epoch >= self.partition_epoch
        self.isr, self.partition_epoch = isr, partition_epoch

    def follower_fetched(
        self, replica_id: int, fetch_offset: int, leader_end_offset: int, now_ms: int
    ) -> bool:
        """Record a follower's fetch; False if `replica_id` is not a follower of this partition."""
        progress = self.followers.get(replica_id)
        if progress is None:
            return False
        if fetch_offset >= leader_end_offset:
            progress.last_caught_up_ms = now_ms
        elif fetch_offset >= progress.leader_end_at_last_fetch:
            progress.last_caught_up_ms = max(progress.last_caught_up_ms, progress.last_fetch_ms)
        progress.log_end_offset = fetch_offset
        progress.last_fetch_ms = now_ms
        progress.leader_end_at_last_fetch = leader_end_offset
        return True

    def advance_high_watermark(self, leader_end_offset: int, min_insync_replicas: int) -> bool:
        """Move the high watermark up to the ISR's lowest log end; True if it moved."""
        if len(self.isr) < min_insync_replicas:
            return False
        ends = [leader_end_offset]
        ends += [self.followers[r].log_end_offset for r in self.isr if r != self.local_id]
        candidate = min(ends)
        if candidate <= self.high_watermark:
            return False
        self.high_watermark = candidate
        return True

    def isr_after_shrink(self, now_ms: int, lag_max_ms: int) -> tuple[int, ...] | None:
        """The ISR without followers lagging over `lag_max_ms`, or None if nobody lags."""
        lagging = {
            r
            for r in self.isr
            if r != self.local_id and now_ms - self.followers[r].last_caught_up_ms > lag_max_ms
        }
        if not lagging:
            return None
        return tuple(r for r in self.isr if r not in lagging)

    def isr_after_expand(self) -> tuple[int, ...] | None:
        """The ISR plus followers that caught up, or None if none did."""
        joining = [
            r
            for r, progress in self.followers.items()
            if r not in self.isr
            and progress.log_end_offset >= self.high_watermark
            and progress.log_end_offset >= self.epoch_start_offset
        ]
        if not joining:
            return None
        return tuple(r for r in self.replicas if r in self.isr or r in joining)
