"""Every (api_key, version) we serve round-trips through kio; bad bytes give protocol errors."""

from __future__ import annotations

import contextlib
import io
import itertools
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader, entity_writer

from broker.protocol.codec import (
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_class,
    response_class,
)
from broker.protocol.errors import MalformedRequest, ProtocolError, UnsupportedVersion
from broker.protocol.fetch_reader import FETCH_RESPONSE_READERS
from broker.protocol.framing import FrameReader, FrameTooLarge, frame
from broker.protocol.messages import response_builder
from broker.protocol.versions import SERVED, ApiKey
from tests.unit.kio_strategies import entity_strategy

SERVED_PAIRS = [
    (key, version)
    for key, served in sorted(SERVED.items())
    for version in range(served.served_min, served.served_max + 1)
]


def _round_trip(cls: type, value: object) -> object:
    buffer = io.BytesIO()
    entity_writer(cls)(buffer, value)
    decoded, size = entity_reader(cls)(buffer.getvalue(), 0)
    assert size == len(buffer.getvalue())
    return decoded


@pytest.mark.parametrize(("api_key", "version"), SERVED_PAIRS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_request_round_trips_through_our_framing(
    api_key: int, version: int, data: st.DataObject
) -> None:
    body = data.draw(entity_strategy(request_class(api_key, version)))
    header = RequestHeader(api_key, version, 7, "tester")
    decoded = decode_request(encode_request(header, body))
    assert decoded.header == header
    assert decoded.body == body


@pytest.mark.parametrize(("api_key", "version"), SERVED_PAIRS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_response_round_trips(api_key: int, version: int, data: st.DataObject) -> None:
    body = data.draw(entity_strategy(response_class(api_key, version)))
    correlation_id, decoded = decode_response(
        api_key, version, encode_response(api_key, version, 42, body)
    )
    assert correlation_id == 42
    if (api_key, version) in FETCH_RESPONSE_READERS:  # read by hand, records as views
        assert _fetch_fields(decoded) == _fetch_fields(body)
    else:
        assert decoded == body


def _fetch_fields(response: Any) -> tuple[Any, ...]:
    """A FetchResponse as plain values, whether kio's or protocol/fetch_reader.py's."""
    throttle = response.throttle_time_ms if hasattr(response, "throttle_time_ms") else None
    if throttle is None:
        throttle = round(response.throttle_time.total_seconds() * 1000)
    return (
        int(throttle),
        int(getattr(response, "error_code", 0)),
        int(getattr(response, "session_id", 0)),
        tuple(
            (
                topic.topic,
                tuple(
                    (
                        int(p.partition_index),
                        int(p.error_code),
                        int(p.high_watermark),
                        int(p.last_stable_offset),
                        int(getattr(p, "log_start_offset", -1)),
                        None
                        if p.aborted_transactions is None
                        else tuple(
                            (int(a.producer_id), int(a.first_offset))
                            for a in p.aborted_transactions
                        ),
                        int(getattr(p, "preferred_read_replica", -1)),
                        None if p.records is None else bytes(p.records),
                    )
                    for p in topic.partitions
                ),
            )
            for topic in response.responses
        ),
    )


def test_api_versions_response_uses_header_v0_even_when_flexible() -> None:
    assert response_class(ApiKey.API_VERSIONS, 3).__flexible__
    body = response_builder(ApiKey.API_VERSIONS, 3).make(
        "ApiVersionsResponse", error_code=0, api_keys=(), throttle_time=0
    )
    payload = encode_response(ApiKey.API_VERSIONS, 3, 9, body)
    assert payload[:4] == struct.pack(">i", 9)
    assert payload[4:6] == b"\x00\x00"  # error code straight after the correlation id


def test_unserved_version_is_refused() -> None:
    header = struct.pack(">hhih", ApiKey.PRODUCE, 2, 1, 0)
    with pytest.raises(UnsupportedVersion):
        decode_request(header)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_protocol_errors(payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_request(payload)


@pytest.mark.parametrize(("api_key", "version"), [(0, 8), (1, 11), (3, 8), (11, 5), (18, 3)])
@given(cut=st.integers(0, 400), data=st.data())
@settings(max_examples=30, deadline=None)
def test_truncated_requests_are_malformed(
    api_key: int, version: int, cut: int, data: st.DataObject
) -> None:
    body = data.draw(entity_strategy(request_class(api_key, version)))
    encoded = encode_request(RequestHeader(api_key, version, 1, "c"), body)
    if cut >= len(encoded):
        return
    with pytest.raises(MalformedRequest):
        decode_request(encoded[:cut])


def test_librdkafka_metadata_v9_with_a_trailing_tagged_field_is_read() -> None:
    """The bytes librdkafka 2.16 sends for list_topics(): kio alone refuses them."""
    captured = bytes.fromhex("0003000900000003000772646b61666b61000000000001000000")
    request = decode_request(captured)
    assert (request.header.api_key, request.header.api_version) == (3, 9)
    assert request.header.client_id == "rdkafka"
    assert request.body.topics is None and request.body.allow_auto_topic_creation is False


@pytest.mark.parametrize("prefix", ["03", "02ff", "0380"])
def test_lenient_metadata_reader_refuses_garbage(prefix: str) -> None:
    header = "0003000900000003000772646b61666b6100"
    with pytest.raises(MalformedRequest):
        decode_request(bytes.fromhex(header + prefix))


def test_frame_reader_reassembles_split_frames() -> None:
    reader = FrameReader()
    stream = frame(b"hello") + frame(b"") + frame(b"world!")
    frames = []
    for i in range(len(stream)):
        frames += reader.feed(stream[i : i + 1])
    assert frames == [b"hello", b"", b"world!"]
    assert reader.buffered_bytes == 0


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
)
def test_frame_reader_reassembles_frames_cut_anywhere(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(p) for p in payloads)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    reader = FrameReader()
    frames = []
    for start, end in itertools.pairwise(bounds):
        frames += reader.feed(stream[start:end])
    assert frames == payloads
    assert reader.buffered_bytes == 0


@pytest.mark.parametrize("size", [-1, 1025])
def test_frame_reader_rejects_oversize_and_negative_sizes(size: int) -> None:
    with pytest.raises(FrameTooLarge):
        FrameReader(max_frame_bytes=1024).feed(struct.pack(">i", size))
