"""The committed metadata a controller holds: the image, the record stream brokers fetch, and
the waiters of proposals in flight.

A Raft COMMAND entry carries a batch of metadata records (`encode_batch`), applied all or
nothing so one RPC's changes (a topic with its partitions) land together. A batch the image
refuses is skipped on every node alike (the image is deterministic) and left out of the
stream. Offsets are Raft indexes, the same on every controller, so any of them can serve
FetchMetadata from its own committed state.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from enum import Enum

import anyio

from broker.kraft.messages import Entry, EntryKind, Snapshot
from broker.kraft.metadata import MetadataError, MetadataImage, MetadataRecord, decode, encode

log = logging.getLogger(__name__)

MAX_FETCH_ENTRIES = 1_000


def encode_batch(records: list[MetadataRecord]) -> bytes:
    """One record per line: compact JSON escapes newlines inside strings."""
    return b"\n".join(encode(r) for r in records)


def decode_batch(data: bytes) -> tuple[MetadataRecord, ...]:
    return tuple(decode(line) for line in data.split(b"\n"))


class Outcome(Enum):
    APPLIED = "applied"
    REJECTED = "rejected"  # committed, but the image refused it
    LOST = "lost"  # another entry took its index (its leader was deposed), or unknown


@dataclass(slots=True)
class Waiter:
    index: int
    term: int
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: Outcome | None = None

    def resolve(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.done.set()


@dataclass(frozen=True, slots=True)
class MetadataSlice:
    snapshot: bytes | None
    records: tuple[bytes, ...]
    next_offset: int


class MetadataState:
    def __init__(self) -> None:
        self.image = MetadataImage()
        self.applied = 0
        self._snapshot = Snapshot(0, 0)
        self._batches: list[tuple[int, tuple[bytes, ...]]] = []  # after the snapshot
        self._waiters: dict[int, Waiter] = {}
        self._changed = anyio.Event()

    # ------------------------------------------------------------------ the driver's side

    def reset(self, snapshot: Snapshot) -> None:
        """Adopt a snapshot (a restart, or one installed by the leader)."""
        self.image = MetadataImage.from_snapshot(snapshot.data)
        self.applied = snapshot.last_index
        self._snapshot = snapshot
        self._batches = []
        for index in [i for i in self._waiters if i <= snapshot.last_index]:
            self._waiters.pop(index).resolve(Outcome.LOST)
        self._notify()

    def apply(self, entry: Entry) -> None:
        outcome = Outcome.APPLIED
        if entry.kind is EntryKind.COMMAND:
            outcome = self._apply_batch(entry)
        self.applied = entry.index
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            waiter.resolve(outcome if waiter.term == entry.term else Outcome.LOST)
        self._notify()

    def _apply_batch(self, entry: Entry) -> Outcome:
        try:
            batch = decode_batch(entry.data)
            image = self.image if len(batch) == 1 else self.image.copy()
            for record in batch:
                image.apply(record)  # all or nothing per record
        except MetadataError as exc:
            log.error("skipping metadata entry %d: %s", entry.index, exc)
            return Outcome.REJECTED
        self.image = image
        self._batches.append((entry.index, tuple(entry.data.split(b"\n"))))
        return Outcome.APPLIED

    def compacted(self, snapshot: Snapshot) -> None:
        """The Raft log now starts at `snapshot`: forget the batches it covers."""
        self._snapshot = snapshot
        keep = bisect.bisect_right(self._batches, snapshot.last_index, key=lambda b: b[0])
        del self._batches[:keep]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ------------------------------------------------------------------ the service's side

    def expect(self, index: int, term: int) -> Waiter:
        """Wait for the entry about to be proposed at (term, index)."""
        waiter = Waiter(index, term)
        self._waiters[index] = waiter
        return waiter

    async def wait(self, waiter: Waiter, timeout_s: float) -> Outcome | None:
        """The waiter's outcome, or None after `timeout_s`."""
        with anyio.move_on_after(timeout_s):
            await waiter.done.wait()
        if self._waiters.get(waiter.index) is waiter and waiter.outcome is None:
            del self._waiters[waiter.index]
        return waiter.outcome

    def read(self, from_offset: int) -> MetadataSlice | None:
        """What a broker that has applied through `from_offset` needs next, or None if the
        stream has nothing after it yet."""
        if from_offset < self._snapshot.last_index:
            batches = self._batches[:MAX_FETCH_ENTRIES]
            return self._slice(self._snapshot.data, batches, self._snapshot.last_index)
        if from_offset >= self.applied:
            return None
        first = bisect.bisect_right(self._batches, from_offset, key=lambda b: b[0])
        return self._slice(None, self._batches[first : first + MAX_FETCH_ENTRIES], from_offset)

    def _slice(
        self, snapshot: bytes | None, batches: list[tuple[int, tuple[bytes, ...]]], base: int
    ) -> MetadataSlice:
        complete = not batches or batches[-1] is self._batches[-1]
        next_offset = self.applied if complete else batches[-1][0]
        records = tuple(r for _, batch in batches for r in batch)
        return MetadataSlice(snapshot, records, max(next_offset, base))

    async def fetch(self, from_offset: int, wait_ms: int) -> MetadataSlice:
        """`read`, waiting up to `wait_ms` for something new; empty if nothing came."""
        with anyio.move_on_after(max(wait_ms, 0) / 1000):
            while (found := self.read(from_offset)) is None:
                await self._changed.wait()
            return found
        return MetadataSlice(None, (), from_offset)
