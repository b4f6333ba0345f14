"""A bounds-checked reader over a frame, for the few fields and messages read by hand.

kio reads every message we receive, except where it cannot do what Kafka does (skip tagged
fields it does not know; hand over record bytes without copying them): there the codec and
its hand readers use this cursor, as do the readers of regionlink's own link requests and
responses (protocol/link.py), which kio has no schema for. Reading past the end raises
MalformedRequest.
"""

from __future__ import annotations

import struct

from broker.protocol.errors import MalformedRequest

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class Cursor:
    def __init__(self, frame: bytes | bytearray, offset: int) -> None:
        self.view = memoryview(frame)
        self.offset = offset

    def _advance(self, size: int) -> int:
        """The current offset, then move `size` bytes on (within the frame)."""
        start = self.offset
        if size < 0 or start + size > len(self.view):
            raise MalformedRequest("request runs past the end of the frame")
        self.offset += size
        return start

    def byte(self) -> int:
        return self.view[self._advance(1)]

    def int16(self) -> int:
        return int(_I16.unpack_from(self.view, self._advance(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack_from(self.view, self._advance(4))[0])

    def int64(self) -> int:
        return int(_I64.unpack_from(self.view, self._advance(8))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise MalformedRequest("bad unsigned varint")

    def string(self, *, nullable: bool = False) -> str | None:
        """A string with an int16 length (-1 is null where `nullable`)."""
        size = self.int16()
        if size == -1 and nullable:
            return None
        return self._utf8(size)

    def compact_string(self) -> str:
        """A string with an unsigned varint length + 1 (flexible versions)."""
        return self._utf8(self.uvarint() - 1)

    def _utf8(self, size: int) -> str:
        start = self._advance(size)
        try:
            return bytes(self.view[start : start + size]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRequest(f"string is not UTF-8: {exc}") from exc

    def records(self) -> memoryview | None:
        """Record batches with an int32 length, as a view into the frame (no copy)."""
        size = self.int32()
        if size == -1:
            return None
        start = self._advance(size)
        return self.view[start : start + size]

    def count(self) -> int:
        """An int32 array length, no more than the frame could hold."""
        count = self.int32()
        if count < 0 or count > len(self.view):  # each element takes at least a byte
            raise MalformedRequest(f"array of {count} elements")
        return count

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._advance(self.uvarint())
