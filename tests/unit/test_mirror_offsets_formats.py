"""MM2 record formats: golden bytes (as Kafka's Struct encoding writes them), round trips,
and rejection of malformed input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.offsets.mm2_formats import Checkpoint, Heartbeat, MalformedRecord, OffsetSync

int32s = st.integers(-(1 << 31), (1 << 31) - 1)
int64s = st.integers(-(1 << 63), (1 << 63) - 1)
strings = st.text(max_size=20)

offset_syncs = st.builds(OffsetSync, strings, int32s, int64s, int64s)
checkpoints = st.builds(Checkpoint, strings, strings, int32s, int64s, int64s, strings)
heartbeats = st.builds(Heartbeat, strings, strings, int64s)
RecordType = type[OffsetSync] | type[Checkpoint] | type[Heartbeat]


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# -- golden vectors, written out field by field --------------------------------------


def test_offset_sync_golden() -> None:
    key, value = OffsetSync("orders", 3, 42, 7).encode()
    assert key == h("0006") + b"orders" + h("00000003")
    assert value == h("000000000000002a 0000000000000007")  # no version header
    assert OffsetSync.decode(key, value) == OffsetSync("orders", 3, 42, 7)


def test_checkpoint_golden() -> None:
    key, value = Checkpoint("g1", "orders", 0, 100, 90, "m").encode()
    assert key == h("0002") + b"g1" + h("0006") + b"orders" + h("00000000")
    assert value == h("0000 0000000000000064 000000000000005a 0001") + b"m"
    assert Checkpoint.decode(key, value) == Checkpoint("g1", "orders", 0, 100, 90, "m")


def test_checkpoint_metadata_defaults_to_empty() -> None:
    _, value = Checkpoint("g", "t", 1, 2, 3).encode()
    assert value.endswith(h("0000"))
    assert len(value) == 2 + 8 + 8 + 2


def test_heartbeat_golden() -> None:
    key, value = Heartbeat("east", "west", 1_700_000_000_000).encode()
    assert key == h("0004") + b"east" + h("0004") + b"west"
    assert value == h("0000 0000018bcfe56800")
    assert Heartbeat.decode(key, value) == Heartbeat("east", "west", 1_700_000_000_000)


def test_string_length_counts_utf8_bytes_and_negative_ints_are_twos_complement() -> None:
    key, value = OffsetSync("é", -1, -2, 0).encode()
    assert key == h("0002 c3a9 ffffffff")
    assert value == h("fffffffffffffffe 0000000000000000")


# -- round trips --------------------------------------------------------------------


@given(offset_syncs)
def test_offset_sync_round_trip(record: OffsetSync) -> None:
    assert OffsetSync.decode(*record.encode()) == record


@given(checkpoints)
def test_checkpoint_round_trip(record: Checkpoint) -> None:
    assert Checkpoint.decode(*record.encode()) == record


@given(heartbeats)
def test_heartbeat_round_trip(record: Heartbeat) -> None:
    assert Heartbeat.decode(*record.encode()) == record


@settings(max_examples=200)
@given(
    st.sampled_from([OffsetSync, Checkpoint, Heartbeat]),
    st.binary(max_size=40),
    st.binary(max_size=40),
)
def test_arbitrary_bytes_decode_exactly_or_raise_malformed(
    record_type: RecordType, key: bytes, value: bytes
) -> None:
    try:
        record = record_type.decode(key, value)
    except MalformedRecord:
        return
    assert record.encode() == (key, value)


# -- malformed input ----------------------------------------------------------------

SYNC_KEY, SYNC_VALUE = OffsetSync("t", 0, 1, 2).encode()
CHECKPOINT_KEY, CHECKPOINT_VALUE = Checkpoint("g", "t", 0, 1, 2, "m").encode()
HEARTBEAT_KEY, HEARTBEAT_VALUE = Heartbeat("a", "b", 5).encode()


@pytest.mark.parametrize(
    ("record_type", "key", "value", "message"),
    [
        (OffsetSync, b"", SYNC_VALUE, r"offset sync key: truncated at topic"),
        (OffsetSync, SYNC_KEY[:-1], SYNC_VALUE, r"offset sync key: truncated at partition"),
        (OffsetSync, SYNC_KEY + b"\0", SYNC_VALUE, r"offset sync key: 1 trailing bytes"),
        (OffsetSync, SYNC_KEY, SYNC_VALUE[:-1], r"offset sync value: truncated at offset"),
        (OffsetSync, SYNC_KEY, SYNC_VALUE + b"\0\0", r"offset sync value: 2 trailing bytes"),
        (OffsetSync, h("ffff 00000000"), SYNC_VALUE, r"offset sync key: topic has negative"),
        (OffsetSync, h("0001 ff 00000000"), SYNC_VALUE, r"offset sync key: topic is not valid"),
        (OffsetSync, h("0005") + b"ab", SYNC_VALUE, r"need 5 bytes, have 2"),
        (Checkpoint, CHECKPOINT_KEY, h("0001") + CHECKPOINT_VALUE[2:], r"unknown version 1"),
        (Checkpoint, CHECKPOINT_KEY, h("ffff") + CHECKPOINT_VALUE[2:], r"unknown version -1"),
        (Checkpoint, CHECKPOINT_KEY, b"\0", r"checkpoint value: truncated at version"),
        (Checkpoint, CHECKPOINT_KEY, CHECKPOINT_VALUE[:-1], r"truncated at metadata"),
        (Checkpoint, CHECKPOINT_KEY, CHECKPOINT_VALUE + b"x", r"checkpoint value: 1 trailing"),
        (Checkpoint, CHECKPOINT_KEY[:-4], CHECKPOINT_VALUE, r"checkpoint key: truncated at part"),
        (Checkpoint, h("0001 c3") + CHECKPOINT_KEY[3:], CHECKPOINT_VALUE, r"group is not valid"),
        (Heartbeat, HEARTBEAT_KEY, h("0002") + HEARTBEAT_VALUE[2:], r"heartbeat value: unknown"),
        (Heartbeat, HEARTBEAT_KEY, HEARTBEAT_VALUE[:-1], r"heartbeat value: truncated at time"),
        (Heartbeat, HEARTBEAT_KEY + b"\0", HEARTBEAT_VALUE, r"heartbeat key: 1 trailing bytes"),
        (Heartbeat, h("0001") + b"a", HEARTBEAT_VALUE, r"heartbeat key: truncated at target"),
        (Heartbeat, h("8000") + b"a", HEARTBEAT_VALUE, r"sourceClusterAlias has negative"),
    ],
)
def test_malformed_records_say_which_record_and_why(
    record_type: RecordType, key: bytes, value: bytes, message: str
) -> None:
    with pytest.raises(MalformedRecord, match=message):
        record_type.decode(key, value)


def test_malformed_record_is_a_value_error() -> None:
    assert issubclass(MalformedRecord, ValueError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: OffsetSync("t", 1 << 31, 0, 0),
        lambda: OffsetSync("t", 0, 1 << 63, 0),
        lambda: Checkpoint("g", "t", 0, 0, -(1 << 63) - 1),
        lambda: Checkpoint("g", "t", 0, 0, 0, "x" * (1 << 15)),
        lambda: Heartbeat("é" * (1 << 14), "b", 0),
        lambda: Heartbeat("a", "b", 1 << 63),
    ],
)
def test_unencodable_values_are_rejected_at_construction(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_longest_string_fits() -> None:
    record = Heartbeat("x" * ((1 << 15) - 1), "", 0)
    assert Heartbeat.decode(*record.encode()) == record
