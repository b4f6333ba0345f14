"""Finding the sampled trace contexts records carry, in plain and compressed batches."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from broker import messaging_spans, telemetry
from broker.messaging_spans import batch_span, context_ids, remote_contexts, sampled_contexts
from broker.protocol.records import LZ4, NewRecord, build_batch
from broker.recorded_span import RecordedSpan


def _traceparent(sampled: bool) -> tuple[str, bytes]:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}".encode()


def _batch(headers: list[bytes | None], compression: int = 0) -> bytes:
    records = [
        NewRecord(b"k", b"v" * 100, (("traceparent", h),) if h is not None else ()) for h in headers
    ]
    return build_batch(records, compression=compression)


def test_sampled_contexts_of_every_batch_once_each_unsampled_ones_left_out() -> None:
    sampled = [_traceparent(True) for _ in range(3)]
    unsampled = [_traceparent(False) for _ in range(2)]
    first = _batch([sampled[0][1], unsampled[0][1], None, sampled[1][1], sampled[0][1]])
    second = _batch([unsampled[1][1], sampled[2][1]], compression=LZ4)
    contexts = sampled_contexts([first, second])
    assert [format_trace_id(c.trace_id) for c in contexts] == [t for t, _ in sampled]
    assert all(c.trace_flags.sampled and c.is_remote for c in contexts)
    header = sampled[1][1].decode()
    assert format_span_id(contexts[1].span_id) == header.split("-")[2]
    assert len(sampled_contexts([first, second], limit=2)) == 2


def test_a_malformed_batch_ends_the_search_without_an_error() -> None:
    good = _batch([_traceparent(True)[1]])
    assert len(sampled_contexts([good + b"\x00" * 30, good])) == 1
    assert sampled_contexts([b"not a batch at all, but long enough to look at" * 2]) == []


def test_with_tracing_off_a_batch_span_is_nothing() -> None:
    batch = _batch([_traceparent(True)[1]])
    with batch_span("send orders", SpanKind.SERVER, {}, [batch]) as span:
        assert span is None


def _recording_tracer(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_provider", provider)
    monkeypatch.setattr(telemetry, "_tracer", provider.get_tracer("test"))
    return exporter


def test_a_span_given_the_contexts_links_them_without_searching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = _recording_tracer(monkeypatch)
    found = sampled_contexts([_batch([_traceparent(True)[1], _traceparent(True)[1]])])
    ids = context_ids(found)  # what a mirror's LinkAppend v1 carries to the target
    assert remote_contexts((*ids, (0, 5))) == found  # invalid ids left out
    assert len(remote_contexts(ids, limit=1)) == 1

    def no_search(*_: object) -> None:
        raise AssertionError("searched the records although the contexts were given")

    monkeypatch.setattr(messaging_spans, "sampled_contexts", no_search)
    batch = _batch([_traceparent(True)[1]])  # other contexts: the given ones are linked
    with batch_span("send orders", SpanKind.SERVER, {}, [batch], remote_contexts(ids)):
        pass
    (span,) = exporter.get_finished_spans()
    assert [link.context for link in span.links] == found


def _link_sampling_provider(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """What `regionlink up` gives a process: parent-based sampling that follows links (here
    at ratio 0, so only a link can sample a span)."""
    exporter = InMemorySpanExporter()
    provider = telemetry.Provider(
        resource=Resource.create({"service.name": "regionlink-broker"}),
        sampler=telemetry.FollowLinks(sampling.ParentBased(sampling.ALWAYS_OFF)),
        span_limits=SpanLimits(),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_provider", provider)
    monkeypatch.setattr(telemetry, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(telemetry, "_sink", telemetry.sink_for(provider))
    return exporter


def test_a_span_linked_to_sampled_records_is_recorded_whole_without_the_sdk_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = _link_sampling_provider(monkeypatch)
    batch = _batch([_traceparent(True)[1], _traceparent(False)[1], _traceparent(True)[1]])
    attributes = messaging_spans.messaging_attributes("send", "orders", 3)
    with batch_span("send orders", SpanKind.SERVER, attributes, [batch]) as span:
        assert isinstance(span, RecordedSpan)
        span.set_attribute(messaging_spans.OFFSET, 42)
    with batch_span("send orders", SpanKind.SERVER, {}, [_batch([None])]) as unlinked:
        assert unlinked is not None and not isinstance(unlinked, RecordedSpan)  # the SDK's
    (recorded,) = exporter.get_finished_spans()  # the unlinked one was not sampled
    assert recorded.name == "send orders" and recorded.kind == SpanKind.SERVER
    assert recorded.parent is None and recorded.context.trace_flags.sampled
    assert recorded.attributes == {**attributes, messaging_spans.OFFSET: 42}
    assert [link.context for link in recorded.links] == sampled_contexts([batch])
    assert recorded.resource.attributes["service.name"] == "regionlink-broker"
    assert recorded.status.status_code == StatusCode.UNSET
    assert recorded.start_time is not None and recorded.end_time is not None
    assert 0 <= recorded.end_time - recorded.start_time < 10**9


def test_a_recorded_span_left_by_an_exception_says_so_and_lets_it_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = _link_sampling_provider(monkeypatch)
    with (
        pytest.raises(ValueError, match="disk full"),
        batch_span("send orders", SpanKind.SERVER, {}, [_batch([_traceparent(True)[1]])]),
    ):
        raise ValueError("disk full")
    (recorded,) = exporter.get_finished_spans()
    assert recorded.status.status_code == StatusCode.ERROR
    assert recorded.status.description == "ValueError: disk full"
    (event,) = recorded.events
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"


_HEADER = b"\x16traceparent\x6e00-"
_PIECES = st.sampled_from(
    [
        _HEADER,
        _HEADER + b"0" * 32 + b"-" + b"1" * 16 + b"-01",
        _HEADER + b"a" * 32 + b"-" + b"b" * 16 + b"-0",
        b"f",
        b"1",
        b"-",
        b"\x16",
        b"\x16traceparent",
    ]
)


# The C search is an optional extension: an install without a C compiler skips building it
# and runs the regular expression instead, which the tests above cover. `make setup` builds it.
NEEDS_NATIVE_SEARCH = pytest.mark.skipif(
    not messaging_spans.NATIVE_SEARCH,
    reason="the optional C search (broker/_tracescan.c) was not built, as when no C compiler "
    "was found at install; the regular-expression search that runs instead is tested",
)


def _records_section(batch: bytes) -> bytes | bytearray | memoryview:
    (section,) = messaging_spans._batch_records(batch)
    return section


def _plain(max_size: int) -> st.SearchStrategy[bytes]:
    """Keys and values that hold no header's bytes (the search must not tell them apart)."""
    return st.binary(max_size=max_size).filter(lambda data: b"traceparent" not in data)


@NEEDS_NATIVE_SEARCH
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            _plain(20),
            _plain(300),
            st.lists(st.sampled_from(["sampled", "unsampled", "other"]), max_size=3),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_c_walk_finds_the_headers_the_regular_expression_finds(
    records: list[tuple[bytes, bytes, list[str]]],
) -> None:
    def header(kind: str) -> tuple[str, bytes]:
        if kind == "other":
            return ("tracestate", b"vendor=1")
        return ("traceparent", _traceparent(kind == "sampled")[1])

    batch = build_batch(
        [NewRecord(key, value, tuple(header(k) for k in kinds)) for key, value, kinds in records]
    )
    section = _records_section(batch)
    found = messaging_spans._sampled_headers(section)
    assert found == messaging_spans._regex_sampled_headers(section)
    assert len(found) == sum(kinds.count("sampled") for _, _, kinds in records)


@NEEDS_NATIVE_SEARCH
def test_the_c_walk_reads_headers_not_values_and_refuses_wrong_arguments() -> None:
    _, in_header = _traceparent(True)
    _, in_value = _traceparent(True)
    lookalike = b"\x16traceparent\x6e" + in_value  # a header's bytes, inside a value
    batch = build_batch([NewRecord(b"k", lookalike, (("traceparent", in_header),))])
    section = _records_section(batch)
    assert len(messaging_spans._regex_sampled_headers(section)) == 2
    (start,) = messaging_spans._sampled_headers(section)
    assert bytes(section[start + 16 : start + 68]) == in_header[3:]
    with pytest.raises(TypeError):
        messaging_spans._sampled_headers("a str is no buffer")  # type: ignore[arg-type]


@NEEDS_NATIVE_SEARCH
@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES | st.binary(max_size=80), max_size=12).map(b"".join))
def test_the_c_walk_on_any_bytes_stops_cleanly_at_what_is_no_record(data: bytes) -> None:
    for start in messaging_spans._sampled_headers(data):  # each hit is a header's exact bytes
        assert messaging_spans._SAMPLED_HEADER.match(data, start)
    assert messaging_spans._sampled_headers(memoryview(bytearray(data))[1:]) is not None
