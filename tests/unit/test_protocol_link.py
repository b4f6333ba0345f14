"""LinkAppend / LinkTruncate: hand-written reader and writer round-trip through the codec, are
never advertised, and cut or padded frames are protocol errors, not crashes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.codec import (
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    encode_response_frame,
)
from broker.protocol.errors import MalformedRequest, UnsupportedVersion
from broker.protocol.link import (
    LINK_APPEND_TRACED_VERSION,
    LINK_VERSION,
    LinkAppendPartition,
    LinkAppendRequest,
    LinkAppendTopic,
    LinkPartitionResult,
    LinkResponse,
    LinkTopicResult,
    LinkTruncatePartition,
    LinkTruncateRequest,
    LinkTruncateTopic,
    link_append_version,
)
from broker.protocol.versions import SERVED, ApiKey

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
int16 = st.integers(-(2**15), 2**15 - 1)
text = st.text(max_size=20)
records = st.none() | st.binary(max_size=300)

append_requests = st.builds(
    LinkAppendRequest,
    text,
    int32,
    int32,
    st.lists(
        st.builds(
            LinkAppendTopic,
            text,
            st.lists(st.builds(LinkAppendPartition, int32, int64, records), max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
trace_contexts = st.none() | st.lists(
    st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 2**64 - 1)), max_size=4
).map(tuple)
traced_append_requests = st.builds(
    LinkAppendRequest,
    text,
    int32,
    int32,
    st.lists(
        st.builds(
            LinkAppendTopic,
            text,
            st.lists(
                st.builds(LinkAppendPartition, int32, int64, records, trace_contexts), max_size=3
            ).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
truncate_requests = st.builds(
    LinkTruncateRequest,
    text,
    int32,
    st.lists(
        st.builds(
            LinkTruncateTopic,
            text,
            st.lists(st.builds(LinkTruncatePartition, int32, int64), max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
responses = st.builds(
    LinkResponse,
    int32,
    st.lists(
        st.builds(
            LinkTopicResult,
            text,
            st.lists(
                st.builds(LinkPartitionResult, int32, int16, int64, st.none() | text), max_size=3
            ).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)


def _header(api_key: ApiKey) -> RequestHeader:
    return RequestHeader(api_key, LINK_VERSION, 41, "link")


@settings(max_examples=200, deadline=None)
@given(append_requests)
def test_link_append_request_round_trips(body: LinkAppendRequest) -> None:
    decoded = decode_request(encode_request(_header(ApiKey.LINK_APPEND), body))
    assert decoded.header == _header(ApiKey.LINK_APPEND)
    assert decoded.body == body


@settings(max_examples=200, deadline=None)
@given(traced_append_requests)
def test_link_append_v1_carries_each_partitions_trace_contexts(body: LinkAppendRequest) -> None:
    version = link_append_version(body)
    traced = any(p.trace_contexts is not None for t in body.topics for p in t.partitions)
    assert version == (LINK_APPEND_TRACED_VERSION if traced else LINK_VERSION)
    header = RequestHeader(ApiKey.LINK_APPEND, version, 41, "link")
    decoded = decode_request(encode_request(header, body))
    assert decoded.header == header
    assert decoded.body == body


def test_trace_contexts_of_a_wrong_length_are_malformed() -> None:
    part = LinkAppendPartition(0, 5, b"abc", ((1, 2),))
    body = LinkAppendRequest("us-east", 3, 1000, (LinkAppendTopic("t", (part,)),))
    header = RequestHeader(ApiKey.LINK_APPEND, LINK_APPEND_TRACED_VERSION, 41, "link")
    frame = bytearray(encode_request(header, body))
    struct.pack_into(">i", frame, len(frame) - 28, 23)  # 24 bytes of contexts, said to be 23
    with pytest.raises(MalformedRequest):
        decode_request(bytes(frame[:-1]))


@settings(max_examples=200, deadline=None)
@given(truncate_requests)
def test_link_truncate_request_round_trips(body: LinkTruncateRequest) -> None:
    decoded = decode_request(encode_request(_header(ApiKey.LINK_TRUNCATE), body))
    assert decoded.body == body


@settings(max_examples=200, deadline=None)
@given(responses, st.sampled_from([ApiKey.LINK_APPEND, ApiKey.LINK_TRUNCATE]))
def test_link_response_round_trips_with_header_v0(body: LinkResponse, api_key: ApiKey) -> None:
    payload = encode_response(api_key, LINK_VERSION, 99, body)
    assert payload[:4] == struct.pack(">i", 99)  # no tagged-field byte after the correlation id
    assert decode_response(api_key, LINK_VERSION, payload) == (99, body)
    framed = b"".join(encode_response_frame(api_key, LINK_VERSION, 99, body))
    assert framed == struct.pack(">i", len(payload)) + payload


def test_records_are_writable_views_into_the_frame() -> None:
    body = LinkAppendRequest(
        "us-east", 3, 1000, (LinkAppendTopic("t", (LinkAppendPartition(0, 5, b"abc"),)),)
    )
    frame = bytearray(encode_request(_header(ApiKey.LINK_APPEND), body))
    got = decode_request(frame).body.topics[0].partitions[0].records
    assert isinstance(got, memoryview) and not got.readonly
    got[0:1] = b"X"
    assert b"Xbc" in frame  # the broker stamps leader epochs where the bytes arrived


@given(append_requests, st.data())
def test_cut_frames_are_malformed(body: LinkAppendRequest, data: st.DataObject) -> None:
    frame = encode_request(_header(ApiKey.LINK_APPEND), body)
    header_bytes = 2 + 2 + 4 + 2 + len("link")
    cut = data.draw(st.integers(header_bytes, len(frame) - 1))
    with pytest.raises(MalformedRequest):
        decode_request(frame[:cut])


def test_trailing_bytes_are_malformed() -> None:
    body = LinkTruncateRequest("us-east", 1, ())
    with pytest.raises(MalformedRequest):
        decode_request(encode_request(_header(ApiKey.LINK_TRUNCATE), body) + b"\0")


def test_not_advertised_and_other_versions_unsupported() -> None:
    assert ApiKey.LINK_APPEND not in SERVED and ApiKey.LINK_TRUNCATE not in SERVED
    frame = encode_request(_header(ApiKey.LINK_TRUNCATE), LinkTruncateRequest("us-east", 1, ()))
    next_version = bytearray(frame)
    struct.pack_into(">h", next_version, 2, LINK_VERSION + 1)
    with pytest.raises(UnsupportedVersion):
        decode_request(bytes(next_version))
