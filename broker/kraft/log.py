"""The in-memory Raft log: a snapshot followed by entries, and what of it is not yet durable.

The node mutates it; `take_unstable()` hands the changes since the last call to the node's
Ready so the driver can make them durable. Indexes start at 1; index 0 (term 0) is the empty
prefix every log shares.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from broker.kraft.messages import EMPTY_SNAPSHOT, Entry, Snapshot


class RaftLog:
    def __init__(self, snapshot: Snapshot = EMPTY_SNAPSHOT, entries: Sequence[Entry] = ()) -> None:
        self._snapshot = snapshot
        self._entries: list[Entry] = []
        self._check_follows(entries, snapshot.last_index, snapshot.last_term)
        self._entries.extend(entries)
        # What restored from disk is durable already.
        self._stable_last_index = self.last_index
        self._dirty_from: int | None = None
        self._snapshot_dirty = False

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def first_index(self) -> int:
        """The first index still held as an entry (the one after the snapshot)."""
        return self._snapshot.last_index + 1

    @property
    def last_index(self) -> int:
        return self._snapshot.last_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self._snapshot.last_term

    def term_at(self, index: int) -> int | None:
        """The term at `index`, or None if it is past the end or compacted into the snapshot."""
        if index == self._snapshot.last_index:
            return self._snapshot.last_term
        if index < self._snapshot.last_index or index > self.last_index:
            return None
        return self._entries[index - self.first_index].term

    def entries(self, lo: int, hi: int) -> tuple[Entry, ...]:
        """Entries with lo <= index < hi."""
        assert self.first_index <= lo <= hi <= self.last_index + 1, (lo, hi, self.first_index)
        return tuple(self._entries[lo - self.first_index : hi - self.first_index])

    def is_up_to_date(self, last_log_term: int, last_log_index: int) -> bool:
        """Is a log ending at (term, index) at least as up to date as this one (§5.4.1)?"""
        return (last_log_term, last_log_index) >= (self.last_term, self.last_index)

    def first_index_of_term(self, index: int) -> int:
        """The first held index with the same term as `index` (a back-off hint for a leader)."""
        term = self.term_at(index)
        assert term is not None, index
        if index == self._snapshot.last_index:
            return index
        # Terms never decrease along the log, so the run of `term` is found by bisection.
        position = bisect.bisect_left(self._entries, term, key=_term)
        return self.first_index + position

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding `term`, if any."""
        position = bisect.bisect_right(self._entries, term, key=_term)
        if position:
            last = self._entries[position - 1]
            return last.index if last.term == term else None
        return self._snapshot.last_index if self._snapshot.last_term == term else None

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        self._check_follows(entries, self.last_index, self.last_term)
        self._mark_dirty(entries[0].index)
        self._entries.extend(entries)

    def truncate(self, from_index: int) -> None:
        """Drop the entries at `from_index` and after (a follower's uncommitted conflict)."""
        assert self.first_index <= from_index <= self.last_index, (from_index, self.first_index)
        del self._entries[from_index - self.first_index :]
        self._mark_dirty(from_index)

    def compact(self, up_to_index: int, data: bytes) -> None:
        """Replace the prefix through `up_to_index` with the application's snapshot of it."""
        term = self.term_at(up_to_index)
        assert term is not None and up_to_index > self._snapshot.last_index, up_to_index
        del self._entries[: up_to_index - self.first_index + 1]
        self._snapshot = Snapshot(up_to_index, term, data)
        self._snapshot_dirty = True

    def install(self, snapshot: Snapshot) -> None:
        """Adopt a leader's snapshot: keep a suffix that agrees with it, else drop the log (§7)."""
        assert snapshot.last_index > self._snapshot.last_index, snapshot.last_index
        if self.term_at(snapshot.last_index) == snapshot.last_term:
            del self._entries[: snapshot.last_index - self.first_index + 1]
        else:
            self._entries.clear()
            self._mark_dirty(snapshot.last_index + 1)
        self._snapshot = snapshot
        self._snapshot_dirty = True

    def take_unstable(self) -> tuple[Snapshot | None, int | None, tuple[Entry, ...]]:
        """(new snapshot, drop persisted entries from this index, entries to append) since the
        last call; the caller promises they will be made durable before anything is sent."""
        snapshot = self._snapshot if self._snapshot_dirty else None
        truncate_from: int | None = None
        entries: tuple[Entry, ...] = ()
        if self._dirty_from is not None:
            if self._dirty_from <= self._stable_last_index:
                truncate_from = self._dirty_from
            entries = self.entries(max(self._dirty_from, self.first_index), self.last_index + 1)
        self._stable_last_index = self.last_index
        self._dirty_from = None
        self._snapshot_dirty = False
        return snapshot, truncate_from, entries

    def _mark_dirty(self, index: int) -> None:
        self._dirty_from = index if self._dirty_from is None else min(self._dirty_from, index)

    @staticmethod
    def _check_follows(entries: Sequence[Entry], last_index: int, last_term: int) -> None:
        for entry in entries:
            assert entry.index == last_index + 1, (entry.index, last_index)
            assert entry.term >= last_term, (entry.term, last_term)
            last_index, last_term = entry.index, entry.term


def _term(entry: Entry) -> int:
    return entry.term
