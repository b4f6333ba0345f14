"""What finding the sampled `traceparent` headers in a batch costs, per way of searching.

Every batch the us broker takes (Produce) and every chunk the worker copies is searched for
sampled trace contexts while tracing is on (broker/messaging_spans.py). This times each way on
the same buffers: 1 MB record batches as the tracing bench's producer writes them (random
values, a `traceparent` header on every record, 1 in 100 sampled), searched as a view into a
received frame:

- c: broker/_tracescan.c (each record walked by its lengths: its first bytes and headers
  read, its value skipped), what `sampled_contexts` uses when the install built it;
- regex: the regular expression it falls back to;
- bytes.count: the header's bytes counted with no Python per record, the floor of any search
  written with bytes methods (it finds the headers, not which are sampled);
- sampled_contexts: the whole lookup, batch headers read and span contexts made included.

Each is timed on one batch searched again and again (in cache: "hot"), and on a different
batch each time, round 128 of them (128 MB, more than this machine's caches: "cold"), as a
batch fresh from the socket is. A scan reads every byte, the walk two cache lines per record.

    python -m bench.trace_search_bench [--value-bytes 128 1024 4096] [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from functools import partial

from bench.machine import machine_info, machine_summary
from broker import messaging_spans
from broker.protocol.records import NewRecord, build_batch

BATCH_BYTES = 1 << 20
SAMPLED_EVERY = 100
_HEADER = b"\x16traceparent\x6e00-"


def make_batch(value_bytes: int) -> tuple[int, memoryview]:
    """About a megabyte of records, and the batch as a view into a frame."""
    count = BATCH_BYTES // (value_bytes + 100)
    values = [os.urandom(value_bytes) for _ in range(16)]
    base = int.from_bytes(os.urandom(12), "big") << 32
    records = [
        NewRecord(
            None,
            values[i % 16],
            (
                (
                    "traceparent",
                    b"00-%032x-%016x-%s"
                    % (base + i, i + 1, b"01" if i % SAMPLED_EVERY == 0 else b"00"),
                ),
            ),
        )
        for i in range(count)
    ]
    return count, memoryview(bytearray(build_batch(records)))


def seconds(call: Callable[[], object], repeat: int) -> float:
    """The median over `repeat` of the best of 3 timings of 20 calls, per call."""
    runs = [min(timeit.repeat(call, number=20, repeat=3)) / 20 for _ in range(repeat)]
    return statistics.median(runs)


def round_robin(
    way: Callable[[memoryview], object], batches: list[memoryview]
) -> Callable[[], object]:
    """`way` on the next of `batches` at each call."""
    turn = itertools.cycle(batches)
    return lambda: way(next(turn))


def records_of(batch: memoryview) -> memoryview:
    (section,) = messaging_spans._batch_records(batch)
    return memoryview(section)


WAYS: list[tuple[str, Callable[[memoryview], object]]] = [
    ("c", lambda batch: messaging_spans._sampled_headers(records_of(batch))),
    ("regex", messaging_spans._regex_sampled_headers),
    ("bytes.count", lambda batch: bytearray.count(batch.obj, _HEADER)),  # type: ignore[arg-type]
    ("sampled_contexts", lambda batch: messaging_spans.sampled_contexts([batch])),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_search_bench", description=__doc__)
    parser.add_argument("--value-bytes", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold-batches", type=int, default=128)
    args = parser.parse_args(argv)
    print(machine_summary(machine_info()))
    if not messaging_spans.NATIVE_SEARCH:
        print("broker/_tracescan is not built: `c` and `sampled_contexts` use the regex")
    print(
        "| value | records per batch | way | µs per 1 MB batch, hot / cold | µs per record, cold |"
    )
    print("|---|---|---|---|---|")
    for value_bytes in args.value_bytes:
        count, batch = make_batch(value_bytes)
        walked = messaging_spans._sampled_headers(records_of(batch))
        expected = messaging_spans._regex_sampled_headers(records_of(batch))
        assert walked == expected and len(walked) == -(-count // SAMPLED_EVERY), "searches differ"
        cold = [memoryview(bytearray(batch)) for _ in range(args.cold_batches)]
        for name, way in WAYS:
            hot_s = seconds(partial(way, batch), args.repeat)
            cold_s = seconds(round_robin(way, cold), args.repeat)
            print(
                f"| {value_bytes} B | {count} | {name} | {hot_s * 1e6:,.0f} / {cold_s * 1e6:,.0f} "
                f"| {cold_s * 1e6 / count:.3f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
