"""MirrorMaker 2's internal record formats, byte-compatible with Kafka's ``connect/mirror``.

MM2 writes these with Kafka's protocol ``Struct`` encoding (big-endian; STRING = int16
length + UTF-8), so tools that read MM2's topics can read ours and vice versa:

- offset syncs (``mm2-offset-syncs.<alias>.internal``): no version header;
- checkpoints (``<source>.checkpoints.internal``) and heartbeats (``heartbeats``): the
  value starts with an int16 version, and only version 0 exists.

`SourceEnd` is ours, in the same encoding: the last observed end offset of a source
partition (``regionlink-source-ends.<source>.internal``), which a forced failover needs.

Values are range-checked at construction, so ``encode`` cannot fail on a valid object.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

__all__ = ["Checkpoint", "Heartbeat", "MalformedRecord", "OffsetSync", "SourceEnd"]

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_TWO_INT64 = struct.Struct(">qq")
_VERSION_0 = _INT16.pack(0)

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_STRING_MAX_BYTES = (1 << 15) - 1  # the int16 length prefix


class MalformedRecord(ValueError):
    """Bytes that are not a valid MM2 record of the expected type."""


def _check_int(record: str, name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{record}: {name}={value} outside [{low}, {high}]")


def _check_string(record: str, name: str, value: str) -> None:
    size_bytes = len(value.encode("utf-8"))
    if size_bytes > _STRING_MAX_BYTES:
        raise ValueError(f"{record}: {name} is {size_bytes} UTF-8 bytes, max {_STRING_MAX_BYTES}")


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return _INT16.pack(len(data)) + data


class _Reader:
    """Cursor over one key or value; every failure names the record part and the reason."""

    def __init__(self, data: bytes, part: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._part = part

    def _fail(self, why: str) -> MalformedRecord:
        return MalformedRecord(f"{self._part}: {why}")

    def _take(self, size: int, field: str) -> memoryview:
        end = self._pos + size
        if end > len(self._data):
            have = len(self._data) - self._pos
            raise self._fail(f"truncated at {field} (need {size} bytes, have {have})")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def _unpack(self, fmt: struct.Struct, field: str) -> tuple[int, ...]:
        return fmt.unpack(self._take(fmt.size, field))

    def int16(self, field: str) -> int:
        return self._unpack(_INT16, field)[0]

    def int32(self, field: str) -> int:
        return self._unpack(_INT32, field)[0]

    def int64(self, field: str) -> int:
        return self._unpack(_INT64, field)[0]

    def string(self, field: str) -> str:
        size = self.int16(field)
        if size < 0:
            raise self._fail(f"{field} has negative length {size}")
        raw = self._take(size, field)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(f"{field} is not valid UTF-8 ({exc.reason})") from None

    def version0(self) -> None:
        version = self.int16("version")
        if version != 0:
            raise self._fail(f"unknown version {version} (only 0 exists)")

    def finish(self) -> None:
        extra = len(self._data) - self._pos
        if extra:
            raise self._fail(f"{extra} trailing bytes")


@dataclass(frozen=True, slots=True)
class OffsetSync:
    """``upstream_offset`` in ``topic``/``partition`` was written at ``downstream_offset``."""

    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int

    def __post_init__(self) -> None:
        _check_string("offset sync", "topic", self.topic)
        _check_int("offset sync", "partition", self.partition, _INT32_MIN, _INT32_MAX)
        for name in ("upstream_offset", "downstream_offset"):
            _check_int("offset sync", name, getattr(self, name), _INT64_MIN, _INT64_MAX)

    def encode(self) -> tuple[bytes, bytes]:
        key = _string(self.topic) + _INT32.pack(self.partition)
        return key, _TWO_INT64.pack(self.upstream_offset, self.downstream_offset)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Self:
        k = _Reader(key, "offset sync key")
        topic, partition = k.string("topic"), k.int32("partition")
        k.finish()
        v = _Reader(value, "offset sync value")
        upstream, downstream = v.int64("upstreamOffset"), v.int64("offset")
        v.finish()
        return cls(topic, partition, upstream, downstream)


@dataclass(frozen=True, slots=True)
class SourceEnd:
    """The source's ``topic``/``partition`` ended at ``end_offset`` when observed."""

    topic: str
    partition: int
    end_offset: int
    observed_ms: int

    def __post_init__(self) -> None:
        _check_string("source end", "topic", self.topic)
        _check_int("source end", "partition", self.partition, _INT32_MIN, _INT32_MAX)
        for name in ("end_offset", "observed_ms"):
            _check_int("source end", name, getattr(self, name), _INT64_MIN, _INT64_MAX)

    def encode(self) -> tuple[bytes, bytes]:
        key = _string(self.topic) + _INT32.pack(self.partition)
        return key, _VERSION_0 + _TWO_INT64.pack(self.end_offset, self.observed_ms)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Self:
        k = _Reader(key, "source end key")
        topic, partition = k.string("topic"), k.int32("partition")
        k.finish()
        v = _Reader(value, "source end value")
        v.version0()
        end_offset, observed_ms = v.int64("endOffset"), v.int64("observedMs")
        v.finish()
        return cls(topic, partition, end_offset, observed_ms)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Group ``group`` committed ``upstream_offset`` upstream; resume at ``downstream_offset``."""

    group: str
    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int
    metadata: str = ""

    def __post_init__(self) -> None:
        for name in ("group", "topic", "metadata"):
            _check_string("checkpoint", name, getattr(self, name))
        _check_int("checkpoint", "partition", self.partition, _INT32_MIN, _INT32_MAX)
        for name in ("upstream_offset", "downstream_offset"):
            _check_int("checkpoint", name, getattr(self, name), _INT64_MIN, _INT64_MAX)

    def encode(self) -> tuple[bytes, bytes]:
        key = _string(self.group) + _string(self.topic) + _INT32.pack(self.partition)
        offsets = _TWO_INT64.pack(self.upstream_offset, self.downstream_offset)
        return key, _VERSION_0 + offsets + _string(self.metadata)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Self:
        k = _Reader(key, "checkpoint key")
        group, topic, partition = k.string("group"), k.string("topic"), k.int32("partition")
        k.finish()
        v = _Reader(value, "checkpoint value")
        v.version0()
        upstream, downstream = v.int64("upstreamOffset"), v.int64("offset")
        metadata = v.string("metadata")
        v.finish()
        return cls(group, topic, partition, upstream, downstream, metadata)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The mirror from ``source_alias`` to ``target_alias`` was alive at ``timestamp_ms``."""

    source_alias: str
    target_alias: str
    timestamp_ms: int

    def __post_init__(self) -> None:
        _check_string("heartbeat", "source_alias", self.source_alias)
        _check_string("heartbeat", "target_alias", self.target_alias)
        _check_int("heartbeat", "timestamp_ms", self.timestamp_ms, _INT64_MIN, _INT64_MAX)

    def encode(self) -> tuple[bytes, bytes]:
        key = _string(self.source_alias) + _string(self.target_alias)
        return key, _VERSION_0 + _INT64.pack(self.timestamp_ms)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Self:
        k = _Reader(key, "heartbeat key")
        source, target = k.string("sourceClusterAlias"), k.string("targetClusterAlias")
        k.finish()
        v = _Reader(value, "heartbeat value")
        v.version0()
        timestamp_ms = v.int64("timestamp")
        v.finish()
        return cls(source, target, timestamp_ms)
