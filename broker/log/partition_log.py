"""A partition's durable log: a list of segments, the oldest first, the last active.

Writes reach the OS (os.write) before append returns, so a SIGKILL loses nothing
acknowledged; fsync happens on flush/close, as in Kafka. After a crash, open()
CRC-checks the active segment and cuts a torn tail. Single-threaded by design.
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from broker.log.compaction import (
    NEVER_MS,
    CompactionStats,
    build_offset_map,
    clean_segment,
    cleanable_segment_count,
    lag_due_ms,
)
from broker.log.config import LogConfig
from broker.log.epoch_cache import FILE_NAME as EPOCH_FILE_NAME
from broker.log.epoch_cache import LeaderEpochCache
from broker.log.errors import OffsetMismatch, OffsetOutOfRange, RecordTooLarge
from broker.log.index import write_atomically
from broker.log.producer_snapshot_files import (
    delete_snapshots_above,
    delete_snapshots_below,
    write_snapshot,
)
from broker.log.retention import deletable_segment_count
from broker.log.segment import MAX_RELATIVE_OFFSET, MAX_SEGMENT_BYTES, Segment, scan_batches
from broker.producer_state import ProducerStateTable
from broker.protocol.batch import (
    BatchHeader,
    InvalidBatch,
    crc_is_valid,
    iter_headers,
    read_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)
from broker.protocol.records import decode_batch_records

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE = ".clean-shutdown"
LOG_START_FILE = "log-start-offset"
_LEFTOVER_SUFFIXES = (".cleaned", ".tmp")


@dataclass(frozen=True, slots=True)
class AppendInfo:
    first_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    max_timestamp_ms: int
    offset_of_max_timestamp: int
    batch_count: int
    records_count: int
    size_bytes: int


class PartitionLog:
    def __init__(
        self, directory: Path, config: LogConfig, segments: list[Segment],
        epochs: LeaderEpochCache, log_start_offset: int,
    ) -> None:  # fmt: skip
        assert segments, "a log always has an active segment"
        self.directory = directory
        self.config = config  # the broker swaps it when topic configs change
        self._segments = segments
        self._bases = [segment.base_offset for segment in segments]
        self._epochs = epochs
        self.log_start_offset = log_start_offset
        self._unflushed: list[Segment] = []  # rolled but not yet fsynced
        self._compaction_key: tuple[object, ...] | None = None
        self._compaction_due_ms = NEVER_MS
        self._closed = False
        # The owner's idempotent-producer state, snapshotted at each roll and on close so a
        # restart replays only the batches after the snapshot (producer_snapshot_files).
        self.producers: ProducerStateTable | None = None

    # --- open / recover -------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, now_ms: int) -> PartitionLog:
        """Open the log in directory, creating it, or recovering it after a crash."""
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        bases = _prepare_directory(directory)
        last = bases[-1] if bases else None
        segments = [
            _load_segment(directory, base, config, now_ms, full_scan=not clean and base == last)
            for base in bases
        ]
        stored_start = _read_int(directory / LOG_START_FILE)
        if not segments:
            segments = [_new_segment(directory, max(stored_start, 0), config, now_ms)]
        log_end = segments[-1].next_offset
        log_start = min(max(segments[0].base_offset, stored_start), log_end)
        epochs = LeaderEpochCache.load(directory) or _rebuild_epochs(directory, segments)
        epochs.truncate_from_end(log_end + 1)  # an epoch may start at an empty log's end
        epochs.truncate_from_start(log_start)
        marker.unlink(missing_ok=True)  # from now on a crash is an unclean shutdown
        return cls(directory, config, segments, epochs, log_start)

    # --- properties -----------------------------------------------------------

    @property
    def active(self) -> Segment:
        return self._segments[-1]

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign."""
        return self._segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(segment.size_bytes for segment in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def latest_epoch(self) -> int:
        return self._epochs.latest_epoch

    # --- appends --------------------------------------------------------------

    def append(
        self, batches: bytearray | memoryview | bytes, *, leader_epoch: int, now_ms: int,
        allow_control: bool = False,
    ) -> AppendInfo:  # fmt: skip
        """Validate, assign offsets in place, and write the batches of one Produce.

        Nothing is written if any batch is bad. Control batches come only from the
        transaction coordinator (allow_control), never from clients.
        """
        buffer = _writable(batches)
        headers = self._validate(buffer, from_client=True, allow_control=allow_control)
        first_offset = self.log_end_offset
        append_time_ms = now_ms if self.config.log_append_time else -1
        offset = first_offset
        for header in headers:
            set_base_offset(buffer, header.position, offset)
            set_partition_leader_epoch(buffer, header.position, leader_epoch)
            if append_time_ms >= 0:
                set_log_append_time(buffer, header, append_time_ms)
            offset += header.last_offset_delta + 1
        headers = [read_header(buffer, header.position) for header in headers]
        self._epochs.assign(leader_epoch, first_offset)
        self._write(buffer, headers, now_ms)
        return _append_info(headers, append_time_ms, len(buffer))

    def append_as_follower(
        self, batches: bytes | bytearray | memoryview, *, now_ms: int | None = None
    ) -> AppendInfo:
        """Append batches that already carry offsets and epochs (from the leader).

        The first base offset must not precede log_end_offset; it may pass it only
        across a gap the leader's compaction left.
        """
        headers = self._validate(batches, from_client=False, allow_control=True)
        self._check_offsets(headers)
        for header in headers:
            self._epochs.assign(header.partition_leader_epoch, header.base_offset)
        self._write(batches, headers, _wall_clock_ms() if now_ms is None else now_ms)
        return _append_info(headers, -1, len(batches))

    def append_at_offsets(
        self, batches: bytearray | memoryview | bytes, *, leader_epoch: int, now_ms: int
    ) -> AppendInfo:
        """Append batches at the base offsets they carry, stamped with leader_epoch: a link
        writing a mirror topic, whose offsets must be the source region's.

        Each batch starts at or after the end of the one before, the first at or after
        log_end_offset; what lies between stays a gap, and an empty log starts at the first
        batch. A batch may hold fewer records than its offset range, down to none (a batch a
        cleaner emptied, kept for its offsets). Nothing is written if any batch is bad.
        """
        buffer = _writable(batches)
        headers = self._validate(buffer, from_client=False, allow_control=False)
        self._check_offsets(headers)
        first_offset = headers[0].base_offset
        if self.log_start_offset == self.log_end_offset < first_offset:
            self.truncate_fully_and_start_at(first_offset)
        for header in headers:
            set_partition_leader_epoch(buffer, header.position, leader_epoch)
        self._epochs.assign(leader_epoch, first_offset)
        self._write(buffer, headers, now_ms)
        return _append_info(headers, -1, len(buffer))

    def _check_offsets(self, headers: list[BatchHeader]) -> None:
        """OffsetMismatch unless the batches' own offsets go forward from log_end_offset."""
        next_offset = self.log_end_offset
        for header in headers:
            if header.base_offset < next_offset:
                raise OffsetMismatch(
                    f"batch at offset {header.base_offset} does not follow offset {next_offset - 1}"
                )
            next_offset = header.next_offset

    def _validate(
        self, buffer: bytes | bytearray | memoryview, *, from_client: bool, allow_control: bool
    ) -> list[BatchHeader]:
        if not buffer:
            raise InvalidBatch("no record batch to append")
        headers = list(iter_headers(buffer))
        for number, header in enumerate(headers):
            if header.size_bytes > self.config.max_message_bytes:
                raise RecordTooLarge(
                    f"batch {number} is {header.size_bytes} bytes, over max.message.bytes "
                    f"{self.config.max_message_bytes}"
                )
            if not crc_is_valid(buffer, header):
                raise InvalidBatch(f"batch {number} fails its CRC check")
            if header.is_control and not allow_control:
                raise InvalidBatch("clients may not write control batches")
            if from_client and header.records_count != header.last_offset_delta + 1:
                raise InvalidBatch(
                    f"batch {number} has {header.records_count} records but lastOffsetDelta "
                    f"{header.last_offset_delta}"
                )
        return headers

    def _write(
        self, data: bytes | bytearray | memoryview, headers: list[BatchHeader], now_ms: int
    ) -> None:
        self._maybe_roll(len(data), headers[0].base_offset, headers[-1].last_offset, now_ms)
        self.active.append(data, headers)

    def _maybe_roll(
        self, incoming_bytes: int, first_offset: int, last_offset: int, now_ms: int
    ) -> None:
        active = self.active
        if active.size_bytes == 0:
            return
        new_size = active.size_bytes + incoming_bytes
        if (
            new_size > self.config.segment_bytes
            or new_size > MAX_SEGMENT_BYTES
            or now_ms - active.created_ms > self.config.segment_ms
            or last_offset - active.base_offset > MAX_RELATIVE_OFFSET
        ):
            self.roll(now_ms, first_offset)

    def roll(self, now_ms: int, next_offset: int | None = None) -> None:
        """Close the active segment (writing its indexes) and start one at log_end_offset,
        or at next_offset past a gap (as Kafka rolls at the incoming batch), so that offsets
        relative to a segment's base stay within 32 bits however wide the gap."""
        old = self.active
        assert old.size_bytes > 0, "never roll an empty segment"
        old.write_indexes()
        self._unflushed.append(old)
        base_offset = max(old.next_offset, next_offset or 0)
        self._add_segment(_new_segment(self.directory, base_offset, self.config, now_ms))
        self._snapshot_producers(base_offset)

    def _snapshot_producers(self, offset: int) -> None:
        """Save the producer state, which covers every batch below offset (the log end)."""
        if self.producers is None:
            return
        try:
            write_snapshot(self.directory, self.producers, offset)
        except OSError as exc:  # only an optimisation: a restart scans more of the log
            log.warning("%s: producer snapshot at %d not written: %s", self.directory, offset, exc)

    def _add_segment(self, segment: Segment) -> None:
        assert not self._bases or segment.base_offset >= self._bases[-1]
        self._segments.append(segment)
        self._bases.append(segment.base_offset)

    # --- reads ----------------------------------------------------------------

    def _check_range(self, offset: int) -> None:
        if not self.log_start_offset <= offset <= self.log_end_offset:
            raise OffsetOutOfRange(
                f"offset {offset} is outside [{self.log_start_offset}, {self.log_end_offset}]"
            )

    def read(
        self, start_offset: int, max_bytes: int, *, max_offset: int | None = None
    ) -> bytes | memoryview:
        """Whole batches from the one holding start_offset, from a single segment.

        At least one whole batch even if it exceeds max_bytes; only batches that end
        below max_offset (the high watermark); b"" at the end.
        """
        self._check_range(start_offset)
        limit = self.log_end_offset if max_offset is None else min(max_offset, self.log_end_offset)
        if start_offset >= limit:
            return b""
        first = bisect_right(self._bases, start_offset) - 1
        for segment in self._segments[max(first, 0) :]:
            below = limit if limit < segment.next_offset else None
            data = segment.read(start_offset, max_bytes, below)
            if data is not None:
                return data
        return b""

    def iter_batches(self, start_offset: int = 0) -> Iterator[tuple[BatchHeader, bytes]]:
        """(header, batch bytes) for every batch ending at or after start_offset."""
        first = max(bisect_right(self._bases, start_offset) - 1, 0)
        for segment in list(self._segments[first:]):
            yield from segment.batches(start_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after timestamp_ms, or None."""
        for segment in self._segments:
            start = segment.scan_start_for(timestamp_ms)
            if start is None:
                continue
            for header, data in segment.batches(max(start, self.log_start_offset)):
                if header.max_timestamp < timestamp_ms:
                    continue
                for record in decode_batch_records(data, header):
                    readable = record.offset >= self.log_start_offset
                    if readable and record.timestamp_ms >= timestamp_ms:
                        return record.offset, record.timestamp_ms
        return None

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= epoch, the offset where it ended)."""
        return self._epochs.end_offset_for(epoch, self.log_end_offset)

    # --- truncation and deletion ---------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Drop everything at or after offset (a follower whose history diverged).

        A batch straddling offset goes whole, so log_end_offset may end up below it.
        """
        if offset >= self.log_end_offset:
            return
        if offset < self.log_start_offset:
            self.truncate_fully_and_start_at(offset)
            return
        while len(self._segments) > 1 and self._bases[-1] >= offset:
            self._segments.pop().delete()
            self._bases.pop()
        self._unflushed = [s for s in self._unflushed if s in self._segments[:-1]]
        self.active.truncate_to(offset)
        self._epochs.truncate_from_end(self.log_end_offset)
        if self.log_end_offset < self.log_start_offset:  # the cut batch straddled the start
            self.truncate_fully_and_start_at(self.log_start_offset)
        delete_snapshots_above(self.directory, self.log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Empty the log; the next append gets offset (a follower far behind the leader)."""
        for segment in self._segments:
            segment.delete()
        self._segments, self._bases, self._unflushed = [], [], []
        delete_snapshots_above(self.directory, -1)  # all: the state below offset is unknown
        self._add_segment(_new_segment(self.directory, offset, self.config, _wall_clock_ms()))
        self._set_log_start(offset)
        self._epochs.clear()

    def delete_records_before(self, offset: int) -> None:
        """DeleteRecords: offsets below offset become unreadable; whole segments go."""
        self._check_range(max(offset, self.log_start_offset))
        if offset <= self.log_start_offset:
            return
        self._set_log_start(offset)
        below = bisect_right(self._bases, offset) - 1  # segments wholly before offset's segment
        self._delete_oldest(min(below, len(self._segments) - 1))

    def apply_retention(self, now_ms: int, *, high_watermark: int | None = None) -> int:
        """Delete the oldest segments past retention; return how many went."""
        count = deletable_segment_count(
            self._segments, self.config, now_ms=now_ms, log_start_offset=self.log_start_offset,
            high_watermark=high_watermark,
        )  # fmt: skip
        if count == len(self._segments):
            self.roll(now_ms)  # keep an (empty) active segment
        self._delete_oldest(count)
        return count

    def _delete_oldest(self, count: int) -> None:
        assert count < len(self._segments), "the active segment stays"
        if count == 0:
            return
        for segment in self._segments[:count]:
            segment.delete()
            if segment in self._unflushed:
                self._unflushed.remove(segment)
        del self._segments[:count], self._bases[:count]
        if self._bases[0] > self.log_start_offset:
            self._set_log_start(self._bases[0])

    def _set_log_start(self, offset: int) -> None:
        self.log_start_offset = offset
        write_atomically(self.directory / LOG_START_FILE, str(offset).encode())
        self._epochs.truncate_from_start(offset)
        delete_snapshots_below(self.directory, offset)

    # --- compaction -----------------------------------------------------------

    def compact(self, now_ms: int) -> CompactionStats:
        """Keep the latest record per key in closed segments (cleanup.policy=compact).

        Skips the whole-log scan when nothing changed since the last pass and no
        tombstone or min.compaction.lag.ms deadline has passed.
        """
        stats = CompactionStats()
        if not self.config.compacted:
            return stats
        key = (self.log_end_offset, tuple(self._bases), self.config)
        if key == self._compaction_key and now_ms < self._compaction_due_ms:
            return stats
        cleanable = cleanable_segment_count(self._segments, self.config, now_ms)
        if cleanable:
            offset_map = build_offset_map(self.iter_batches(self._bases[0]))
            for position in range(cleanable):
                dirty = self._segments[position]
                cleaned = clean_segment(dirty, offset_map, self.config, now_ms=now_ms, stats=stats)
                if cleaned is not dirty and dirty in self._unflushed:
                    self._unflushed.remove(dirty)  # the cleaned file was fsynced before the swap
                self._segments[position] = cleaned
        self._compaction_key = (self.log_end_offset, tuple(self._bases), self.config)
        self._compaction_due_ms = min(
            stats.next_due_ms, lag_due_ms(self._segments, cleanable, self.config)
        )
        return stats

    # --- durability -----------------------------------------------------------

    def flush(self) -> None:
        """fsync rolled segments and the active one."""
        for segment in self._unflushed:
            segment.flush()
        self._unflushed = []
        self.active.flush()

    def close(self) -> None:
        """Flush, persist indexes, and mark a clean shutdown so open() skips the scan."""
        if self._closed:
            return
        self.flush()
        self.active.write_indexes(fsync=True)
        self._snapshot_producers(self.log_end_offset)
        for segment in self._segments:
            segment.close()
        write_atomically(self.directory / CLEAN_SHUTDOWN_FILE, b"", fsync=True)
        _fsync_directory(self.directory)
        self._closed = True


# --- helpers ------------------------------------------------------------------


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _writable(batches: bytearray | memoryview | bytes) -> bytearray | memoryview:
    """The batches themselves if they can be stamped in place, else a mutable copy."""
    if isinstance(batches, bytearray) or (isinstance(batches, memoryview) and not batches.readonly):
        return batches
    return bytearray(batches)


def _append_info(headers: list[BatchHeader], append_time_ms: int, size_bytes: int) -> AppendInfo:
    newest = max(headers, key=lambda header: header.max_timestamp)
    return AppendInfo(
        first_offset=headers[0].base_offset,
        last_offset=headers[-1].last_offset,
        log_append_time_ms=append_time_ms,
        max_timestamp_ms=newest.max_timestamp,
        offset_of_max_timestamp=newest.last_offset,
        batch_count=len(headers),
        records_count=sum(header.records_count for header in headers),
        size_bytes=size_bytes,
    )


def _new_segment(directory: Path, base_offset: int, config: LogConfig, now_ms: int) -> Segment:
    return Segment.create(
        directory, base_offset, index_interval_bytes=config.index_interval_bytes, now_ms=now_ms
    )


def _load_segment(
    directory: Path, base_offset: int, config: LogConfig, now_ms: int, *, full_scan: bool
) -> Segment:
    segment, cut_bytes = Segment.load(
        directory, base_offset, index_interval_bytes=config.index_interval_bytes,
        now_ms=now_ms, full_scan=full_scan,
    )  # fmt: skip
    if cut_bytes:
        log.warning(
            "%s: cut %d bytes of torn or corrupt data after offset %d",
            segment.log_path, cut_bytes, segment.next_offset - 1,
        )  # fmt: skip
    return segment


def _prepare_directory(directory: Path) -> list[int]:
    """Delete leftovers of interrupted work; return the base offsets of the segments."""
    bases = []
    for path in directory.iterdir():
        stem, _, suffix = path.name.partition(".")
        if path.name.endswith(_LEFTOVER_SUFFIXES):
            path.unlink()  # an unfinished compaction output or atomic write
        elif suffix == "log" and len(stem) == 20 and stem.isdigit():
            bases.append(int(stem))
    for path in directory.iterdir():
        stem, _, suffix = path.name.partition(".")
        if suffix in ("index", "timeindex") and stem.isdigit() and int(stem) not in bases:
            path.unlink()  # an index whose segment was deleted
    return sorted(bases)


def _rebuild_epochs(directory: Path, segments: list[Segment]) -> LeaderEpochCache:
    """The checkpoint is gone: recover epoch starts from the batch headers."""
    epochs = LeaderEpochCache(directory / EPOCH_FILE_NAME)
    for segment in segments:
        for _, header, _ in scan_batches(segment.fd, 0, segment.size_bytes):
            epochs.assign(header.partition_leader_epoch, header.base_offset)
    return epochs


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return -1


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
