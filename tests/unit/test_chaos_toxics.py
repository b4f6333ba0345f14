"""The fault proxy's pure parts: toxic specs, what each toxic does to a chunk, the chain."""

from __future__ import annotations

import itertools
import random

import pytest

from chaos.proxy.chain import Chain
from chaos.proxy.errors import ApiError
from chaos.proxy.spec import ToxicSpec, parse_toxic, update_toxic
from chaos.proxy.stages import (
    Bandwidth,
    Close,
    End,
    Event,
    Latency,
    LimitData,
    Reset,
    ResetPeer,
    Send,
    Slicer,
    SlowClose,
    Timeout,
)

RNG = random.Random(7)


def sends(events: list[Event]) -> list[tuple[float, bytes]]:
    return [(round(e.at_s, 6), e.data) for e in events if isinstance(e, Send)]


def ends(events: list[Event]) -> list[float]:
    return [round(e.at_s, 6) for e in events if isinstance(e, End)]


# Specs ---------------------------------------------------------------------------------


def test_toxic_defaults_are_toxiproxys() -> None:
    toxic = parse_toxic({"type": "latency", "attributes": {"latency": 50}})
    assert toxic.to_json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 50, "jitter": 0},
    }
    upstream = parse_toxic({"type": "limit_data", "stream": "upstream", "toxicity": 0.5})
    assert (upstream.name, upstream.attributes, upstream.toxicity) == (
        "limit_data_upstream",
        {"bytes": 0},
        0.5,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "latency", "stream": "sideways"}, "stream was invalid"),
        ({"type": "packet_loss"}, "invalid toxic type"),
        ({"stream": "sideways", "type": "nope"}, "stream was invalid"),  # stream checked first
        ({"type": "latency", "attributes": {"latency": "5"}}, "must be an integer"),
        ({"type": "latency", "attributes": {"latency": 1.5}}, "must be an integer"),
        ({"type": "latency", "attributes": {"latency": -1}}, "must not be negative"),
        ({"type": "latency", "toxicity": 2}, "between 0 and 1"),
        ({"type": "latency", "name": 3}, "name must be a string"),
        ({"type": "slicer", "attributes": {}}, "average_size must be at least 1"),
        ({"type": "slicer", "attributes": {"average_size": 5, "size_variation": 5}}, "less than"),
        ([], "expected a JSON object"),
    ],
)
def test_bad_toxics_are_400(body: object, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_toxic(body)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_update_changes_only_given_attributes_and_toxicity() -> None:
    toxic = parse_toxic({"type": "latency", "name": "lag", "attributes": {"latency": 50}})
    updated = update_toxic(
        toxic, {"name": "other", "type": "bandwidth", "attributes": {"jitter": 5}}
    )
    assert updated == ToxicSpec("lag", "latency", "downstream", 1.0, {"latency": 50, "jitter": 5})
    assert update_toxic(updated, {"toxicity": 0.25}).toxicity == 0.25


# Stages --------------------------------------------------------------------------------


def test_latency_delays_each_chunk_from_its_arrival() -> None:
    stage = Latency({"latency": 100, "jitter": 0}, 0.0, RNG)
    assert sends(stage.data(b"a", 1.0)) == [(1.1, b"a")]
    assert sends(stage.data(b"b", 1.05)) == [(1.15, b"b")]  # a delay line, not a queue
    assert ends(stage.end(1.06)) == [1.15]  # the end never overtakes data


def test_latency_jitter_stays_in_range_keeps_order_and_replays_with_a_seed() -> None:
    def run(seed: int) -> list[float]:
        stage = Latency({"latency": 100, "jitter": 30}, 0.0, random.Random(seed))
        return [stage.data(b"x", i * 0.001)[0].at_s for i in range(500)]

    times = run(1)
    assert times == sorted(times)
    assert all(
        0.070 <= t - i * 0.001 < 0.130 + 1e-9 or t == times[i - 1] for i, t in enumerate(times)
    )
    assert run(1) == times and run(2) != times


def test_bandwidth_paces_in_100_ms_pieces_and_queues_behind_earlier_chunks() -> None:
    stage = Bandwidth({"rate": 1000}, 0.0, RNG)  # 1 MB/s: 100 000 bytes per 100 ms
    first = stage.data(bytes(250_000), 0.0)
    assert [(t, len(d)) for t, d in sends(first)] == [
        (0.1, 100_000),
        (0.2, 100_000),
        (0.25, 50_000),
    ]
    assert [(t, len(d)) for t, d in sends(stage.data(bytes(10_000), 0.1))] == [(0.26, 10_000)]
    assert sends(stage.data(b"late", 5.0)) == [(5.000004, b"late")]  # an idle wire is free
    assert stage.end(5.0) == [End(5.000004)]


def test_bandwidth_of_zero_is_unlimited() -> None:
    stage = Bandwidth({"rate": 0}, 0.0, RNG)
    assert sends(stage.data(bytes(10**6), 2.0)) == [(2.0, bytes(10**6))]


def test_slow_close_passes_data_and_holds_the_end() -> None:
    stage = SlowClose({"delay": 300}, 0.0, RNG)
    assert sends(stage.data(b"abc", 1.0)) == [(1.0, b"abc")]
    assert stage.end(2.0) == [End(2.3)]


def test_timeout_swallows_then_closes_after_its_timeout() -> None:
    stage = Timeout({"timeout": 500}, 10.0, RNG)
    assert stage.data(b"lost", 10.1) == []
    assert stage.deadline_s() == 10.5
    assert stage.tick(10.5) == [Close(10.5)]
    assert stage.deadline_s() is None


def test_timeout_zero_never_closes_but_deleting_it_does() -> None:
    stage = Timeout({"timeout": 0}, 0.0, RNG)
    assert stage.data(b"lost", 1.0) == [] and stage.deadline_s() is None
    assert stage.removed(60.0) == [Close(60.0)]


def test_reset_peer_resets_after_the_first_chunk_plus_timeout() -> None:
    stage = ResetPeer({"timeout": 200}, 0.0, RNG)
    assert stage.deadline_s() is None  # idle connections are left alone
    assert stage.data(b"dropped", 3.0) == []
    assert stage.data(b"dropped too", 3.1) == []
    assert stage.deadline_s() == pytest.approx(3.2)
    assert stage.tick(3.2) == [Reset(3.2)]


def test_reset_peer_is_started_by_the_end_of_input_and_fires_even_if_deleted() -> None:
    stage = ResetPeer({"timeout": 100}, 0.0, RNG)
    assert stage.end(1.0) == []
    assert stage.removed(1.05) == [Reset(1.1)]
    assert ResetPeer({"timeout": 100}, 0.0, RNG).removed(1.0) == []


def test_slicer_cuts_whole_chunks_into_bounded_slices_spaced_by_its_delay() -> None:
    stage = Slicer({"average_size": 100, "size_variation": 20, "delay": 1000}, 0.0, RNG)
    chunk = bytes(range(256)) * 40
    events = stage.data(chunk, 1.0)
    slices = [e.data for e in events if isinstance(e, Send)]
    assert b"".join(slices) == chunk
    assert all(0 < len(s) <= 120 for s in slices)
    assert len(slices) >= len(chunk) // 120
    times = [e.at_s for e in events]
    assert times[0] == 1.0
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.001] * (len(times) - 1)
    # The next chunk waits for the last slice's delay.
    assert stage.data(b"x", 1.0)[0].at_s == pytest.approx(1.0 + 0.001 * len(slices))


def test_slicer_without_variation_halves_exactly() -> None:
    stage = Slicer({"average_size": 100, "size_variation": 0, "delay": 0}, 0.0, RNG)
    assert stage.cuts(400) == [0, 100, 200, 300, 400]
    assert stage.cuts(50) == [0, 50]


def test_limit_data_lets_exactly_its_bytes_through_then_closes() -> None:
    stage = LimitData({"bytes": 10}, 0.0, RNG)
    assert stage.data(b"123456", 1.0) == [Send(1.0, b"123456")]
    assert stage.data(b"7890abc", 1.1) == [Send(1.1, b"7890"), Close(1.1)]
    assert stage.data(b"more", 1.2) == []
    assert LimitData({"bytes": 0}, 0.0, RNG).data(b"x", 1.0) == [Close(1.0)]


# The chain -----------------------------------------------------------------------------


def spec(name: str, kind: str, toxicity: float = 1.0, **attributes: int) -> ToxicSpec:
    return parse_toxic({"name": name, "type": kind, "toxicity": toxicity, "attributes": attributes})


def test_chain_feeds_each_stage_the_previous_ones_timing() -> None:
    chain = Chain("seed/proxy/0/downstream")
    chain.update([spec("lag", "latency", latency=100), spec("cap", "bandwidth", rate=100)], 0.0)
    # 100 ms of latency, then 5 000 bytes on a 100 KB/s wire: 50 ms more.
    assert [(round(e.at_s, 6), len(e.data)) for e in chain.data(bytes(5_000), 1.0)] == [
        (1.15, 5_000)
    ]
    assert ends(chain.end(1.0)) == [1.15]


def test_chain_close_and_reset_pass_through_later_stages() -> None:
    chain = Chain("k")
    chain.update([spec("cut", "limit_data", bytes=3), spec("slow", "slow_close", delay=1000)], 0)
    assert chain.data(b"abcdef", 2.0) == [Send(2.0, b"abc"), Close(2.0)]


def test_chain_fires_timers_and_tells_deleted_toxics() -> None:
    chain = Chain("k")
    chain.update([spec("t", "timeout", timeout=250)], 1.0)
    assert chain.deadline_s() == 1.25
    assert chain.tick(1.1) == []
    assert chain.tick(1.25) == [Close(1.25)]
    chain.update([spec("blackhole", "timeout", timeout=0)], 2.0)
    assert chain.data(b"gone", 2.1) == []
    assert chain.update([], 3.0) == [Close(3.0)]
    assert not chain


def test_chain_keeps_a_toxics_state_across_updates() -> None:
    chain = Chain("k")
    chain.update([spec("cap", "limit_data", bytes=10)], 0.0)
    assert chain.data(b"12345678", 1.0) == [Send(1.0, b"12345678")]
    chain.update([spec("cap", "limit_data", bytes=12)], 1.5)
    assert chain.data(b"abcdef", 2.0) == [Send(2.0, b"abcd"), Close(2.0)]


def test_toxicity_picks_a_seeded_share_of_connections_and_only_grows() -> None:
    def hit(seed: int, toxicity: float) -> set[int]:
        chosen = set()
        for connection in range(1000):
            chain = Chain(f"{seed}/p/{connection}/downstream")
            chain.update([spec("lag", "latency", toxicity, latency=1)], 0.0)
            if chain:
                chosen.add(connection)
        return chosen

    half = hit(1, 0.5)
    assert 430 <= len(half) <= 570
    assert hit(1, 0.5) == half  # reproducible
    assert hit(2, 0.5) != half  # and the seed matters
    assert half <= hit(1, 0.8)  # raising toxicity only adds connections
    assert hit(1, 0.0) == set() and len(hit(1, 1.0)) == 1000


def test_chain_output_never_goes_back_in_time() -> None:
    chain = Chain("k")
    chain.update([spec("lag", "latency", latency=100, jitter=90)], 0.0)
    times = [e.at_s for i in range(300) for e in chain.data(b"x", i * 0.002)]
    assert times == sorted(times)
