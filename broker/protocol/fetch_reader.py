"""FetchResponse v4-v11 read by hand, so each partition's record batches stay a view into
the received frame: kio's reader copies them into new bytes, a megabyte per follower fetch.

The layout is apache/kafka's FetchResponse.json for the non-flexible versions our client
asks for (CLIENT_MIN_VERSION 4 up to the served maximum, 11): last_stable_offset and
aborted_transactions since v4, log_start_offset since v5, the top-level error_code and
session_id since v7, preferred_read_replica since v11.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from broker.protocol.cursor import Cursor
from broker.protocol.versions import ApiKey

FIRST_VERSION, LAST_VERSION = 4, 11


@dataclass(frozen=True, slots=True)
class AbortedTransaction:
    producer_id: int
    first_offset: int


@dataclass(frozen=True, slots=True)
class PartitionData:
    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted_transactions: tuple[AbortedTransaction, ...] | None
    preferred_read_replica: int
    records: memoryview | None  # a view into the response frame


@dataclass(frozen=True, slots=True)
class FetchableTopicResponse:
    topic: str
    partitions: tuple[PartitionData, ...]


@dataclass(frozen=True, slots=True)
class FetchResponse:
    throttle_time_ms: int
    error_code: int
    session_id: int
    responses: tuple[FetchableTopicResponse, ...]


def read_fetch_response(frame: bytes | bytearray, offset: int, version: int) -> FetchResponse:
    """The response body that starts at `offset` (after the correlation id)."""
    assert FIRST_VERSION <= version <= LAST_VERSION, version
    cursor = Cursor(frame, offset)
    throttle_time_ms = cursor.int32()
    error_code, session_id = (cursor.int16(), cursor.int32()) if version >= 7 else (0, 0)
    topics = tuple(
        FetchableTopicResponse(
            str(cursor.string()),
            tuple(_read_partition(cursor, version) for _ in range(cursor.count())),
        )
        for _ in range(cursor.count())
    )
    return FetchResponse(throttle_time_ms, error_code, session_id, topics)


def _read_at_version(version: int, frame: bytes | bytearray, offset: int) -> FetchResponse:
    return read_fetch_response(frame, offset, version)


def _read_partition(cursor: Cursor, version: int) -> PartitionData:
    index, error_code = cursor.int32(), cursor.int16()
    high_watermark, last_stable_offset = cursor.int64(), cursor.int64()
    log_start_offset = cursor.int64() if version >= 5 else -1
    count = cursor.int32()
    aborted = (
        None
        if count < 0
        else tuple(AbortedTransaction(cursor.int64(), cursor.int64()) for _ in range(count))
    )
    preferred_read_replica = cursor.int32() if version >= 11 else -1
    return PartitionData(
        index,
        error_code,
        high_watermark,
        last_stable_offset,
        log_start_offset,
        aborted,
        preferred_read_replica,
        cursor.records(),
    )


FETCH_RESPONSE_READERS: dict[tuple[int, int], Callable[[bytes | bytearray, int], Any]] = {
    (ApiKey.FETCH, version): partial(_read_at_version, version)
    for version in range(FIRST_VERSION, LAST_VERSION + 1)
}
