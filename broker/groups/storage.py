"""Records of the `__consumer_offsets` topic, in Kafka's own layouts.

We write what Kafka writes, so Kafka's tools can read our offsets topic:
OffsetCommitKey v1 / OffsetCommitValue v3 and GroupMetadataKey v2 / GroupMetadataValue v3
(apache/kafka `core/src/main/resources/common/message/*.json`). Big-endian; STRING is an
int16 length and UTF-8 (-1 = null where nullable); BYTES is an int32 length.
We read values v0-v3 too, so a topic copied from an older Kafka still loads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3
_OFFSET_KEY_VERSIONS = (0, 1)  # same layout; Kafka tells record kinds apart by key version


class RecordFormatError(ValueError):
    """A key or value that is not a `__consumer_offsets` record we can read."""


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed position: the next offset to consume, as the client sent it."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


class OffsetKey(NamedTuple):
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member as GroupMetadataValue stores it (subscription = its chosen protocol's metadata)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataRecord:
    """What survives a restart of a group besides its offsets."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp_ms: int
    members: tuple[MemberRecord, ...] = ()


class _Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def i16(self, value: int) -> _Writer:
        self._parts.append(_I16.pack(value))
        return self

    def i32(self, value: int) -> _Writer:
        self._parts.append(_I32.pack(value))
        return self

    def i64(self, value: int) -> _Writer:
        self._parts.append(_I64.pack(value))
        return self

    def string(self, value: str | None) -> _Writer:
        if value is None:
            return self.i16(-1)
        encoded = value.encode()
        assert len(encoded) <= 0x7FFF, "STRING length is an int16"
        self._parts += [_I16.pack(len(encoded)), encoded]
        return self

    def bytes_(self, value: bytes) -> _Writer:
        self._parts += [_I32.pack(len(value)), value]
        return self

    def done(self) -> bytes:
        return b"".join(self._parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self._pos + size > len(self._data):
            raise RecordFormatError(f"truncated record: need {size} bytes at {self._pos}")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def nullable_string(self) -> str | None:
        length = self.i16()
        if length < 0:
            return None
        try:
            return self._take(length).decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"STRING is not UTF-8: {exc}") from exc

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise RecordFormatError("null in a non-nullable STRING")
        return value

    def bytes_(self) -> bytes:
        return bytes(self._take(self.i32()))

    def end(self) -> None:
        if self._pos != len(self._data):
            raise RecordFormatError(f"{len(self._data) - self._pos} trailing bytes")


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return _Writer().i16(OFFSET_KEY_VERSION).string(group).string(topic).i32(partition).done()


def group_key(group: str) -> bytes:
    return _Writer().i16(GROUP_KEY_VERSION).string(group).done()


def decode_key(key: bytes) -> OffsetKey | str:
    """An OffsetKey for an offset commit record, or the group id for a group metadata record."""
    reader = _Reader(key)
    version = reader.i16()
    if version in _OFFSET_KEY_VERSIONS:
        decoded: OffsetKey | str = OffsetKey(reader.string(), reader.string(), reader.i32())
    elif version == GROUP_KEY_VERSION:
        decoded = reader.string()
    else:
        raise RecordFormatError(f"unknown __consumer_offsets key version {version}")
    reader.end()
    return decoded


def offset_value(value: OffsetAndMetadata) -> bytes:
    return (
        _Writer()
        .i16(OFFSET_VALUE_VERSION)
        .i64(value.offset)
        .i32(value.leader_epoch)
        .string(value.metadata)
        .i64(value.commit_timestamp_ms)
        .done()
    )


def decode_offset_value(value: bytes) -> OffsetAndMetadata:
    """OffsetCommitValue v0-v3 (v1's expire timestamp is read and dropped)."""
    reader = _Reader(value)
    version = reader.i16()
    if not 0 <= version <= OFFSET_VALUE_VERSION:
        raise RecordFormatError(f"unsupported offset value version {version}")
    offset = reader.i64()
    leader_epoch = reader.i32() if version >= 3 else -1
    metadata = reader.string()
    commit_timestamp_ms = reader.i64()
    if version == 1:
        reader.i64()  # expireTimestamp: retention is the broker's setting since Kafka 2.1
    reader.end()
    return OffsetAndMetadata(offset, leader_epoch, metadata, commit_timestamp_ms)


def group_value(record: GroupMetadataRecord) -> bytes:
    writer = (
        _Writer()
        .i16(GROUP_VALUE_VERSION)
        .string(record.protocol_type)
        .i32(record.generation)
        .string(record.protocol)
        .string(record.leader)
        .i64(record.state_timestamp_ms)
        .i32(len(record.members))
    )
    for member in record.members:
        (
            writer.string(member.member_id)
            .string(member.group_instance_id)
            .string(member.client_id)
            .string(member.client_host)
            .i32(member.rebalance_timeout_ms)
            .i32(member.session_timeout_ms)
            .bytes_(member.subscription)
            .bytes_(member.assignment)
        )
    return writer.done()


def decode_group_value(value: bytes) -> GroupMetadataRecord:
    """GroupMetadataValue v0-v3."""
    reader = _Reader(value)
    version = reader.i16()
    if not 0 <= version <= GROUP_VALUE_VERSION:
        raise RecordFormatError(f"unsupported group value version {version}")
    protocol_type = reader.string()
    generation = reader.i32()
    protocol, leader = reader.nullable_string(), reader.nullable_string()
    state_timestamp_ms = reader.i64() if version >= 2 else -1
    count = reader.i32()
    members = tuple(_decode_member(reader, version) for _ in range(max(count, 0)))
    reader.end()
    return GroupMetadataRecord(
        protocol_type, generation, protocol, leader, state_timestamp_ms, members
    )


def _decode_member(reader: _Reader, version: int) -> MemberRecord:
    member_id = reader.string()
    group_instance_id = reader.nullable_string() if version >= 3 else None
    client_id, client_host = reader.string(), reader.string()
    rebalance_timeout_ms = reader.i32() if version >= 1 else -1
    session_timeout_ms = reader.i32()
    if rebalance_timeout_ms < 0:
        rebalance_timeout_ms = session_timeout_ms  # v0: Kafka used the session timeout for both
    return MemberRecord(
        member_id,
        group_instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        session_timeout_ms,
        reader.bytes_(),
        reader.bytes_(),
    )
