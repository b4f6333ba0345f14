"""What a Raft node needs on disk, as data: the driver writes it, the node never does I/O.

Each Ready carries a `Persist` (the changes since the previous Ready). The driver must make it
durable, atomically, before it sends that Ready's messages: a vote or an acknowledgement that
is sent but then forgotten in a crash breaks Raft's safety. `PersistedState.apply` is the
reference meaning of a `Persist`; a node restarted from the result (`RaftNode(...,
persisted=state)`) carries on where it crashed.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.kraft.messages import EMPTY_SNAPSHOT, Entry, Snapshot


@dataclass(frozen=True, slots=True)
class HardState:
    """Term and vote must be durable before any message is sent (§5.1, §5.2).

    `commit_index` need not be synced on its own: losing it only delays re-applying committed
    entries after a restart until a leader confirms them again.
    """

    term: int = 0
    voted_for: int | None = None
    commit_index: int = 0


@dataclass(frozen=True, slots=True)
class Persist:
    """Apply in this order: write `snapshot` (and drop persisted entries it covers), drop entries
    from `truncate_from` on, append `entries`, write `hard_state`. None means unchanged."""

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    truncate_from: int | None = None
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class PersistedState:
    hard_state: HardState = HardState()
    snapshot: Snapshot = EMPTY_SNAPSHOT
    entries: tuple[Entry, ...] = ()

    def apply(self, persist: Persist) -> PersistedState:
        snapshot = persist.snapshot or self.snapshot
        entries = self.entries
        if persist.snapshot is not None or persist.truncate_from is not None:
            end = persist.truncate_from
            kept = (e for e in entries if e.index > snapshot.last_index)
            entries = tuple(e for e in kept if end is None or e.index < end)
        if persist.entries:
            last_index = entries[-1].index if entries else snapshot.last_index
            assert persist.entries[0].index == last_index + 1, (persist.entries, last_index)
            entries += persist.entries
        return PersistedState(persist.hard_state or self.hard_state, snapshot, entries)
