"""FetchResponse written by hand (broker/protocol/fetch_writer.py) against kio's writer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.handlers.fetch import kio_response
from broker.protocol.codec import LARGE_WRITE_BYTES, decode_response, encode_response_frame
from broker.protocol.fetch_writer import (
    FIRST_VERSION,
    LAST_VERSION,
    PartitionRead,
    fetch_response_frame,
)
from broker.protocol.messages import response_builder
from broker.protocol.versions import ApiKey

INT64 = st.integers(-(2**63), 2**63 - 1)
READS = st.builds(
    PartitionRead,
    index=st.integers(0, 2**31 - 1),
    error=st.integers(0, 120),
    high_watermark=INT64,
    last_stable_offset=INT64,
    log_start_offset=INT64,
    records=st.one_of(st.binary(max_size=300), st.binary(max_size=40).map(memoryview)),
)
TOPICS = st.lists(
    st.tuples(st.text(min_size=1, max_size=20), st.lists(READS, max_size=4)), max_size=3
)


def kio_frame(version: int, correlation_id: int, topics: list[tuple[str, list[Any]]]) -> bytes:
    body = kio_response(response_builder(ApiKey.FETCH, version), topics)
    return b"".join(encode_response_frame(ApiKey.FETCH, version, correlation_id, body))


@settings(max_examples=60, deadline=None)
@given(
    version=st.integers(FIRST_VERSION, LAST_VERSION),
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    topics=TOPICS,
)
def test_every_version_writes_what_kio_writes(
    version: int, correlation_id: int, topics: list[tuple[str, list[PartitionRead]]]
) -> None:
    assert b"".join(fetch_response_frame(version, correlation_id, topics)) == kio_frame(
        version, correlation_id, topics
    )


def test_large_record_batches_are_sent_by_reference_and_read_back() -> None:
    big = memoryview(bytearray(b"b" * LARGE_WRITE_BYTES))
    small = b"s" * 100
    reads = [PartitionRead(0, 0, 10, 10, 0, big), PartitionRead(1, 0, 5, 5, 0, small)]
    frame = fetch_response_frame(11, 7, [("orders", reads)])
    assert any(segment is big for segment in frame)  # not copied into the frame
    assert len(frame) == 3  # fields, the big batches, the fields after them
    whole = b"".join(frame)
    assert int.from_bytes(whole[:4], "big") == len(whole) - 4
    correlation_id, body = decode_response(ApiKey.FETCH, 11, whole[4:])
    assert correlation_id == 7
    partitions = body.responses[0].partitions
    assert [bytes(p.records) for p in partitions] == [bytes(big), small]
    assert [p.high_watermark for p in partitions] == [10, 5]
