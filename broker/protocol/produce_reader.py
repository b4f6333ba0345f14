"""A hand reader for ProduceRequest v3-v8, the hottest request (and one of the simplest).

kio copies each partition's records out of the frame into a new `bytes`, and the log then
needs a mutable copy to stamp offsets and leader epochs: two copies of every produced byte.
This reader returns the records as memoryviews into the (bytearray) frame instead, so the
log stamps and writes the received bytes themselves. Its output is kio's own dataclasses.
"""

from __future__ import annotations

import datetime as dt
import importlib
from functools import cache, partial
from types import ModuleType
from typing import Any, cast

from kio.schema.types import TopicName, TransactionalId
from kio.static.primitive import i16, i32, i32Timedelta

from broker.protocol.cursor import Cursor

FIRST_VERSION, LAST_VERSION = 3, 8  # the same layout throughout; v9 is flexible


@cache
def _schema(version: int) -> ModuleType:
    return importlib.import_module(f"kio.schema.produce.v{version}.request")


def read_produce_request(frame: bytes | bytearray, offset: int, version: int) -> Any:
    """kio's ProduceRequest of `version`, with records as memoryviews into `frame`."""
    schema = _schema(version)
    cursor = Cursor(frame, offset)
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
