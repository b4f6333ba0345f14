"""A partition's log: ordered segments, offset assignment, reads, recovery.

Appends are written with one os.write before they return (no fsync, as Kafka):
SIGKILL loses nothing that was acknowledged; recovery after an unclean stop
validates the tail by CRC and cuts a torn batch.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from broker.log.config import LogConfig
from broker.log.segment import Segment
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

log = logging.getLogger("regionlink.log")

CLEAN_SHUTDOWN_FILE = ".clean-shutdown"
LOG_START_FILE = "log-start-offset"


class RecordTooLarge(ValueError):
    """A batch exceeds max.message.bytes."""


class OffsetOutOfRange(LookupError):
    """An offset below the log start or above the log end."""


@dataclass(frozen=True, slots=True)
class AppendInfo:
    first_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 for CreateTime topics
    max_timestamp_ms: int


class PartitionLog:
    def __init__(self, directory: Path, config: LogConfig) -> None:
        self.directory = directory
        self.config = config
        self.segments: list[Segment] = []
        self.log_start_offset = 0
        self._epoch_starts: list[tuple[int, int]] = []  # (leader epoch, first offset), increasing

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, now_ms: int) -> PartitionLog:
        directory.mkdir(parents=True, exist_ok=True)
        plog = cls(directory, config)
        marker = directory / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        marker.unlink(missing_ok=True)
        for leftover in directory.glob("*.cleaned"):
            leftover.unlink()  # compaction died before its atomic swap: the original is intact
        bases = sorted(int(path.stem) for path in directory.glob("*.log"))
        for position, base in enumerate(bases):
            segment = Segment(directory, base, config.index_interval_bytes)
            last = position == len(bases) - 1
            cut = segment.recover(validate_crc=last and not clean, on_batch=plog._note_epoch)
            if cut:
                log.warning("%s: cut %d bytes of torn tail from %s", directory.name, cut, segment.path.name)
            plog.segments.append(segment)
        if not plog.segments:
            plog.segments.append(plog._new_segment(plog._read_log_start(), now_ms))
        plog.log_start_offset = max(plog._read_log_start(), plog.segments[0].base_offset)
        plog.active.created_ms = now_ms
        return plog

    def _read_log_start(self) -> int:
        path = self.directory / LOG_START_FILE
        return int(path.read_text()) if path.exists() else 0

    def _write_log_start(self) -> None:
        tmp = self.directory / (LOG_START_FILE + ".tmp")
        tmp.write_text(str(self.log_start_offset))
        os.replace(tmp, self.directory / LOG_START_FILE)

    def _new_segment(self, base_offset: int, now_ms: int) -> Segment:
        segment = Segment(self.directory, base_offset, self.config.index_interval_bytes)
        segment.created_ms = now_ms
        return segment

    def _note_epoch(self, header: BatchHeader) -> None:
        epoch = header.partition_leader_epoch
        if epoch >= 0 and (not self._epoch_starts or epoch > self._epoch_starts[-1][0]):
            self._epoch_starts.append((epoch, header.base_offset))

    # -- state -------------------------------------------------------------------------------
    @property
    def active(self) -> Segment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self.active.next_offset

    @property
    def size_bytes(self) -> int:
        return sum(segment.size_bytes for segment in self.segments)

    # -- appending ---------------------------------------------------------------------------
    def append(self, batches: bytearray, *, leader_epoch: int, now_ms: int) -> AppendInfo:
        """Validate every batch, assign offsets in place, then write them all at once."""
        headers = self._validate(batches)
        offset = self.log_end_offset
        log_append = self.config.message_timestamp_type == "LogAppendTime"
        for header in headers:
            set_base_offset(batches, header.position, offset)
            set_partition_leader_epoch(batches, header.position, leader_epoch)
            if log_append:
                set_log_append_time(batches, header, now_ms)
            offset += header.last_offset_delta + 1
        stamped = [read_header(batches, h.position) for h in headers]
        self._write(batches, stamped, now_ms)
        return AppendInfo(
            stamped[0].base_offset, stamped[-1].last_offset, now_ms if log_append else -1,
            max(h.max_timestamp for h in stamped),
        )

    def append_as_follower(self, batches: bytes, *, now_ms: int) -> AppendInfo:
        """Append batches that already carry offsets (replication, mirror tools)."""
        headers = self._validate(batches)
        assert headers[0].base_offset >= self.log_end_offset, (headers[0].base_offset, self.log_end_offset)
        self._write(batches, headers, now_ms)
        return AppendInfo(headers[0].base_offset, headers[-1].last_offset, -1,
                          max(h.max_timestamp for h in headers))

    def _validate(self, batches: bytes | bytearray) -> list[BatchHeader]:
        headers = list(iter_headers(batches))
        if not headers:
            raise InvalidBatch("no record batch to append")
        for header in headers:
            if header.size_bytes > self.config.max_message_bytes:
                raise RecordTooLarge(
                    f"batch of {header.size_bytes} bytes exceeds max.message.bytes="
                    f"{self.config.max_message_bytes}"
                )
            if not crc_is_valid(batches, header):
                raise InvalidBatch(f"CRC mismatch in batch at byte {header.position}")
        return headers

    def _write(self, batches: bytes | bytearray, headers: list[BatchHeader], now_ms: int) -> None:
        self._maybe_roll(len(batches), now_ms)
        self.active.append(batches, headers)
        for header in headers:
            self._note_epoch(header)

    def _maybe_roll(self, incoming_bytes: int, now_ms: int) -> None:
        active = self.active
        if active.size_bytes == 0:
            return
        full = active.size_bytes + incoming_bytes > self.config.segment_bytes
        old = now_ms - active.created_ms >= self.config.segment_ms
        if full or old:
            self.roll(now_ms)

    def roll(self, now_ms: int) -> None:
        self.active.flush()
        self.segments.append(self._new_segment(self.log_end_offset, now_ms))

    # -- reading -----------------------------------------------------------------------------
    def _segment_index(self, offset: int) -> int:
        bases = [segment.base_offset for segment in self.segments]
        return max(bisect.bisect_right(bases, offset) - 1, 0)

    def read(self, start_offset: int, max_bytes: int, *, max_offset: int | None = None) -> bytes:
        """Whole batches from the one holding start_offset (see Segment.read)."""
        if not self.log_start_offset <= start_offset <= self.log_end_offset:
            raise OffsetOutOfRange(
                f"offset {start_offset} outside [{self.log_start_offset}, {self.log_end_offset}]"
            )
        for segment in self.segments[self._segment_index(start_offset) :]:
            position = segment.position_of(start_offset)
            data = segment.read(position, max_bytes, max_offset)
            if data or position < segment.size_bytes:
                return data
        return b""

    def iter_batches(self, start_offset: int = 0) -> Iterator[tuple[BatchHeader, bytes]]:
        for segment in self.segments[self._segment_index(start_offset) :]:
            yield from segment.iter_batches(start_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after timestamp_ms."""
        for segment in self.segments:
            base = segment.offset_for_time(timestamp_ms)
            if base is None:
                continue
            for header, data in segment.iter_batches(base):
                if header.max_timestamp < timestamp_ms:
                    continue
                if header.uses_log_append_time:
                    return header.base_offset, header.max_timestamp
                for record in decode_batch_records(data, header):
                    if record.timestamp_ms >= timestamp_ms:
                        return record.offset, record.timestamp_ms
        return None

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= asked, the offset where it ended)."""
        starts = self._epoch_starts
        slot = bisect.bisect_right([e for e, _ in starts], epoch) - 1
        if slot < 0:
            return -1, -1
        if slot == len(starts) - 1:
            return starts[slot][0], self.log_end_offset
        return starts[slot][0], starts[slot + 1][1]

    # -- shrinking ---------------------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Drop every batch at or above offset (follower divergence)."""
        while len(self.segments) > 1 and self.active.base_offset >= offset:
            self.segments.pop().delete()
        self.active.truncate_to(offset)
        self._epoch_starts = [(e, o) for e, o in self._epoch_starts if o < offset]

    def delete_records_before(self, offset: int) -> None:
        assert offset <= self.log_end_offset
        self.log_start_offset = max(self.log_start_offset, offset)
        while len(self.segments) > 1 and self.segments[1].base_offset <= self.log_start_offset:
            self.segments.pop(0).delete()
        self._write_log_start()

    def drop_oldest_segment(self) -> Segment:
        segment = self.segments.pop(0)
        segment.delete()
        self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
        self._write_log_start()
        return segment

    # -- lifecycle ---------------------------------------------------------------------------
    def flush(self) -> None:
        for segment in self.segments:
            segment.flush()

    def close(self) -> None:
        for segment in self.segments:
            segment.close()
        (self.directory / CLEAN_SHUTDOWN_FILE).touch()
