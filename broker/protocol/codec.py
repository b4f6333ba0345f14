"""Request decoding and response encoding over kio's generated message classes.

regionlink's own link requests (protocol/link.py) have no kio schema: they are read and
written by hand through the tables below, before any kio lookup.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.index import load_payload_module
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

from broker.protocol.cursor import Cursor
from broker.protocol.errors import MalformedRequest, UnsupportedVersion
from broker.protocol.fetch_reader import FETCH_RESPONSE_READERS
from broker.protocol.lenient import LENIENT_READERS
from broker.protocol.link import LINK_REQUEST_READERS, LINK_RESPONSE_READERS, LINK_WRITERS
from broker.protocol.produce_reader import PRODUCE_READERS
from broker.protocol.versions import ApiKey, serves

_HEADER_FIXED = struct.Struct(">hhih")
_CORRELATION = struct.Struct(">i")
_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Request:
    header: RequestHeader
    body: Any  # a kio request dataclass for (api_key, api_version)


@cache
def message_class(api_key: int, version: int, kind: EntityType) -> Any:
    module = load_payload_module(api_key, version, kind)  # type: ignore[arg-type]
    suffix = "Request" if kind == EntityType.request else "Response"
    names = [n for n in vars(module) if n.endswith(suffix) and not n.startswith("_")]
    top = [n for n in names if getattr(module, n).__type__ == kind]
    assert len(top) == 1, (api_key, version, top)
    return getattr(module, top[0])


def request_class(api_key: int, version: int) -> Any:
    return message_class(api_key, version, EntityType.request)


def response_class(api_key: int, version: int) -> Any:
    return message_class(api_key, version, EntityType.response)


_READERS: dict[type, Any] = {}
_HAND_READERS: dict[tuple[int, int], Callable[[bytes | bytearray, int], Any]] = {
    **LENIENT_READERS,
    **PRODUCE_READERS,
}
_WRITERS: dict[type, Any] = {}


def _reader(cls: type) -> Any:
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = entity_reader(cls)
    return reader


def _read_only(frame: bytes | bytearray) -> bytes | memoryview:
    """kio's native readers take read-only buffers only; a view of the frame, not a copy."""
    return memoryview(frame).toreadonly() if isinstance(frame, bytearray) else frame


def _writer(cls: type) -> Any:
    writer = _WRITERS.get(cls)
    if writer is None:
        writer = _WRITERS[cls] = LINK_WRITERS.get(cls) or entity_writer(cls)
    return writer


def _flexible(cls: type) -> bool:
    """Whether a message has tagged fields in its header (the link messages never do)."""
    return cls not in LINK_WRITERS and bool(cls.__flexible__)  # type: ignore[attr-defined]


def _skip_tagged_fields(frame: bytes | bytearray, offset: int) -> int:
    cursor = Cursor(frame, offset)
    cursor.skip_tagged_fields()
    return cursor.offset


def request_api_key(frame: bytes | bytearray) -> int | None:
    """The api key a request frame starts with, without decoding it; None if too short."""
    return _API_KEY.unpack_from(frame)[0] if len(frame) >= _API_KEY.size else None


def decode_header(frame: bytes | bytearray) -> tuple[RequestHeader, int]:
    """Parse the fixed part of any request header (v1 layout); return it and the offset after."""
    if len(frame) < _HEADER_FIXED.size:
        raise MalformedRequest(f"request of {len(frame)} bytes is shorter than a header")
    api_key, api_version, correlation_id, client_len = _HEADER_FIXED.unpack_from(frame, 0)
    offset = _HEADER_FIXED.size
    client_id = None
    if client_len >= 0:
        if offset + client_len > len(frame):
            raise MalformedRequest("client_id runs past the end of the frame")
        client_id = frame[offset : offset + client_len].decode("utf-8", "replace")
        offset += client_len
    return RequestHeader(api_key, api_version, correlation_id, client_id), offset


def decode_request(frame: bytes | bytearray) -> Request:
    """Decode a whole request frame (without its size prefix).

    Raises UnsupportedVersion for pairs we do not serve (the header is still
    readable from the exception's context via `decode_header`) and
    MalformedRequest for bytes that do not parse.
    """
    header, offset = decode_header(frame)
    link_reader = LINK_REQUEST_READERS.get((header.api_key, header.api_version))
    if link_reader is not None:
        return Request(header, link_reader(frame, offset))
    if not serves(header.api_key, header.api_version):
        raise UnsupportedVersion(header.api_key, header.api_version)
    cls = request_class(header.api_key, header.api_version)
    if cls.__flexible__:
        offset = _skip_tagged_fields(frame, offset)
    hand_reader = _HAND_READERS.get((header.api_key, header.api_version))
    if hand_reader is not None:
        try:
            return Request(header, hand_reader(frame, offset))
        except (struct.error, ValueError) as exc:  # counts and sizes the frame cannot hold
            raise MalformedRequest(f"cannot decode {cls.__name__}: {exc}") from exc
    try:
        body, _size = _reader(cls)(_read_only(frame), offset)
    except Exception as exc:  # kio raises assorted errors on truncated or garbage input
        raise MalformedRequest(f"cannot decode {cls.__name__}: {exc}") from exc
    return Request(header, body)


def response_header_bytes(api_key: int, version: int, correlation_id: int) -> bytes:
    """Response header v0, or v1 (with empty tagged fields) for flexible responses.

    ApiVersions always answers with header v0 (KIP-511).
    """
    if (api_key, version) in LINK_RESPONSE_READERS:
        return _CORRELATION.pack(correlation_id)
    flexible = response_class(api_key, version).__flexible__
    if flexible and api_key != ApiKey.API_VERSIONS:
        return _CORRELATION.pack(correlation_id) + b"\x00"
    return _CORRELATION.pack(correlation_id)


def encode_response(api_key: int, version: int, correlation_id: int, body: Any) -> bytes:
    """Encode header + body, without the frame size prefix."""
    buffer = io.BytesIO()
    buffer.write(response_header_bytes(api_key, version, correlation_id))
    _writer(type(body))(buffer, body)
    return buffer.getvalue()


Frame = list[bytes | bytearray | memoryview]  # a framed message as segments, in order


@dataclass(frozen=True, slots=True)
class HandWritten:
    """A response a handler encodes itself (Fetch, broker/protocol/fetch_writer.py): the
    dispatcher hands it the correlation id and sends the frame it returns as is."""

    frame: Callable[[int], Frame]


LARGE_WRITE_BYTES = 64 * 1024  # a write this large stays its own segment, by reference
# Responses read by hand: regionlink's link API, and Fetch (record batches as views).
_HAND_RESPONSE_READERS = {**LINK_RESPONSE_READERS, **FETCH_RESPONSE_READERS}


class _FrameWriter:
    """A kio Writable that keeps large writes (record batches) by reference and copies only
    the small fields around them: the frame goes to the socket as these segments, so a
    fetch response's megabytes are never copied into one buffer first."""

    def __init__(self) -> None:
        self._small = bytearray(b"\0\0\0\0")  # the size prefix, patched by `frame`
        self._parts: Frame = [self._small]
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        if size >= LARGE_WRITE_BYTES:
            self._small = bytearray()
            self._parts += [data, self._small]
        else:
            self._small += data
        self._size += size
        return size

    def frame(self) -> Frame:
        first = self._parts[0]
        assert isinstance(first, bytearray)
        _SIZE.pack_into(first, 0, self._size)
        return [part for part in self._parts if len(part)]


def encode_response_frame(api_key: int, version: int, correlation_id: int, body: Any) -> Frame:
    """Size prefix + header + body, as segments (fetch responses carry megabytes)."""
    writer = _FrameWriter()
    writer.write(response_header_bytes(api_key, version, correlation_id))
    _writer(type(body))(writer, body)
    return writer.frame()


def encode_request_frame(header: RequestHeader, body: Any) -> Frame:
    """Size prefix + request, as segments (produce requests carry megabytes)."""
    writer = _FrameWriter()
    _write_request(writer, header, body)
    return writer.frame()


def encode_request(header: RequestHeader, body: Any) -> bytes:
    """Encode a request (used by tests), without the frame size prefix."""
    buffer = io.BytesIO()
    _write_request(buffer, header, body)
    return buffer.getvalue()


def _write_request(buffer: io.BytesIO | _FrameWriter, header: RequestHeader, body: Any) -> None:
    cls = type(body)
    client = (header.client_id or "").encode()
    buffer.write(
        _HEADER_FIXED.pack(header.api_key, header.api_version, header.correlation_id, len(client))
    )
    buffer.write(client)
    if _flexible(cls):
        buffer.write(b"\x00")
    _writer(cls)(buffer, body)


def decode_response(api_key: int, version: int, payload: bytes | bytearray) -> tuple[int, Any]:
    """Decode a response frame into (correlation_id, body) — for our client and tests."""
    (correlation_id,) = _CORRELATION.unpack_from(payload, 0)
    offset = 4
    link_reader = _HAND_RESPONSE_READERS.get((api_key, version))
    if link_reader is not None:
        return correlation_id, link_reader(payload, offset)
    cls = response_class(api_key, version)
    if cls.__flexible__ and api_key != ApiKey.API_VERSIONS:
        offset = _skip_tagged_fields(payload, offset)
    body, _size = _reader(cls)(_read_only(payload), offset)
    return correlation_id, body
