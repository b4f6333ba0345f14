"""Finding the sampled trace contexts records carry, in plain and compressed batches."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from broker import messaging_spans, telemetry
from broker.messaging_spans import batch_span, context_ids, remote_contexts, sampled_contexts
from broker.protocol.records import LZ4, NewRecord, build_batch


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


@NEEDS_NATIVE_SEARCH
@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES | st.binary(max_size=80), max_size=12).map(b"".join))
def test_the_c_search_finds_what_the_regular_expression_finds(data: bytes) -> None:
    expected = messaging_spans._regex_sampled_headers(data)
    assert messaging_spans._sampled_headers(data) == expected
    assert messaging_spans._sampled_headers(memoryview(bytearray(data))[0:]) == expected


@NEEDS_NATIVE_SEARCH
def test_the_c_search_on_real_batches_and_wrong_arguments() -> None:
    headers: list[bytes | None] = [_traceparent(i % 3 == 0)[1] for i in range(30)]
    batch = _batch(headers)
    assert messaging_spans._sampled_headers(batch) == messaging_spans._regex_sampled_headers(batch)
    assert len(messaging_spans._sampled_headers(batch)) == 10
    with pytest.raises(TypeError):
        messaging_spans._sampled_headers("a str is no buffer")  # type: ignore[arg-type]
