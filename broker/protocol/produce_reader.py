"""A hand reader for ProduceRequest v3-v8, the hottest request (and one of the simplest).

kio copies each partition's records out of the frame into a new `bytes`, and the log then
needs a mutable copy to stamp offsets and leader epochs: two copies of every produced byte.
This reader returns the records as memoryviews into the (bytearray) frame instead, so the
log stamps and writes the received bytes themselves. Its output is kio's own dataclasses.
"""

from __future__ import annotations

import datetime as dt
import importlib
import struct
from functools import cache, partial
from types import ModuleType
from typing import Any, cast

from kio.schema.types import TopicName, TransactionalId
from kio.static.primitive import i16, i32, i32Timedelta

from broker.protocol.errors import MalformedRequest

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
FIRST_VERSION, LAST_VERSION = 3, 8  # the same layout throughout; v9 is flexible


class _Cursor:
    def __init__(self, frame: bytes | bytearray, offset: int) -> None:
        self.view = memoryview(frame)
        self.offset = offset

    def _advance(self, size: int) -> int:
        start = self.offset
        if size < 0 or start + size > len(self.view):
            raise MalformedRequest("ProduceRequest runs past the end of the frame")
        self.offset += size
        return start

    def int16(self) -> int:
        return int(_I16.unpack_from(self.view, self._advance(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack_from(self.view, self._advance(4))[0])

    def string(self, *, nullable: bool = False) -> str | None:
        size = self.int16()
        if size == -1 and nullable:
            return None
        start = self._advance(size)
        try:
            return bytes(self.view[start : start + size]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRequest(f"ProduceRequest string is not UTF-8: {exc}") from exc

    def records(self) -> memoryview | None:
        size = self.int32()
        if size == -1:
            return None
        start = self._advance(size)
        return self.view[start : start + size]

    def count(self) -> int:
        count = self.int32()
        if count < 0 or count > len(self.view):  # each element takes at least a byte
            raise MalformedRequest(f"ProduceRequest array of {count} elements")
        return count


@cache
def _schema(version: int) -> ModuleType:
    return importlib.import_module(f"kio.schema.produce.v{version}.request")


def read_produce_request(frame: bytes | bytearray, offset: int, version: int) -> Any:
    """kio's ProduceRequest of `version`, with records as memoryviews into `frame`."""
    schema = _schema(version)
    cursor = _Cursor(frame, offset)
    transactional_id = cursor.string(nullable=True)
    acks = cursor.int16()
    timeout = dt.timedelta(milliseconds=cursor.int32())
    topics = []
    for _ in range(cursor.count()):
        name = cast(str, cursor.string())
        partitions = tuple(
            schema.PartitionProduceData(index=i32(cursor.int32()), records=cursor.records())
            for _ in range(cursor.count())
        )
        topics.append(schema.TopicProduceData(name=TopicName(name), partition_data=partitions))
    return schema.ProduceRequest(
        transactional_id=None if transactional_id is None else TransactionalId(transactional_id),
        acks=i16(acks),
        timeout=cast(i32Timedelta, timeout),
        topic_data=tuple(topics),
    )


PRODUCE_READERS = {
    (0, version): partial(read_produce_request, version=version)
    for version in range(FIRST_VERSION, LAST_VERSION + 1)
}
