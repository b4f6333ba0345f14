"""Records of the `__consumer_offsets` topic, in Kafka's own layouts.

Kafka tools can read what we write: OffsetCommitKey v1 / OffsetCommitValue v3,
GroupMetadataKey v2 / GroupMetadataValue v3 (big-endian, STRING = int16 length + UTF-8).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_H = struct.Struct(">h")
_I = struct.Struct(">i")
_Q = struct.Struct(">q")
OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """What survives a restart of a group: members must rejoin, offsets stay."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp_ms: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, fmt: struct.Struct) -> int:
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return int(value)

    def i16(self) -> int:
        return self._take(_H)

    def i32(self) -> int:
        return self._take(_I)

    def i64(self) -> int:
        return self._take(_Q)

    def string(self) -> str | None:
        length = self.i16()
        if length < 0:
            return None
        value = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return value


def _string(value: str | None) -> bytes:
    if value is None:
        return _H.pack(-1)
    encoded = value.encode()
    return _H.pack(len(encoded)) + encoded


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return _H.pack(OFFSET_KEY_VERSION) + _string(group) + _string(topic) + _I.pack(partition)


def offset_value(value: OffsetAndMetadata) -> bytes:
    return (
        _H.pack(OFFSET_VALUE_VERSION)
        + _Q.pack(value.offset)
        + _I.pack(value.leader_epoch)
        + _string(value.metadata)
        + _Q.pack(value.commit_timestamp_ms)
    )


def group_key(group: str) -> bytes:
    return _H.pack(GROUP_KEY_VERSION) + _string(group)


def group_value(snapshot: GroupSnapshot) -> bytes:
    """GroupMetadataValue v3 with an empty member list (members rejoin after a restart)."""
    return (
        _H.pack(GROUP_VALUE_VERSION)
        + _string(snapshot.protocol_type)
        + _I.pack(snapshot.generation)
        + _string(snapshot.protocol)
        + _string(snapshot.leader)
        + _Q.pack(snapshot.state_timestamp_ms)
        + _I.pack(0)
    )


def decode_key(key: bytes) -> tuple[str, str, int] | str:
    """(group, topic, partition) for an offset key, or the group id for a group key."""
    reader = _Reader(key)
    version = reader.i16()
    if version in (0, 1):
        group, topic = reader.string() or "", reader.string() or ""
        return group, topic, reader.i32()
    if version == GROUP_KEY_VERSION:
        return reader.string() or ""
    raise ValueError(f"unknown __consumer_offsets key version {version}")


def decode_offset_value(value: bytes) -> OffsetAndMetadata:
    reader = _Reader(value)
    version = reader.i16()
    if version != OFFSET_VALUE_VERSION:
        raise ValueError(f"unsupported offset value version {version}")
    offset, epoch = reader.i64(), reader.i32()
    metadata = reader.string() or ""
    return OffsetAndMetadata(offset, epoch, metadata, reader.i64())


def decode_group_value(value: bytes) -> GroupSnapshot:
    reader = _Reader(value)
    version = reader.i16()
    if version != GROUP_VALUE_VERSION:
        raise ValueError(f"unsupported group value version {version}")
    protocol_type = reader.string() or ""
    generation = reader.i32()
    protocol, leader = reader.string(), reader.string()
    return GroupSnapshot(protocol_type, generation, protocol, leader, reader.i64())
