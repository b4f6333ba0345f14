"""`__consumer_offsets` record layouts: Kafka's bytes, round trips, older versions, garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.groups import OffsetAndMetadata, storage
from broker.groups.storage import GroupMetadataRecord, MemberRecord, RecordFormatError

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=40)
blob = st.binary(max_size=64)


def kstring(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">h", len(encoded)) + encoded


def test_offset_commit_key_is_kafkas_v1_layout() -> None:
    key = storage.offset_key("grp", "tp", 7)
    assert key == b"\x00\x01" + b"\x00\x03grp" + b"\x00\x02tp" + b"\x00\x00\x00\x07"


def test_offset_commit_value_is_kafkas_v3_layout() -> None:
    value = storage.offset_value(OffsetAndMetadata(5, -1, "m", 9))
    assert value == (
        b"\x00\x03"  # version
        + (5).to_bytes(8, "big")  # offset
        + b"\xff\xff\xff\xff"  # leaderEpoch -1
        + b"\x00\x01m"  # metadata
        + (9).to_bytes(8, "big")  # commitTimestamp
    )


def test_group_metadata_key_and_value_are_kafkas_layouts() -> None:
    assert storage.group_key("grp") == b"\x00\x02\x00\x03grp"
    member = MemberRecord("m1", None, "cid", "/h", 300, 100, b"S", b"AA")
    value = storage.group_value(GroupMetadataRecord("consumer", 4, "range", "m1", 11, (member,)))
    assert value == (
        b"\x00\x03"
        + kstring("consumer")
        + (4).to_bytes(4, "big")
        + kstring("range")
        + kstring("m1")
        + (11).to_bytes(8, "big")
        + (1).to_bytes(4, "big")
        + kstring("m1")
        + b"\xff\xff"  # groupInstanceId null
        + kstring("cid")
        + kstring("/h")
        + (300).to_bytes(4, "big")  # rebalanceTimeout before sessionTimeout
        + (100).to_bytes(4, "big")
        + b"\x00\x00\x00\x01S"
        + b"\x00\x00\x00\x02AA"
    )


@given(text, text, st.integers(0, 2**31 - 1))
def test_keys_round_trip(group: str, topic: str, partition: int) -> None:
    assert storage.decode_key(storage.offset_key(group, topic, partition)) == (
        group,
        topic,
        partition,
    )
    assert storage.decode_key(storage.group_key(group)) == group


@given(st.builds(OffsetAndMetadata, int64, int32, text, int64))
def test_offset_values_round_trip(value: OffsetAndMetadata) -> None:
    assert storage.decode_offset_value(storage.offset_value(value)) == value


members = st.builds(
    MemberRecord, text, st.none() | text, text, text, st.integers(0, 2**31 - 1), int32, blob, blob
)
group_records = st.builds(
    GroupMetadataRecord,
    text,
    int32,
    st.none() | text,
    st.none() | text,
    int64,
    st.lists(members, max_size=4).map(tuple),
)


@given(group_records)
def test_group_values_round_trip(record: GroupMetadataRecord) -> None:
    assert storage.decode_group_value(storage.group_value(record)) == record


def test_older_offset_values_are_read() -> None:
    v0 = b"\x00\x00" + (8).to_bytes(8, "big") + kstring("x") + (3).to_bytes(8, "big")
    assert storage.decode_offset_value(v0) == OffsetAndMetadata(8, -1, "x", 3)
    v1 = b"\x00\x01" + (8).to_bytes(8, "big") + kstring("") + (3).to_bytes(8, "big") + bytes(8)
    assert storage.decode_offset_value(v1) == OffsetAndMetadata(8, -1, "", 3)


def test_older_group_values_are_read() -> None:
    v0 = (
        b"\x00\x00"
        + kstring("consumer")
        + (2).to_bytes(4, "big")
        + kstring("range")
        + kstring("m")
        + (1).to_bytes(4, "big")
        + kstring("m")
        + kstring("c")
        + kstring("h")
        + (6000).to_bytes(4, "big")
        + b"\x00\x00\x00\x00" * 2
    )
    record = storage.decode_group_value(v0)
    assert (record.generation, record.state_timestamp_ms) == (2, -1)
    assert record.members == (MemberRecord("m", None, "c", "h", 6000, 6000, b"", b""),)


@pytest.mark.parametrize(
    "decode, data",
    [
        (storage.decode_key, b"\x00\x05\x00\x00"),  # unknown key version
        (storage.decode_key, b"\x00\x01\x00\x09ab"),  # truncated string
        (storage.decode_key, storage.group_key("g") + b"!"),  # trailing bytes
        (storage.decode_offset_value, b"\x00\x04" + bytes(30)),  # flexible v4: not ours
        (storage.decode_offset_value, b"\x00\x03\x00"),
        (storage.decode_group_value, b"\x00\x03\xff\xff"),  # null protocolType
        (storage.decode_group_value, b"\x00\x03\x00\x02\xff\xfe"),  # not UTF-8
    ],
)
def test_garbage_raises_record_format_error(decode: object, data: bytes) -> None:
    with pytest.raises(RecordFormatError):
        decode(data)  # type: ignore[operator]
