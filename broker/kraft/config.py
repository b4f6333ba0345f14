"""Timing and batching knobs of a Raft node, validated once so the node can trust them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Defaults follow KRaft's controller.quorum.election.timeout.ms (1 s); heartbeats come
    four times per shortest election timeout, as KRaft's followers fetch at least every 500 ms
    of a 2 s fetch timeout. Every heartbeat is a gRPC call costing ~1.3 ms of CPU at each end
    here: at 100 ms a quorum of 3 spent 8.4 % of a core doing nothing, at 250 ms 5.3 %
    (docs/benchmarks.md, "Where the RF=3 CPU goes")."""

    election_timeout_min_ms: int = 1_000
    election_timeout_max_ms: int = 2_000
    heartbeat_interval_ms: int = 250
    max_entries_per_append: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval_ms < self.election_timeout_min_ms:
            raise ValueError("need 0 < heartbeat_interval_ms < election_timeout_min_ms")
        if self.election_timeout_max_ms <= self.election_timeout_min_ms:
            # Randomness is what breaks split votes (§5.2).
            raise ValueError("need election_timeout_max_ms > election_timeout_min_ms")
        if self.max_entries_per_append < 1:
            raise ValueError("need max_entries_per_append >= 1")
