"""Zero-copy view of RecordBatch v2 headers (DefaultRecordBatch.java layout).

Data moves through the broker as batch bytes: we read and patch the 61-byte
header in place and never decode records on the hot path.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from crc32c import crc32c

# offset 0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
# 17 crc u32 | 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64
# 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32
# 57 recordsCount i32 | 61 records
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_BYTES = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength precede the length-counted part
CRC_START = 21
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
DELETE_HORIZON_BIT = 0x40
NO_PRODUCER_ID = -1
NO_SEQUENCE = -1


class InvalidBatch(ValueError):
    """Bytes that are not a well-formed v2 record batch (short, bad magic, bad CRC)."""


@dataclass(frozen=True, slots=True)
class BatchHeader:
    position: int  # where the batch starts in the buffer it was read from
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size_bytes(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def uses_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_BIT)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id != NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


def read_header(buffer: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    """Parse the header of the batch at `position`, checking only sizes and magic."""
    if len(buffer) - position < HEADER_BYTES:
        raise InvalidBatch(f"{len(buffer) - position} bytes left, a batch header needs 61")
    fields = HEADER.unpack_from(buffer, position)
    header = BatchHeader(position, *fields)
    if header.magic != 2:
        raise InvalidBatch(f"magic {header.magic} (only record batch v2 is supported)")
    if header.batch_length < HEADER_BYTES - LOG_OVERHEAD:
        raise InvalidBatch(f"batch length {header.batch_length} is shorter than its header")
    if position + header.size_bytes > len(buffer):
        raise InvalidBatch("batch runs past the end of the buffer")
    if header.last_offset_delta < 0 or header.records_count < 0:
        raise InvalidBatch("negative lastOffsetDelta or record count")
    return header


def compute_crc(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> int:
    start = header.position + CRC_START
    end = header.position + header.size_bytes
    return int(crc32c(memoryview(buffer)[start:end]))


def crc_is_valid(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> bool:
    return compute_crc(buffer, header) == header.crc


def iter_headers(buffer: bytes | bytearray | memoryview) -> Iterator[BatchHeader]:
    """Yield the header of each whole batch in `buffer`; raise InvalidBatch on a bad one."""
    position = 0
    while position < len(buffer):
        header = read_header(buffer, position)
        yield header
        position += header.size_bytes


def iter_valid_prefix(buffer: bytes | bytearray | memoryview) -> Iterator[BatchHeader]:
    """Yield whole, CRC-valid batches and stop silently at the first short or corrupt one.

    Used by log recovery and by fetch responses, where a partial trailing batch is normal.
    """
    position = 0
    while position < len(buffer):
        try:
            header = read_header(buffer, position)
        except InvalidBatch:
            return
        if not crc_is_valid(buffer, header):
            return
        yield header
        position += header.size_bytes


def set_base_offset(buffer: bytearray | memoryview, position: int, base_offset: int) -> None:
    """Assign the offset; baseOffset is outside the CRC, so the CRC stays valid."""
    _I64.pack_into(buffer, position, base_offset)


def set_partition_leader_epoch(buffer: bytearray | memoryview, position: int, epoch: int) -> None:
    """Stamp the leader epoch; also outside the CRC."""
    _I32.pack_into(buffer, position + 12, epoch)


def set_log_append_time(buffer: bytearray | memoryview, header: BatchHeader, now_ms: int) -> None:
    """Rewrite attributes and maxTimestamp for LogAppendTime topics, then re-sign the CRC."""
    _I16.pack_into(buffer, header.position + 21, header.attributes | TIMESTAMP_TYPE_BIT)
    _I64.pack_into(buffer, header.position + 35, now_ms)
    crc = int(
        crc32c(
            memoryview(buffer)[header.position + CRC_START : header.position + header.size_bytes]
        )
    )
    _U32.pack_into(buffer, header.position + 17, crc)
