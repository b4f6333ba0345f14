"""LinkAppend and LinkTruncate: regionlink's own requests from a link to a mirror topic's region.

Not Kafka APIs, so kio has no schema for them: they are read and written here by hand, in
Kafka's primitive types (big-endian; STRING = int16 length + UTF-8; BYTES = int32 length;
arrays = int32 count), version 0, non-flexible (request header v1, response header v0). They
are never advertised in ApiVersions; a link knows its peer is a regionlink region.

  LinkAppend (10001) request:  source_region STRING, topology_epoch INT32, timeout_ms INT32,
      topics [name STRING, partitions [index INT32, expected_next_offset INT64, records BYTES]]
  LinkAppend v1 adds, after each partition's records, trace_contexts NULLABLE_BYTES: the
      sampled W3C trace contexts the sender found in those records, 24 bytes each (trace id
      16, span id 8, big-endian), so the target links its span to them without searching the
      records again (broker/messaging_spans.py); null: the sender did not look. A link sends
      v1 only when it carries contexts (its tracing is on), v0 otherwise.
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
LINK_APPEND_TRACED_VERSION = 1  # LinkAppend with the records' sampled trace contexts
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_CONTEXT = struct.Struct(">QQQ")  # trace id (high, low 64 bits), span id

TraceContexts = tuple[tuple[int, int], ...]  # (trace id, span id), each sampled

Records = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class LinkAppendPartition:
    index: int
    expected_next_offset: int
    records: Records | None
    trace_contexts: TraceContexts | None = None  # v1; None: the sender did not look


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


def _trace_contexts(cursor: Cursor) -> TraceContexts | None:
    raw = cursor.records()
    if raw is None:
        return None
    if len(raw) % _CONTEXT.size:
        raise MalformedRequest(f"trace contexts of {len(raw)} bytes, not 24 each")
    return tuple((high << 64 | low, span) for high, low, span in _CONTEXT.iter_unpack(raw))


def _read_link_append(frame: bytes | bytearray, offset: int, traced: bool) -> LinkAppendRequest:
    cursor = Cursor(frame, offset)
    source_region, epoch, timeout_ms = _string(cursor), cursor.int32(), cursor.int32()
    topics = []
    for _ in range(cursor.count()):
        name = _string(cursor)
        partitions = tuple(
            LinkAppendPartition(
                cursor.int32(),
                cursor.int64(),
                cursor.records(),
                _trace_contexts(cursor) if traced else None,
            )
            for _ in range(cursor.count())
        )
        topics.append(LinkAppendTopic(name, partitions))
    _done(cursor, "LinkAppend request")
    return LinkAppendRequest(source_region, epoch, timeout_ms, tuple(topics))


def read_link_append_request(frame: bytes | bytearray, offset: int) -> LinkAppendRequest:
    return _read_link_append(frame, offset, traced=False)


def read_traced_link_append_request(frame: bytes | bytearray, offset: int) -> LinkAppendRequest:
    """LinkAppend v1: each partition also carries its records' sampled trace contexts."""
    return _read_link_append(frame, offset, traced=True)


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


def link_append_version(body: LinkAppendRequest) -> int:
    """The version `body` is written in: v1 when any partition carries trace contexts."""
    traced = any(p.trace_contexts is not None for t in body.topics for p in t.partitions)
    return LINK_APPEND_TRACED_VERSION if traced else LINK_VERSION


def _write_trace_contexts(out: Writable, contexts: TraceContexts | None) -> None:
    if contexts is None:
        out.write(_I32.pack(-1))
        return
    pack, mask = _CONTEXT.pack, (1 << 64) - 1
    out.write(_I32.pack(len(contexts) * _CONTEXT.size))
    out.write(b"".join(pack(trace >> 64, trace & mask, span) for trace, span in contexts))


def write_link_append_request(out: Writable, body: LinkAppendRequest) -> None:
    """In the version `link_append_version(body)` says, which the request header must name."""
    traced = link_append_version(body) == LINK_APPEND_TRACED_VERSION
    _write_string(out, body.source_region)
    out.write(_I32.pack(body.topology_epoch) + _I32.pack(body.timeout_ms))
    out.write(_I32.pack(len(body.topics)))
    for topic in body.topics:
        _write_string(out, topic.name)
        out.write(_I32.pack(len(topic.partitions)))
        for partition in topic.partitions:
            out.write(_I32.pack(partition.index) + _I64.pack(partition.expected_next_offset))
            _write_records(out, partition.records)
            if traced:
                _write_trace_contexts(out, partition.trace_contexts)


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
    (ApiKey.LINK_APPEND, LINK_APPEND_TRACED_VERSION): read_traced_link_append_request,
    (ApiKey.LINK_TRUNCATE, LINK_VERSION): read_link_truncate_request,
}
LINK_RESPONSE_READERS: dict[tuple[int, int], Callable[[bytes | bytearray, int], Any]] = {
    (ApiKey.LINK_APPEND, LINK_VERSION): read_link_response,
    (ApiKey.LINK_APPEND, LINK_APPEND_TRACED_VERSION): read_link_response,
    (ApiKey.LINK_TRUNCATE, LINK_VERSION): read_link_response,
}
LINK_WRITERS: dict[type, Callable[[Any, Any], None]] = {
    LinkAppendRequest: write_link_append_request,
    LinkTruncateRequest: write_link_truncate_request,
    LinkResponse: write_link_response,
}
