"""LinkAppend and LinkTruncate: regionlink's own requests from a link to a mirror topic's region.

Not Kafka APIs, so kio has no schema for them: they are read and written here by hand, in
Kafka's primitive types (big-endian; STRING = int16 length + UTF-8; BYTES = int32 length;
arrays = int32 count), version 0, non-flexible (request header v1, response header v0). They
are never advertised in ApiVersions; a link knows its peer is a regionlink region.

  LinkAppend (10001) request:  source_region STRING, topology_epoch INT32, timeout_ms INT32,
      topics [name STRING, partitions [index INT32, expected_next_offset INT64, records BYTES]]
  LinkTruncate (10002) request: source_region STRING, topology_epoch INT32,
      topics [name STRING, partitions [index INT32, offset INT64]]
  Both responses: throttle_time_ms INT32, topics [name STRING, partitions [index INT32,
      error_code INT16, log_end_offset INT64, error_message NULLABLE_STRING]]

Records are handed over as views into the received frame (as the Produce reader does), so the
broker stamps and writes the bytes where they arrived. Pure code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from broker.protocol.cursor import Cursor
from broker.protocol.errors import MalformedRequest
from broker.protocol.versions import ApiKey

LINK_VERSION = 0
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

Records = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class LinkAppendPartition:
    index: int
    expected_next_offset: int
    records: Records | None


@dataclass(frozen=True, slots=True)
class LinkAppendTopic:
    name: str
    partitions: tuple[LinkAppendPartition, ...]


@dataclass(frozen=True, slots=True)
class LinkAppendRequest:
    source_region: str
    topology_epoch: int
    timeout_ms: int
    topics: tuple[LinkAppendTopic, ...]


@dataclass(frozen=True, slots=True)
class LinkTruncatePartition:
    index: int
    offset: int


@dataclass(frozen=True, slots=True)
class LinkTruncateTopic:
    name: str
    partitions: tuple[LinkTruncatePartition, ...]


@dataclass(frozen=True, slots=True)
class LinkTruncateRequest:
    source_region: str
    topology_epoch: int
    topics: tuple[LinkTruncateTopic, ...]


@dataclass(frozen=True, slots=True)
class LinkPartitionResult:
    index: int
    error_code: int
    log_end_offset: int
    error_message: str | None


@dataclass(frozen=True, slots=True)
class LinkTopicResult:
    name: str
    partitions: tuple[LinkPartitionResult, ...]


@dataclass(frozen=True, slots=True)
class LinkResponse:
    """The answer to both requests: per partition, an error and the log end offset."""

    throttle_time_ms: int
    topics: tuple[LinkTopicResult, ...]


# --------------------------------------------------------------------------- reading


def _string(cursor: Cursor) -> str:
    value = cursor.string()
    assert value is not None  # a non-nullable string is never None
    return value


def _done(cursor: Cursor, what: str) -> None:
    if cursor.offset != len(cursor.view):
        raise MalformedRequest(f"{len(cursor.view) - cursor.offset} bytes after the {what}")


def read_link_append_request(frame: bytes | bytearray, offset: int) -> LinkAppendRequest:
    cursor = Cursor(frame, offset)
    source_region, epoch, timeout_ms = _string(cursor), cursor.int32(), cursor.int32()
    topics = []
    for _ in range(cursor.count()):
        name = _string(cursor)
        partitions = tuple(
            LinkAppendPartition(cursor.int32(), cursor.int64(), cursor.records())
            for _ in range(cursor.count())
        )
        topics.append(LinkAppendTopic(name, partitions))
    _done(cursor, "LinkAppend request")
    return LinkAppendRequest(source_region, epoch, timeout_ms, tuple(topics))


def read_link_truncate_request(frame: bytes | bytearray, offset: int) -> LinkTruncateRequest:
    cursor = Cursor(frame, offset)
    source_region, epoch = _string(cursor), cursor.int32()
    topics = []
    for _ in range(cursor.count()):
        name = _string(cursor)
        partitions = tuple(
            LinkTruncatePartition(cursor.int32(), cursor.int64()) for _ in range(cursor.count())
        )
        topics.append(LinkTruncateTopic(name, partitions))
    _done(cursor, "LinkTruncate request")
    return LinkTruncateRequest(source_region, epoch, tuple(topics))


def read_link_response(payload: bytes | bytearray, offset: int) -> LinkResponse:
    cursor = Cursor(payload, offset)
    throttle_time_ms = cursor.int32()
    topics = []
    for _ in range(cursor.count()):
        name = _string(cursor)
        partitions = tuple(
            LinkPartitionResult(
                cursor.int32(), cursor.int16(), cursor.int64(), cursor.string(nullable=True)
            )
            for _ in range(cursor.count())
        )
        topics.append(LinkTopicResult(name, partitions))
    _done(cursor, "link response")
    return LinkResponse(throttle_time_ms, tuple(topics))


# --------------------------------------------------------------------------- writing


class Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


def _write_string(out: Writable, value: str | None) -> None:
    if value is None:
        out.write(_I16.pack(-1))
        return
    encoded = value.encode()
    out.write(_I16.pack(len(encoded)) + encoded)


def _write_records(out: Writable, records: Records | None) -> None:
    if records is None:
        out.write(_I32.pack(-1))
        return
    out.write(_I32.pack(len(records)))
    out.write(records)  # by reference: a frame writer keeps megabytes as their own segment


def write_link_append_request(out: Writable, body: LinkAppendRequest) -> None:
    _write_string(out, body.source_region)
    out.write(_I32.pack(body.topology_epoch) + _I32.pack(body.timeout_ms))
    out.write(_I32.pack(len(body.topics)))
    for topic in body.topics:
        _write_string(out, topic.name)
        out.write(_I32.pack(len(topic.partitions)))
        for partition in topic.partitions:
            out.write(_I32.pack(partition.index) + _I64.pack(partition.expected_next_offset))
            _write_records(out, partition.records)


def write_link_truncate_request(out: Writable, body: LinkTruncateRequest) -> None:
    _write_string(out, body.source_region)
    out.write(_I32.pack(body.topology_epoch))
    out.write(_I32.pack(len(body.topics)))
    for topic in body.topics:
        _write_string(out, topic.name)
        out.write(_I32.pack(len(topic.partitions)))
        for partition in topic.partitions:
            out.write(_I32.pack(partition.index) + _I64.pack(partition.offset))


def write_link_response(out: Writable, body: LinkResponse) -> None:
    out.write(_I32.pack(body.throttle_time_ms))
    out.write(_I32.pack(len(body.topics)))
    for topic in body.topics:
        _write_string(out, topic.name)
        out.write(_I32.pack(len(topic.partitions)))
        for p in topic.partitions:
            out.write(_I32.pack(p.index) + _I16.pack(p.error_code) + _I64.pack(p.log_end_offset))
            _write_string(out, p.error_message)


# --------------------------------------------------------------------------- the codec's tables

LINK_REQUEST_READERS: dict[tuple[int, int], Callable[[bytes | bytearray, int], Any]] = {
    (ApiKey.LINK_APPEND, LINK_VERSION): read_link_append_request,
    (ApiKey.LINK_TRUNCATE, LINK_VERSION): read_link_truncate_request,
}
LINK_RESPONSE_READERS: dict[tuple[int, int], Callable[[bytes | bytearray, int], Any]] = {
    (ApiKey.LINK_APPEND, LINK_VERSION): read_link_response,
    (ApiKey.LINK_TRUNCATE, LINK_VERSION): read_link_response,
}
LINK_WRITERS: dict[type, Callable[[Any, Any], None]] = {
    LinkAppendRequest: write_link_append_request,
    LinkTruncateRequest: write_link_truncate_request,
    LinkResponse: write_link_response,
}
