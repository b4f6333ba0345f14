"""Record codec: round trips over every codec, interop with kio, and hostile input."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.records.readers import read_batch

from broker.protocol.batch import (
    HEADER_BYTES,
    LOG_OVERHEAD,
    InvalidBatch,
    crc_is_valid,
    read_header,
)
from broker.protocol.records import (
    GZIP,
    LZ4,
    SNAPPY,
    ZSTD,
    ControlType,
    NewRecord,
    Record,
    build_batch,
    build_control_batch,
    compress,
    control_record_type,
    decode_batch_records,
    decode_batches,
    decompress,
    encode_varint,
    xerial_snappy_compress,
)

CODECS = [0, GZIP, SNAPPY, LZ4, ZSTD]

nullable_bytes = st.none() | st.binary(max_size=300)
headers = st.lists(st.tuples(st.text(max_size=20), nullable_bytes), max_size=4).map(tuple)
timestamps = st.integers(min_value=0, max_value=1 << 45)
new_records = st.builds(NewRecord, nullable_bytes, nullable_bytes, headers, timestamps)


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(new_records, min_size=1, max_size=20),
    codec=st.sampled_from(CODECS),
    base_offset=st.integers(min_value=0, max_value=1 << 50),
)
def test_round_trip_every_codec(records: list[NewRecord], codec: int, base_offset: int) -> None:
    batch = build_batch(records, base_offset=base_offset, compression=codec)
    header = read_header(batch)
    assert crc_is_valid(batch, header)
    assert header.compression == codec
    assert header.records_count == len(records)
    assert header.last_offset == base_offset + len(records) - 1
    assert header.max_timestamp == max(r.timestamp_ms for r in records)
    decoded = decode_batch_records(batch, header)
    assert [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in decoded] == [
        (base_offset + i, r.timestamp_ms, r.key, r.value, r.headers) for i, r in enumerate(records)
    ]


def test_records_keep_offsets_and_last_offset_delta() -> None:
    """Compaction rebuilds a batch with gaps and the original lastOffsetDelta."""
    kept = [Record(103, 5, b"a", b"1"), Record(107, 9, b"b", None)]
    batch = build_batch(kept, base_offset=100, last_offset_delta=9, compression=LZ4)
    header = read_header(batch)
    assert (header.base_offset, header.last_offset, header.records_count) == (100, 109, 2)
    assert decode_batch_records(batch, header) == kept


def test_batch_at_nonzero_position() -> None:
    first = build_batch([NewRecord(b"k", b"v", (), 1)])
    second = build_batch([NewRecord(b"x", b"y", (), 2)], base_offset=1, compression=GZIP)
    assert [r.key for r in decode_batches(first + second)] == [b"k", b"x"]


def test_kio_reads_our_batch() -> None:
    records = [NewRecord(b"key", b"value", (("h", b"1"),), 1_700_000_000_123), NewRecord(None, b"")]
    batch = build_batch(records, base_offset=42, producer_id=7, producer_epoch=1, base_sequence=3)
    parsed, size = read_batch(batch, 0)
    assert size == len(batch)
    assert (parsed.base_offset, parsed.producer_id, parsed.base_sequence) == (42, 7, 3)
    assert [(r.offset, r.key, r.value) for r in parsed.records] == [
        (42, b"key", b"value"),
        (43, None, b""),
    ]
    assert parsed.records[0].headers[0].key == b"h"


def test_out_of_order_timestamps_use_negative_deltas() -> None:
    records = [NewRecord(b"a", b"1", (), 5000), NewRecord(b"b", b"2", (), 1000)]
    batch = build_batch(records)
    header = read_header(batch)
    assert header.max_timestamp == 5000
    assert [r.timestamp_ms for r in decode_batch_records(batch, header)] == [5000, 1000]


def test_log_append_time_overrides_record_timestamps() -> None:
    batch = build_batch(
        [NewRecord(b"a", b"1", (), 5), NewRecord(b"b", b"2", (), 6)],
        timestamp_type_log_append=True, max_timestamp_ms=99,
    )  # fmt: skip
    header = read_header(batch)
    assert header.uses_log_append_time
    assert [r.timestamp_ms for r in decode_batch_records(batch, header)] == [99, 99]


@pytest.mark.parametrize("kind", list(ControlType))
def test_control_batch(kind: ControlType) -> None:
    batch = build_control_batch(
        kind, producer_id=9, producer_epoch=2, timestamp_ms=77, base_offset=10
    )
    header = read_header(batch)
    assert header.is_control and header.is_transactional and header.producer_id == 9
    (record,) = decode_batch_records(batch, header)
    assert control_record_type(record) is kind
    assert record.value == struct.pack(">hi", 0, 0)


def test_xerial_snappy_from_java_client_decodes() -> None:
    payload = b"0123456789" * 10_000
    framed = xerial_snappy_compress(payload, chunk_bytes=4096)
    assert framed.startswith(b"\x82SNAPPY\x00")
    assert decompress(SNAPPY, framed) == payload
    assert decompress(SNAPPY, compress(SNAPPY, payload)) == payload  # raw, as we write


def _with_payload(batch: bytes, payload: bytes) -> bytes:
    """Same header, new records section; lengths adjusted, CRC left stale (decode ignores it)."""
    out = bytearray(batch[:HEADER_BYTES] + payload)
    struct.pack_into(">i", out, 8, len(out) - LOG_OVERHEAD)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200), codec=st.sampled_from(CODECS), count=st.integers(0, 50))
def test_garbage_records_raise_invalid_batch(payload: bytes, codec: int, count: int) -> None:
    batch = bytearray(
        _with_payload(build_batch([NewRecord(b"k", b"v")], compression=codec), payload)
    )
    struct.pack_into(">i", batch, 57, count)
    struct.pack_into(">i", batch, 23, 1000)
    header = read_header(batch)
    with contextlib.suppress(InvalidBatch):
        decode_batch_records(batch, header)


@pytest.mark.parametrize("codec", CODECS)
def test_every_truncation_raises_invalid_batch(codec: int) -> None:
    records = [NewRecord(b"key%d" % i, b"value" * i, (("h", b"v"),), i) for i in range(5)]
    batch = build_batch(records, compression=codec)
    for cut in range(1, len(batch)):
        with pytest.raises(InvalidBatch):
            decode_batches(batch[:cut])
    payload = batch[HEADER_BYTES:]
    for cut in range(len(payload)):
        truncated = _with_payload(batch, payload[:cut])
        with pytest.raises(InvalidBatch):
            decode_batch_records(truncated, read_header(truncated))


def test_overlong_varint_is_invalid() -> None:
    batch = _with_payload(build_batch([NewRecord(b"k", b"v")]), b"\xff" * 12)
    with pytest.raises(InvalidBatch, match="varint"):
        decode_batch_records(batch, read_header(batch))


def test_unknown_codec_is_invalid() -> None:
    batch = bytearray(build_batch([NewRecord(b"k", b"v")]))
    struct.pack_into(">h", batch, 21, 5)
    with pytest.raises(InvalidBatch, match="codec"):
        decode_batch_records(batch, read_header(batch))


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_varint_zigzag(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) <= 10
    unsigned = sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded))
    assert (unsigned >> 1) ^ -(unsigned & 1) == value
