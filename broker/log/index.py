"""Sparse offset and time indexes of one segment, in Kafka's file layout.

Entries live in arrays in memory (bisect lookups); the files are rewritten whole,
atomically, at roll, flush and close. A missing or inconsistent file is rebuilt by
scanning the segment, so the files never need to be fsynced on the append path.
"""

from __future__ import annotations

import itertools
import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

OFFSET_ENTRY = struct.Struct(">ii")  # relative offset, file position
TIME_ENTRY = struct.Struct(">qi")  # max timestamp so far, relative offset


def _big_endian(values: array) -> bytes:
    copy = array(values.typecode, values)
    if sys.byteorder == "little":
        copy.byteswap()
    return copy.tobytes()


def _from_big_endian(typecode: str, data: bytes) -> array:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "little":
        values.byteswap()
    return values


def write_atomically(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write to a temporary name and rename, so readers see the old or the new file whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class OffsetIndex:
    """Maps an offset to the file position of a batch at or before it."""

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.relative_offsets = array("i")
        self.positions = array("i")

    def __len__(self) -> int:
        return len(self.positions)

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        assert not self.positions or (
            relative > self.relative_offsets[-1] and position > self.positions[-1]
        ), "index entries must increase"
        self.relative_offsets.append(relative)
        self.positions.append(position)

    def lookup(self, offset: int) -> int:
        """Position of the last indexed batch starting at or before offset (0 if none)."""
        slot = bisect_right(self.relative_offsets, offset - self.base_offset) - 1
        return self.positions[slot] if slot >= 0 else 0

    def last_entry(self) -> tuple[int, int] | None:
        if not self.positions:
            return None
        return self.base_offset + self.relative_offsets[-1], self.positions[-1]

    def truncate_to_position(self, position: int) -> None:
        """Drop entries at or past position (the log was truncated there)."""
        keep = bisect_left(self.positions, position)
        del self.relative_offsets[keep:], self.positions[keep:]

    def to_bytes(self) -> bytes:
        pairs = array("i", [0]) * (2 * len(self.positions))
        pairs[0::2], pairs[1::2] = self.relative_offsets, self.positions
        return _big_endian(pairs)

    @classmethod
    def from_bytes(cls, base_offset: int, data: bytes, log_size_bytes: int) -> OffsetIndex | None:
        """Parse an index file; None if it is not a consistent index of that log."""
        if len(data) % OFFSET_ENTRY.size:
            return None
        pairs = _from_big_endian("i", data)
        index = cls(base_offset)
        index.relative_offsets, index.positions = pairs[0::2], pairs[1::2]
        if not _strictly_increasing(index.relative_offsets) or not _strictly_increasing(
            index.positions
        ):
            return None
        if index.positions and (index.positions[0] < 0 or index.positions[-1] >= log_size_bytes):
            return None
        return index


class TimeIndex:
    """Maps a timestamp to an offset before which every record is older."""

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.timestamps = array("q")
        self.relative_offsets = array("i")

    def __len__(self) -> int:
        return len(self.timestamps)

    def maybe_append(self, timestamp_ms: int, offset: int) -> None:
        """Add (timestamp, offset) if the timestamp grew; Kafka keeps both monotonic."""
        if self.timestamps and timestamp_ms <= self.timestamps[-1]:
            return
        relative = offset - self.base_offset
        assert not self.relative_offsets or relative >= self.relative_offsets[-1]
        self.timestamps.append(timestamp_ms)
        self.relative_offsets.append(relative)

    def offset_before(self, timestamp_ms: int) -> int | None:
        """The offset of the last entry older than timestamp_ms: all records up to it are."""
        slot = bisect_left(self.timestamps, timestamp_ms) - 1
        return self.base_offset + self.relative_offsets[slot] if slot >= 0 else None

    def last_entry(self) -> tuple[int, int] | None:
        if not self.timestamps:
            return None
        return self.timestamps[-1], self.base_offset + self.relative_offsets[-1]

    def truncate_to_offset(self, offset: int) -> None:
        keep = bisect_left(self.relative_offsets, offset - self.base_offset)
        del self.timestamps[keep:], self.relative_offsets[keep:]

    def to_bytes(self) -> bytes:
        return b"".join(
            TIME_ENTRY.pack(ts, rel)
            for ts, rel in zip(self.timestamps, self.relative_offsets, strict=True)
        )

    @classmethod
    def from_bytes(cls, base_offset: int, data: bytes) -> TimeIndex | None:
        if len(data) % TIME_ENTRY.size:
            return None
        index = cls(base_offset)
        for timestamp_ms, relative in TIME_ENTRY.iter_unpack(data):
            if index.timestamps and (
                timestamp_ms <= index.timestamps[-1] or relative < index.relative_offsets[-1]
            ):
                return None
            index.timestamps.append(timestamp_ms)
            index.relative_offsets.append(relative)
        return index


def _strictly_increasing(values: array) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))
