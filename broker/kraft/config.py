"""Timing and batching knobs of a Raft node, validated once so the node can trust them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Defaults follow KRaft's controller.quorum.election.timeout.ms (1 s) with Raft's advice
    that heartbeats come an order of magnitude more often than elections could start."""

    election_timeout_min_ms: int = 1_000
    election_timeout_max_ms: int = 2_000
    heartbeat_interval_ms: int = 100
    max_entries_per_append: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval_ms < self.election_timeout_min_ms:
            raise ValueError("need 0 < heartbeat_interval_ms < election_timeout_min_ms")
        if self.election_timeout_max_ms <= self.election_timeout_min_ms:
            # Randomness is what breaks split votes (§5.2).
            raise ValueError("need election_timeout_max_ms > election_timeout_min_ms")
        if self.max_entries_per_append < 1:
            raise ValueError("need max_entries_per_append >= 1")
