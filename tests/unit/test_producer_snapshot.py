"""Producer-state snapshot bytes: round trip, and refusal of torn, corrupt or unknown files."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.log.producer_snapshot import (
    VERSION,
    ProducerSnapshot,
    ProducerSnapshotEntry,
    SnapshotError,
    decode,
    encode,
    from_table,
    restore_into,
)
from broker.producer_state import AppendedBatch, ProducerStateTable
from broker.protocol.batch import read_header
from broker.protocol.records import Record, build_batch

_I32 = st.integers(-(1 << 31), (1 << 31) - 1)
_I64 = st.integers(-(1 << 63), (1 << 63) - 1)
_BATCHES = st.builds(AppendedBatch, _I32, _I32, _I64, _I64)
_ENTRIES = st.builds(
    ProducerSnapshotEntry,
    _I64,
    st.integers(-(1 << 15), (1 << 15) - 1),
    st.lists(_BATCHES, max_size=5).map(tuple),
)
_SNAPSHOTS = st.builds(ProducerSnapshot, _I64, st.lists(_ENTRIES, max_size=8).map(tuple))

SAMPLE = ProducerSnapshot(
    1234,
    (ProducerSnapshotEntry(7, 2, (AppendedBatch(0, 4, 100, 104), AppendedBatch(5, 5, 200, 200))),),
)


@given(_SNAPSHOTS)
def test_round_trip(snapshot: ProducerSnapshot) -> None:
    assert decode(encode(snapshot)) == snapshot


@given(_SNAPSHOTS, st.data())
def test_every_torn_prefix_is_refused(snapshot: ProducerSnapshot, data: st.DataObject) -> None:
    encoded = encode(snapshot)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(SnapshotError):
        decode(encoded[:cut])


@given(_SNAPSHOTS, st.data())
def test_a_flipped_bit_is_refused(snapshot: ProducerSnapshot, data: st.DataObject) -> None:
    encoded = bytearray(encode(snapshot))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SnapshotError):
        decode(bytes(encoded))


def test_bad_crc_is_refused() -> None:
    encoded = bytearray(encode(SAMPLE))
    encoded[-1] ^= 0xFF
    with pytest.raises(SnapshotError, match="CRC"):
        decode(bytes(encoded))


def test_unknown_version_is_refused() -> None:
    encoded = bytearray(encode(SAMPLE))
    struct.pack_into(">h", encoded, 0, VERSION + 1)
    with pytest.raises(SnapshotError, match="version"):
        decode(bytes(encoded))


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(SnapshotError):
        decode(encode(SAMPLE) + b"\0")


def test_table_round_trip_answers_retries_with_original_offsets() -> None:
    table = ProducerStateTable()
    for sequence in range(7):
        header = read_header(
            build_batch(
                [Record(0, 0, None, b"v")], producer_id=9, producer_epoch=1, base_sequence=sequence
            )
        )
        table.record(header, 10 + sequence, 10 + sequence)
    restored = ProducerStateTable()
    restore_into(restored, decode(encode(from_table(table, 17))))
    retry = read_header(
        build_batch([Record(0, 0, None, b"v")], producer_id=9, producer_epoch=1, base_sequence=5)
    )
    earlier = restored.check(retry)
    assert earlier is not None and earlier.first_offset == 15
    assert restored.producer_count == 1
    assert [entry.batches for _, entry in restored.items()] == [
        entry.batches for _, entry in table.items()
    ]
