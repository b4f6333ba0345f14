"""One segment: `.log` batches plus sparse `.index` and `.timeindex` files (Kafka layout).

Index entries are (relative offset i32, position i32) every `index_interval_bytes`;
time index entries are (max timestamp i64, relative offset i32) when the max grows.
Indexes are kept in memory and appended to disk; after a crash they are rebuilt.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from broker.protocol.batch import (
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    BatchHeader,
    InvalidBatch,
    crc_is_valid,
)

_INDEX_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class Segment:
    """Append-only batch file with its indexes. Not thread-safe; one event loop uses it."""

    def __init__(self, directory: Path, base_offset: int, index_interval_bytes: int) -> None:
        self.base_offset = base_offset
        self.path = directory / f"{segment_name(base_offset)}.log"
        self.index_path = self.path.with_suffix(".index")
        self.time_index_path = self.path.with_suffix(".timeindex")
        self.index_interval_bytes = index_interval_bytes
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size_bytes = os.fstat(self.fd).st_size
        self.next_offset = base_offset
        self.max_timestamp_ms = -1
        self.created_ms = -1
        self._offsets: list[int] = []  # absolute offsets of indexed batches
        self._positions: list[int] = []
        self._times: list[int] = []  # increasing max timestamps
        self._time_offsets: list[int] = []
        self._bytes_since_index = 0
        self._index_file = open(self.index_path, "ab")  # noqa: SIM115 - closed in close()
        self._time_file = open(self.time_index_path, "ab")  # noqa: SIM115

    # -- building state ----------------------------------------------------------------------
    def recover(
        self, validate_crc: bool, on_batch: Callable[[BatchHeader], None] | None = None
    ) -> int:
        """Rebuild indexes by scanning batches; truncate a torn or corrupt tail. Returns bytes cut."""
        self._reset_indexes()
        position = 0
        for header in self._scan(validate_crc):
            self._track(header, header.position)
            if on_batch is not None:
                on_batch(header)
            position = header.position + header.size_bytes
        cut = self.size_bytes - position
        if cut:
            os.ftruncate(self.fd, position)
            self.size_bytes = position
        return cut

    def _scan(self, validate_crc: bool) -> Iterator[BatchHeader]:
        position = 0
        while position + HEADER_BYTES <= self.size_bytes:
            head = os.pread(self.fd, HEADER_BYTES, position)
            try:
                header = _header_at(head, position, self.size_bytes)
            except InvalidBatch:
                return
            if validate_crc:
                data = os.pread(self.fd, header.size_bytes, position)
                if len(data) < header.size_bytes or not crc_is_valid(data, _rebase(header, 0)):
                    return
            yield header
            position += header.size_bytes

    def _reset_indexes(self) -> None:
        self._offsets.clear()
        self._positions.clear()
        self._times.clear()
        self._time_offsets.clear()
        self._bytes_since_index = 0
        self.next_offset = self.base_offset
        self.max_timestamp_ms = -1
        for handle in (self._index_file, self._time_file):
            handle.truncate(0)

    def _track(self, header: BatchHeader, position: int) -> None:
        """Update indexes for a batch stored at `position`."""
        assert header.base_offset >= self.next_offset, (header.base_offset, self.next_offset)
        if not self._offsets or self._bytes_since_index >= self.index_interval_bytes:
            self._offsets.append(header.base_offset)
            self._positions.append(position)
            self._index_file.write(_INDEX_ENTRY.pack(header.base_offset - self.base_offset, position))
            self._bytes_since_index = 0
        self._bytes_since_index += header.size_bytes
        if header.max_timestamp > self.max_timestamp_ms:
            self.max_timestamp_ms = header.max_timestamp
            self._times.append(header.max_timestamp)
            self._time_offsets.append(header.base_offset)
            self._time_file.write(_TIME_ENTRY.pack(header.max_timestamp, header.base_offset - self.base_offset))
        self.next_offset = header.next_offset

    # -- writing -----------------------------------------------------------------------------
    def append(self, data: bytes | bytearray, headers: list[BatchHeader]) -> None:
        """Write batches (already validated, offsets assigned) with one write call."""
        start = self.size_bytes
        written = os.write(self.fd, data)
        assert written == len(data), "short write to segment"
        self.size_bytes += written
        for header in headers:
            self._track(header, start + header.position)

    def truncate_to(self, offset: int) -> None:
        """Drop batches at or after `offset` (must be a batch boundary or past the end)."""
        keep = [h for h in self._scan(False) if h.base_offset < offset]
        end = keep[-1].position + keep[-1].size_bytes if keep else 0
        os.ftruncate(self.fd, end)
        self.size_bytes = end
        self.recover(validate_crc=False)

    def flush(self) -> None:
        self._index_file.flush()
        self._time_file.flush()
        os.fsync(self.fd)

    def close(self) -> None:
        self.flush()
        self._index_file.close()
        self._time_file.close()
        os.close(self.fd)

    def delete(self) -> None:
        self._index_file.close()
        self._time_file.close()
        os.close(self.fd)
        for path in (self.path, self.index_path, self.time_index_path):
            path.unlink(missing_ok=True)

    # -- reading -----------------------------------------------------------------------------
    def position_of(self, offset: int) -> int:
        """File position of the batch containing `offset` (or of the first batch after it)."""
        slot = bisect.bisect_right(self._offsets, offset) - 1
        position = self._positions[slot] if slot >= 0 else 0
        while position < self.size_bytes:
            header = _header_at(os.pread(self.fd, HEADER_BYTES, position), position, self.size_bytes)
            if header.last_offset >= offset:
                return position
            position += header.size_bytes
        return self.size_bytes

    def read(self, position: int, max_bytes: int, max_offset: int | None) -> bytes:
        """Whole batches from `position` up to max_bytes, none reaching max_offset.

        A first batch larger than max_bytes is returned whole, so a consumer can
        always make progress (KIP-74).
        """
        available = self.size_bytes - position
        if available < HEADER_BYTES:
            return b""
        data = os.pread(self.fd, min(max(max_bytes, HEADER_BYTES), available), position)
        end = 0
        while end + HEADER_BYTES <= len(data):
            header = _header_at(data[end : end + HEADER_BYTES], position + end, self.size_bytes)
            if max_offset is not None and header.last_offset >= max_offset:
                break
            if end + header.size_bytes > len(data):
                if end == 0:
                    return os.pread(self.fd, header.size_bytes, position)
                break
            end += header.size_bytes
        return data if end == len(data) else data[:end]

    def offset_for_time(self, timestamp_ms: int) -> int | None:
        """Base offset of the first batch whose max timestamp is >= target, if any.

        The time index records where the running maximum grew, so the first entry
        at or above the target is exactly that batch.
        """
        slot = bisect.bisect_left(self._times, timestamp_ms)
        return self._time_offsets[slot] if slot < len(self._times) else None

    def iter_batches(self, start_offset: int) -> Iterator[tuple[BatchHeader, bytes]]:
        position = self.position_of(start_offset)
        while position < self.size_bytes:
            head = os.pread(self.fd, HEADER_BYTES, position)
            header = _header_at(head, position, self.size_bytes)
            data = os.pread(self.fd, header.size_bytes, position)
            yield _rebase(header, 0), data
            position += header.size_bytes


def _header_at(head: bytes, position: int, file_size: int) -> BatchHeader:
    """Parse a header read at file `position`, checking the batch fits in the file."""
    if len(head) < HEADER_BYTES:
        raise InvalidBatch("short header at end of segment")
    header = BatchHeader(position, *HEADER.unpack_from(head, 0))
    if header.magic != 2 or header.batch_length < HEADER_BYTES - LOG_OVERHEAD:
        raise InvalidBatch(f"bad batch header at position {position}")
    if position + header.size_bytes > file_size:
        raise InvalidBatch(f"batch at position {position} runs past the end of the segment")
    return header


def _rebase(header: BatchHeader, position: int) -> BatchHeader:
    fields = {name: getattr(header, name) for name in BatchHeader.__slots__}  # type: ignore[attr-defined]
    fields["position"] = position
    return BatchHeader(**fields)
