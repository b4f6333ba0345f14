"""Producer-state snapshot files in a partition directory, and restoring state from them.

As Kafka's ProducerStateManager: `<offset>.snapshot` is written when a segment rolls
(offset = the new segment's base) and on clean close (offset = log end), the newest two
are kept, and restoring state loads the newest usable snapshot and replays only the
batches from its offset, so start-up reads the tail of the log, not all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from broker.log.index import write_atomically
from broker.log.producer_snapshot import (
    ProducerSnapshot,
    SnapshotError,
    decode,
    encode,
    from_table,
    restore_into,
)
from broker.producer_state import ProducerStateTable
from broker.protocol.batch import BatchHeader

log = logging.getLogger(__name__)

SUFFIX = ".snapshot"
KEPT_SNAPSHOTS = 2  # the newest and one before it, in case the newest is torn


class SnapshotLog(Protocol):
    """What restoring producer state needs of a PartitionLog."""

    directory: Path
    log_start_offset: int

    @property
    def log_end_offset(self) -> int: ...

    def iter_batches(self, start_offset: int = 0) -> Iterator[tuple[BatchHeader, bytes]]: ...


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SUFFIX}"


def snapshot_offsets(directory: Path) -> list[int]:
    """The offsets of the snapshot files in directory, oldest first."""
    offsets = []
    for path in directory.glob(f"*{SUFFIX}"):
        stem = path.name[: -len(SUFFIX)]
        if len(stem) == 20 and stem.isdigit():
            offsets.append(int(stem))
    return sorted(offsets)


def write_snapshot(directory: Path, table: ProducerStateTable, offset: int) -> None:
    """Save table as the state below offset (tmp + fsync + rename); keep the newest two."""
    write_atomically(
        snapshot_path(directory, offset), encode(from_table(table, offset)), fsync=True
    )
    offsets = snapshot_offsets(directory)
    for old in offsets[:-KEPT_SNAPSHOTS]:
        snapshot_path(directory, old).unlink(missing_ok=True)


def delete_snapshots_above(directory: Path, offset: int) -> None:
    """The log was cut at offset: snapshots past it describe batches that are gone."""
    _delete_snapshots(directory, lambda found: found > offset)


def delete_snapshots_below(directory: Path, offset: int) -> None:
    """The log now starts at offset: snapshots before it are never loaded again."""
    _delete_snapshots(directory, lambda found: found < offset)


def _delete_snapshots(directory: Path, doomed: Callable[[int], bool]) -> None:
    for found in snapshot_offsets(directory):
        if doomed(found):
            snapshot_path(directory, found).unlink(missing_ok=True)


def load_latest_snapshot(
    directory: Path, start_offset: int, end_offset: int
) -> ProducerSnapshot | None:
    """The newest intact snapshot with start_offset <= offset <= end_offset, or None."""
    for offset in reversed(snapshot_offsets(directory)):
        if not start_offset <= offset <= end_offset:
            continue
        path = snapshot_path(directory, offset)
        try:
            snapshot = decode(path.read_bytes())
        except (OSError, SnapshotError) as exc:
            log.warning("%s: ignoring producer snapshot: %s", path, exc)
            continue
        if snapshot.offset == offset:
            return snapshot
        log.warning("%s: holds offset %d, not its name's", path, snapshot.offset)
    return None


def restore_producer_state(log_: SnapshotLog, table: ProducerStateTable) -> int:
    """Rebuild table for the log as it is now (after open or truncation): the newest usable
    snapshot, then the batches from its offset to the log end; with no usable snapshot, every
    batch from the log start. Returns the offset replay started from."""
    directory = log_.directory
    delete_snapshots_above(directory, log_.log_end_offset)  # left by a crash mid-truncation
    snapshot = load_latest_snapshot(directory, log_.log_start_offset, log_.log_end_offset)
    start = log_.log_start_offset
    if snapshot is None:
        table.truncate()
    else:
        restore_into(table, snapshot)  # replaces the table's state
        start = snapshot.offset
    table.rebuild(header for header, _ in log_.iter_batches(start))
    return start
