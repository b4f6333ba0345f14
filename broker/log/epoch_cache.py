"""Leader epoch -> start offset history, checkpointed like Kafka's leader-epoch-checkpoint.

Followers ask OffsetForLeaderEpoch to find where their history diverges from the
leader's; the answer comes from this small table, which must survive restarts.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

from broker.log.index import write_atomically

FILE_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_VERSION = 0


class LeaderEpochCache:
    def __init__(self, path: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self.path = path
        self.entries: list[tuple[int, int]] = entries or []  # (epoch, start offset)

    @classmethod
    def load(cls, directory: Path) -> LeaderEpochCache | None:
        """The checkpoint in directory, or None if it is missing or unreadable."""
        path = directory / FILE_NAME
        try:
            lines = path.read_text().split("\n")
            version, count = int(lines[0]), int(lines[1])
            entries = [(int(a), int(b)) for a, b in (line.split() for line in lines[2 : 2 + count])]
        except (OSError, ValueError, IndexError):
            return None
        if version != _VERSION or len(entries) != count:
            return None
        return cls(path, entries)

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED_EPOCH

    def _save(self) -> None:
        lines = [str(_VERSION), str(len(self.entries))]
        lines += [f"{epoch} {offset}" for epoch, offset in self.entries]
        write_atomically(self.path, ("\n".join(lines) + "\n").encode(), fsync=True)

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that epoch starts at start_offset; older or equal epochs change nothing."""
        if epoch < 0 or epoch <= self.latest_epoch:
            return
        assert not self.entries or start_offset >= self.entries[-1][1], "epoch start went back"
        self.entries.append((epoch, start_offset))
        self._save()

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after end_offset (the log was truncated there)."""
        kept = [entry for entry in self.entries if entry[1] < end_offset]
        if kept != self.entries:
            self.entries = kept
            self._save()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at start_offset: the epoch covering it starts there.

        As Kafka's truncateFromStart: only entries starting *before* start_offset go (the
        last of them moves to start_offset); entries starting exactly there all stay, or an
        unclean restart would answer OffsetForLeaderEpoch differently than before it.
        """
        removed = [entry for entry in self.entries if entry[1] < start_offset]
        if not removed:
            return
        self.entries = [(removed[-1][0], start_offset), *self.entries[len(removed) :]]
        self._save()

    def clear(self) -> None:
        if self.entries:
            self.entries = []
            self._save()

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's LeaderEpochFileCache.endOffsetFor: (largest epoch <= epoch, its end offset)."""
        if epoch == UNDEFINED_EPOCH or not self.entries:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == self.latest_epoch:
            return epoch, log_end_offset
        epochs = [entry[0] for entry in self.entries]
        higher = bisect_right(epochs, epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET  # newer than anything we know
        if higher == 0:
            return epoch, self.entries[0][1]  # older than our first epoch
        return epochs[higher - 1], self.entries[higher][1]
