"""Record-level codec for RecordBatch v2: decode and build batches, compress payloads.

We write our own rather than use kio's record reader because kio truncates record
timestamps to whole seconds and cannot decompress. This module is off the hot path
(the broker moves batches as bytes); it serves compaction, the group store, the
mirror (control batches, splits) and tests. Errors in the input raise InvalidBatch.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import cramjam
from crc32c import crc32c

from broker.protocol.batch import (
    CONTROL_BIT,
    CRC_START,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    BatchHeader,
    InvalidBatch,
    read_header,
)

NO_COMPRESSION, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {NO_COMPRESSION: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16  # magic + version i32 + compatible version i32
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")
_MAX_VARINT_BYTES = 5
_MAX_VARLONG_BYTES = 10


class ControlType(IntEnum):
    """Transaction marker types (ControlRecordType.java)."""

    ABORT = 0
    COMMIT = 1


@dataclass(frozen=True, slots=True)
class Record:
    offset: int  # absolute offset
    timestamp_ms: int  # absolute
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    attributes: int = 0


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record not yet in a log: build_batch gives it the next offset delta."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int = 0


# --- compression -----------------------------------------------------------------


def compress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Compress a records section; snappy is written raw (both clients read it)."""
    if codec == NO_COMPRESSION:
        return bytes(data)
    if codec == GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == LZ4:
        return bytes(cramjam.lz4.compress(data))  # LZ4 frame format, as Kafka uses
    if codec == ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise InvalidBatch(f"unknown compression codec {codec}")


def decompress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Decompress a records section; snappy may be raw or xerial-framed (Java client)."""
    try:
        if codec == NO_COMPRESSION:
            return bytes(data)
        if codec == GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec == SNAPPY:
            return _snappy_decompress(data)
        if codec == LZ4:
            return bytes(cramjam.lz4.decompress(data))
        if codec == ZSTD:
            return bytes(cramjam.zstd.decompress(data))
    except cramjam.DecompressionError as exc:
        raise InvalidBatch(f"{CODEC_NAMES[codec]} payload does not decompress: {exc}") from exc
    raise InvalidBatch(f"unknown compression codec {codec}")


def _snappy_decompress(data: bytes | bytearray | memoryview) -> bytes:
    view = memoryview(data)
    if bytes(view[: len(XERIAL_MAGIC)]) != XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(view))
    position = _XERIAL_HEADER_BYTES
    chunks = []
    while position < len(view):
        if position + 4 > len(view):
            raise InvalidBatch("xerial snappy chunk length is truncated")
        (length,) = _I32.unpack_from(view, position)
        position += 4
        if length < 0 or position + length > len(view):
            raise InvalidBatch(f"xerial snappy chunk of {length} bytes runs past the payload")
        chunks.append(bytes(cramjam.snappy.decompress_raw(view[position : position + length])))
        position += length
    return b"".join(chunks)


def xerial_snappy_compress(data: bytes, chunk_bytes: int = 32 * 1024) -> bytes:
    """The Java client's snappy framing; we never write it, tests use it to check reading."""
    out = bytearray(XERIAL_MAGIC + _I32.pack(1) + _I32.pack(1))
    for start in range(0, len(data), chunk_bytes):
        chunk = bytes(cramjam.snappy.compress_raw(data[start : start + chunk_bytes]))
        out += _I32.pack(len(chunk)) + chunk
    return bytes(out)


# --- varints ---------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Zigzag-encode a signed int (varint and varlong share the encoding)."""
    unsigned = (value << 1) ^ (value >> 63)
    out = bytearray()
    while unsigned > 0x7F:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


class _Reader:
    """Bounds-checked cursor over a records section; every short read is InvalidBatch."""

    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def varint(self, max_bytes: int = _MAX_VARINT_BYTES) -> int:
        data, position, unsigned, shift = self.data, self.position, 0, 0
        for _ in range(max_bytes):
            if position >= len(data):
                raise InvalidBatch("record varint runs past the end of the batch")
            byte = data[position]
            position += 1
            unsigned |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.position = position
                return (unsigned >> 1) ^ -(unsigned & 1)
            shift += 7
        raise InvalidBatch(f"record varint longer than {max_bytes} bytes")

    def varlong(self) -> int:
        return self.varint(_MAX_VARLONG_BYTES)

    def int8(self) -> int:
        if self.position >= len(self.data):
            raise InvalidBatch("record attributes run past the end of the batch")
        value = self.data[self.position]
        self.position += 1
        return value - 256 if value > 127 else value

    def nullable_bytes(self) -> bytes | None:
        length = self.varint()
        if length < 0:
            return None
        end = self.position + length
        if end > len(self.data):
            raise InvalidBatch(f"record field of {length} bytes runs past the end of the batch")
        value = self.data[self.position : end]
        self.position = end
        return value

    def header_key(self) -> str:
        raw = self.nullable_bytes()
        if raw is None:
            raise InvalidBatch("record header key is null")
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise InvalidBatch("record header key is not UTF-8") from exc


# --- decoding --------------------------------------------------------------------


def decode_batch_records(
    buffer: bytes | bytearray | memoryview, header: BatchHeader
) -> list[Record]:
    """Decode (and decompress) every record of the batch at header.position in buffer."""
    start = header.position + HEADER_BYTES
    end = header.position + header.size_bytes
    if end > len(buffer):
        raise InvalidBatch("batch runs past the end of the buffer")
    payload = decompress(header.compression, memoryview(buffer)[start:end])
    reader = _Reader(payload)
    log_append_time = header.max_timestamp if header.uses_log_append_time else None
    records = [_decode_record(reader, header, log_append_time) for _ in range(header.records_count)]
    if reader.position != len(payload):
        raise InvalidBatch(f"{len(payload) - reader.position} bytes after the last record")
    return records


def _decode_record(reader: _Reader, header: BatchHeader, log_append_time: int | None) -> Record:
    length = reader.varint()
    record_end = reader.position + length
    if length < 0 or record_end > len(reader.data):
        raise InvalidBatch(f"record length {length} runs past the end of the batch")
    attributes = reader.int8()
    timestamp_delta = reader.varlong()
    offset_delta = reader.varint()
    if not 0 <= offset_delta <= header.last_offset_delta:
        raise InvalidBatch(f"record offset delta {offset_delta} is outside the batch")
    key = reader.nullable_bytes()
    value = reader.nullable_bytes()
    header_count = reader.varint()
    if header_count < 0:
        raise InvalidBatch(f"negative record header count {header_count}")
    headers = tuple((reader.header_key(), reader.nullable_bytes()) for _ in range(header_count))
    if reader.position != record_end:
        raise InvalidBatch("record length does not match its fields")
    timestamp_ms = header.base_timestamp + timestamp_delta
    return Record(
        offset=header.base_offset + offset_delta,
        timestamp_ms=timestamp_ms if log_append_time is None else log_append_time,
        key=key,
        value=value,
        headers=headers,
        attributes=attributes,
    )


def control_record_type(record: Record) -> ControlType:
    """The marker type of a record from a control batch (key = version i16, type i16)."""
    if record.key is None or len(record.key) < _CONTROL_KEY.size:
        raise InvalidBatch("control record key is shorter than 4 bytes")
    _version, kind = _CONTROL_KEY.unpack_from(record.key)
    try:
        return ControlType(kind)
    except ValueError as exc:
        raise InvalidBatch(f"unknown control record type {kind}") from exc


# --- building --------------------------------------------------------------------


def _encode_record(out: bytearray, record: Record | NewRecord, delta: int, base_ts: int) -> None:
    body = bytearray()
    body.append((record.attributes if isinstance(record, Record) else 0) & 0xFF)
    body += encode_varint(record.timestamp_ms - base_ts)
    body += encode_varint(delta)
    for field in (record.key, record.value):
        body += encode_varint(-1 if field is None else len(field))
        body += field or b""
    body += encode_varint(len(record.headers))
    for name, value in record.headers:
        raw_name = name.encode()
        body += encode_varint(len(raw_name)) + raw_name
        body += encode_varint(-1 if value is None else len(value))
        body += value or b""
    out += encode_varint(len(body))
    out += body


def _offset_deltas(records: Sequence[Record | NewRecord], base_offset: int) -> list[int]:
    deltas = [
        record.offset - base_offset if isinstance(record, Record) else index
        for index, record in enumerate(records)
    ]
    if any(delta < 0 for delta in deltas) or deltas != sorted(set(deltas)):
        raise ValueError("record offsets must increase and not precede base_offset")
    return deltas


def build_batch(
    records: Sequence[Record | NewRecord],
    *,
    base_offset: int | None = None,
    compression: int = NO_COMPRESSION,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    transactional: bool = False,
    control: bool = False,
    last_offset_delta: int | None = None,
    timestamp_type_log_append: bool = False,
    max_timestamp_ms: int | None = None,
) -> bytes:
    """Encode one v2 batch with a valid CRC-32C.

    A Record keeps its offset (delta from base_offset, which defaults to the first
    Record's offset); a NewRecord takes its index. last_offset_delta and
    max_timestamp_ms let compaction keep a rewritten batch's original header values.
    """
    if base_offset is None:
        first = records[0] if records else None
        base_offset = first.offset if isinstance(first, Record) else 0
    deltas = _offset_deltas(records, base_offset)
    base_ts = records[0].timestamp_ms if records else (max_timestamp_ms or -1)
    if max_timestamp_ms is None:
        max_timestamp_ms = max((r.timestamp_ms for r in records), default=-1)
    if last_offset_delta is None:
        last_offset_delta = deltas[-1] if deltas else 0
    if deltas and deltas[-1] > last_offset_delta:
        raise ValueError(f"last_offset_delta {last_offset_delta} < last record delta")
    body = bytearray()
    for record, delta in zip(records, deltas, strict=True):
        _encode_record(body, record, delta, base_ts)
    payload = compress(compression, body) if compression else bytes(body)
    attributes = (
        (compression & 0x07)
        | (TIMESTAMP_TYPE_BIT if timestamp_type_log_append else 0)
        | (TRANSACTIONAL_BIT if transactional else 0)
        | (CONTROL_BIT if control else 0)
    )
    batch = bytearray(HEADER_BYTES + len(payload))
    HEADER.pack_into(
        batch, 0, base_offset, len(batch) - LOG_OVERHEAD, partition_leader_epoch, 2, 0,
        attributes, last_offset_delta, base_ts, max_timestamp_ms, producer_id,
        producer_epoch, base_sequence, len(records),
    )  # fmt: skip
    batch[HEADER_BYTES:] = payload
    _U32.pack_into(batch, 17, crc32c(memoryview(batch)[CRC_START:]))
    return bytes(batch)


def build_control_batch(
    kind: ControlType,
    *,
    producer_id: int,
    producer_epoch: int,
    timestamp_ms: int,
    base_offset: int = 0,
    coordinator_epoch: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A COMMIT or ABORT transaction marker batch (one control record, as Kafka writes)."""
    marker = NewRecord(
        key=_CONTROL_KEY.pack(0, int(kind)),
        value=_CONTROL_VALUE.pack(0, coordinator_epoch),
        timestamp_ms=timestamp_ms,
    )
    return build_batch(
        [marker], base_offset=base_offset, producer_id=producer_id,
        producer_epoch=producer_epoch, partition_leader_epoch=partition_leader_epoch,
        transactional=True, control=True,
    )  # fmt: skip


def decode_batches(buffer: bytes | bytearray | memoryview) -> list[Record]:
    """Every record of every whole batch in buffer (a convenience for tests and tools)."""
    records: list[Record] = []
    position = 0
    while position < len(buffer):
        header = read_header(buffer, position)
        records.extend(decode_batch_records(buffer, header))
        position += header.size_bytes
    return records
