"""One segment: a `.log` file of whole batches, with its sparse `.index` and `.timeindex`.

Appends are one os.write on an O_APPEND descriptor; reads are os.pread, so the
kernel's page cache serves fetches. Index entries are kept in memory and written
whole at roll, flush and close; recovery rebuilds them from the log when needed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from broker.log.index import OffsetIndex, TimeIndex, write_atomically
from broker.protocol.batch import LOG_OVERHEAD, BatchHeader, iter_valid_prefix, read_header

_PEEK = struct.Struct(">qi")  # baseOffset, batchLength
_LAST_OFFSET_DELTA = struct.Struct(">i")  # at byte 23
_MAX_TIMESTAMP = struct.Struct(">q")  # at byte 35
_MAX_TIMESTAMP_END = 43
PEEK_BYTES = 27  # enough header to know a batch's offsets and size
SCAN_CHUNK_BYTES = 8 << 20
MAX_SEGMENT_BYTES = (1 << 31) - 1  # index positions are i32
MAX_RELATIVE_OFFSET = (1 << 31) - 1  # index offsets are i32 relative to the base
_READ_CACHE_ENTRIES = 256


def file_stem(base_offset: int) -> str:
    return f"{base_offset:020d}"


def write_all(fd: int, data: bytes | bytearray | memoryview, rollback_to: int) -> None:
    """os.write everything; on failure cut the file back so no torn batch stays behind."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        os.ftruncate(fd, rollback_to)
        raise


def scan_batches(
    fd: int, start: int, end: int, chunk_bytes: int = SCAN_CHUNK_BYTES
) -> Iterator[tuple[int, BatchHeader, bytes]]:
    """Yield (file position, header, chunk) for whole CRC-valid batches in [start, end).

    The header's position is within chunk. Stops silently at the first short or
    corrupt batch, which is where recovery truncates.
    """
    position = start
    while position < end:
        chunk = os.pread(fd, min(chunk_bytes, end - position), position)
        consumed = 0
        for header in iter_valid_prefix(chunk):
            yield position + header.position, header, chunk
            consumed = header.position + header.size_bytes
        if consumed == 0:  # a batch larger than the chunk, or garbage
            if len(chunk) < LOG_OVERHEAD:
                return
            size_bytes = _PEEK.unpack_from(chunk)[1] + LOG_OVERHEAD
            if size_bytes <= len(chunk) or position + size_bytes > end:
                return
            chunk = os.pread(fd, size_bytes, position)
            big = next(iter_valid_prefix(chunk), None)
            if big is None or big.size_bytes != len(chunk):
                return
            yield position, big, chunk
            consumed = size_bytes
        position += consumed


class Segment:
    """Not thread-safe: one event loop owns it."""

    def __init__(
        self, directory: Path, base_offset: int, fd: int, *, index_interval_bytes: int,
        created_ms: int, log_path: Path | None = None,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.base_offset = base_offset
        self.fd = fd
        self.log_path = log_path or directory / f"{file_stem(base_offset)}.log"
        self.index_interval_bytes = index_interval_bytes
        self.created_ms = created_ms
        self.size_bytes = 0
        self.next_offset = base_offset
        self.max_timestamp_ms = -1
        self.offset_of_max_timestamp = base_offset
        self.index = OffsetIndex(base_offset)
        self.time_index = TimeIndex(base_offset)
        self._bytes_since_index = 0
        self._read_positions: dict[int, int] = {}  # where sequential fetches resume

    # --- lifecycle ------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.directory / f"{file_stem(self.base_offset)}.index"

    @property
    def time_index_path(self) -> Path:
        return self.directory / f"{file_stem(self.base_offset)}.timeindex"

    @classmethod
    def create(
        cls, directory: Path, base_offset: int, *, index_interval_bytes: int, now_ms: int,
        suffix: str = "",
    ) -> Segment:  # fmt: skip
        """A new empty segment (suffix ".cleaned" for a compaction output)."""
        log_path = directory / f"{file_stem(base_offset)}.log{suffix}"
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        fd = os.open(log_path, flags, 0o644)
        return cls(
            directory, base_offset, fd, index_interval_bytes=index_interval_bytes,
            created_ms=now_ms, log_path=log_path,
        )  # fmt: skip

    @classmethod
    def load(
        cls, directory: Path, base_offset: int, *, index_interval_bytes: int, now_ms: int,
        full_scan: bool,
    ) -> tuple[Segment, int]:  # fmt: skip
        """Open an existing segment; return it and how many tail bytes recovery cut off.

        With full_scan every batch is CRC-checked; otherwise trusted index files let
        us check only the tail after the last index entry.
        """
        log_path = directory / f"{file_stem(base_offset)}.log"
        fd = os.open(log_path, os.O_RDWR | os.O_APPEND)
        segment = cls(
            directory, base_offset, fd, index_interval_bytes=index_interval_bytes,
            created_ms=now_ms,
        )  # fmt: skip
        segment.size_bytes = os.fstat(fd).st_size
        start = 0 if full_scan else segment._load_indexes()
        truncated = segment.recover(start)
        head = os.pread(fd, _MAX_TIMESTAMP_END, 0)
        if len(head) == _MAX_TIMESTAMP_END:  # roll by age of the first batch, as Kafka does
            first_max_timestamp_ms = _MAX_TIMESTAMP.unpack_from(head, 35)[0]
            if 0 < first_max_timestamp_ms < now_ms:
                segment.created_ms = first_max_timestamp_ms
        return segment, truncated

    def _load_indexes(self) -> int:
        """Load index files if consistent with the log; return where recovery must start."""
        try:
            index = OffsetIndex.from_bytes(
                self.base_offset, self.index_path.read_bytes(), self.size_bytes
            )
            time_index = TimeIndex.from_bytes(self.base_offset, self.time_index_path.read_bytes())
        except OSError:
            return 0
        last = index.last_entry() if index else None
        if index is None or time_index is None:
            return 0
        if last is not None:
            head = os.pread(self.fd, PEEK_BYTES, last[1])
            if len(head) < PEEK_BYTES or _PEEK.unpack_from(head)[0] != last[0]:
                return 0
        self.index, self.time_index = index, time_index
        if (entry := time_index.last_entry()) is not None:
            self.max_timestamp_ms, self.offset_of_max_timestamp = entry
        if last is None:
            return 0
        self.next_offset = last[0]
        return last[1]

    def recover(self, start: int) -> int:
        """Re-track batches from start (indexes are kept before it); truncate a bad tail."""
        self.index.truncate_to_position(start + 1)  # the entry at start stays
        self._bytes_since_index = 0
        good_end = start
        for position, header, _ in scan_batches(self.fd, start, self.size_bytes):
            if header.base_offset < self.next_offset or (
                header.last_offset - self.base_offset > MAX_RELATIVE_OFFSET
            ):
                break  # offsets went backwards: not a batch this log wrote here
            self._track(header, position)
            good_end = position + header.size_bytes
        cut_bytes = self.size_bytes - good_end
        if cut_bytes:
            os.ftruncate(self.fd, good_end)
            self.size_bytes = good_end
        return cut_bytes

    def write_indexes(self, *, fsync: bool = False) -> None:
        """Persist both indexes, closing the time index with the segment's max timestamp."""
        if self.max_timestamp_ms >= 0:
            self.time_index.maybe_append(self.max_timestamp_ms, self.offset_of_max_timestamp)
        write_atomically(self.index_path, self.index.to_bytes(), fsync=fsync)
        write_atomically(self.time_index_path, self.time_index.to_bytes(), fsync=fsync)

    def delete_index_files(self) -> None:
        self.index_path.unlink(missing_ok=True)
        self.time_index_path.unlink(missing_ok=True)

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete(self) -> None:
        self.close()
        self.log_path.unlink(missing_ok=True)
        self.delete_index_files()

    def discard(self) -> None:
        """Drop an unfinished compaction output (its index files are the original's)."""
        self.close()
        self.log_path.unlink(missing_ok=True)

    def replace(self, original: Segment) -> None:
        """Swap this compaction output in for original; a crash at any point loses nothing.

        The original's index files go first: if we die between the steps the next
        open finds no index and rebuilds one from whichever .log is in place.
        """
        os.fsync(self.fd)
        original.delete_index_files()
        os.replace(self.log_path, original.log_path)
        self.log_path = original.log_path
        self.write_indexes()
        original.close()

    # --- writes ---------------------------------------------------------------

    def _track(self, header: BatchHeader, position: int) -> None:
        """Account one batch now at position: offsets, max timestamp, sparse indexes."""
        last = self.index.last_entry()
        if self._bytes_since_index >= self.index_interval_bytes and (
            last is None or position > last[1]
        ):
            self.index.append(header.base_offset, position)
            if self.max_timestamp_ms >= 0:
                self.time_index.maybe_append(self.max_timestamp_ms, self.offset_of_max_timestamp)
            self._bytes_since_index = 0
        if header.max_timestamp > self.max_timestamp_ms:
            self.max_timestamp_ms = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        self._bytes_since_index += header.size_bytes
        self.next_offset = header.next_offset

    def append(self, data: bytes | bytearray | memoryview, headers: list[BatchHeader]) -> None:
        """Write batches (headers positioned within data, offsets already assigned)."""
        assert headers and headers[0].base_offset >= self.next_offset, "offsets must increase"
        position = self.size_bytes
        write_all(self.fd, data, position)
        self.size_bytes += len(data)
        for header in headers:
            self._track(header, position + header.position)

    def truncate_to(self, offset: int) -> None:
        """Drop every batch whose last offset is >= offset, then rebuild the indexes."""
        found = self.position_for(offset)
        if found is None:
            return
        os.ftruncate(self.fd, found[0])
        self.size_bytes = found[0]
        self.delete_index_files()
        self._read_positions.clear()
        self.index, self.time_index = OffsetIndex(self.base_offset), TimeIndex(self.base_offset)
        self.next_offset, self.max_timestamp_ms = self.base_offset, -1
        self.offset_of_max_timestamp = self.base_offset
        self.recover(0)

    # --- reads ----------------------------------------------------------------

    def position_for(self, offset: int) -> tuple[int, int, int] | None:
        """(position, size, last offset) of the first batch with last offset >= offset."""
        position = self._read_positions.get(offset)
        if position is None:
            position = self.index.lookup(offset)
        while position < self.size_bytes:
            head = os.pread(self.fd, PEEK_BYTES, position)
            base_offset, length = _PEEK.unpack_from(head)
            last_offset = base_offset + _LAST_OFFSET_DELTA.unpack_from(head, 23)[0]
            if last_offset >= offset:
                return position, length + LOG_OVERHEAD, last_offset
            position += length + LOG_OVERHEAD
        return None

    def read(
        self, offset: int, max_bytes: int, max_offset: int | None
    ) -> bytes | memoryview | None:
        """Whole batches from the one holding offset; None if offset is past this segment."""
        found = self.position_for(offset)
        if found is None:
            return None
        position, first_size, first_last = found
        if max_offset is not None and first_last >= max_offset:
            return b""
        want = max(first_size, min(max_bytes, self.size_bytes - position))
        data = os.pread(self.fd, want, position)
        cut, next_offset = _whole_batches(data, first_size, first_last + 1, max_offset)
        if len(self._read_positions) >= _READ_CACHE_ENTRIES:
            self._read_positions.clear()
        self._read_positions[next_offset] = position + cut
        return data if cut == len(data) else memoryview(data)[:cut]  # no copy of megabytes

    def batches(self, start_offset: int) -> Iterator[tuple[BatchHeader, bytes]]:
        """(header, batch bytes) from the batch holding start_offset; header is at 0."""
        found = self.position_for(start_offset)
        if found is None:
            return
        for _, header, chunk in scan_batches(self.fd, found[0], self.size_bytes):
            data = chunk[header.position : header.position + header.size_bytes]
            yield read_header(data), data

    def scan_start_for(self, timestamp_ms: int) -> int | None:
        """An offset before which every record is older than timestamp_ms (time index).

        None if no record here is that recent.
        """
        if self.max_timestamp_ms < timestamp_ms:
            return None
        older = self.time_index.offset_before(timestamp_ms)
        return self.base_offset if older is None else older + 1


def _whole_batches(
    data: bytes, first_size: int, next_offset: int, max_offset: int | None
) -> tuple[int, int]:
    """(bytes of whole batches below max_offset, next offset after them) in data."""
    position = first_size
    while position + PEEK_BYTES <= len(data):
        base_offset, length = _PEEK.unpack_from(data, position)
        end = position + length + LOG_OVERHEAD
        last_offset = base_offset + _LAST_OFFSET_DELTA.unpack_from(data, position + 23)[0]
        if end > len(data) or (max_offset is not None and last_offset >= max_offset):
            break
        position, next_offset = end, last_offset + 1
    return position, next_offset
