"""The leader's replica bookkeeping: high watermark, catch-up times, ISR shrink and expand."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.replication.state import LeaderState

LAG_MAX_MS = 30_000


def leader(isr: tuple[int, ...] = (1, 2, 3), *, hw: int = 0, now_ms: int = 0) -> LeaderState:
    return LeaderState(
        local_id=1,
        replicas=(1, 2, 3),
        isr=isr,
        leader_epoch=5,
        partition_epoch=7,
        high_watermark=hw,
        epoch_start_offset=hw,
        now_ms=now_ms,
    )


def test_high_watermark_is_the_lowest_isr_log_end() -> None:
    state = leader()
    assert not state.advance_high_watermark(100, 1)  # followers unknown yet (-1)
    state.follower_fetched(2, 80, 100, 10)
    state.follower_fetched(3, 60, 100, 10)
    assert state.advance_high_watermark(100, 1)
    assert state.high_watermark == 60
    state.follower_fetched(3, 100, 100, 20)
    assert state.advance_high_watermark(100, 1)
    assert state.high_watermark == 80


def test_followers_outside_the_isr_do_not_hold_the_high_watermark_back() -> None:
    state = leader(isr=(1, 2))
    state.follower_fetched(2, 50, 50, 10)
    state.follower_fetched(3, 0, 50, 10)
    assert state.advance_high_watermark(50, 1)
    assert state.high_watermark == 50


def test_high_watermark_waits_while_the_isr_is_below_min_insync() -> None:
    state = leader(isr=(1,))
    assert not state.advance_high_watermark(10, 2)
    assert state.high_watermark == 0
    assert state.advance_high_watermark(10, 1)


def test_high_watermark_never_moves_back() -> None:
    state = leader(hw=40)
    state.follower_fetched(2, 10, 50, 10)
    state.follower_fetched(3, 10, 50, 10)
    assert not state.advance_high_watermark(50, 1)
    assert state.high_watermark == 40


def test_unknown_replica_is_refused() -> None:
    assert not leader().follower_fetched(9, 0, 0, 0)


def test_a_follower_that_stops_fetching_leaves_the_isr_after_the_lag_time() -> None:
    state = leader(now_ms=0)
    state.follower_fetched(2, 100, 100, 1_000)
    state.follower_fetched(3, 100, 100, 1_000)
    assert state.isr_after_shrink(LAG_MAX_MS + 1_000, LAG_MAX_MS) is None
    state.follower_fetched(2, 100, 100, 20_000)
    assert state.isr_after_shrink(LAG_MAX_MS + 1_001, LAG_MAX_MS) == (1, 2)


def test_a_follower_behind_but_keeping_up_stays_in_the_isr() -> None:
    """Fetching up to where the leader was at the previous fetch counts as caught up then."""
    state = leader()
    leader_end = 0
    for step in range(1, 100):
        now = step * 1_000
        fetch_offset = leader_end  # always one round behind a busy leader
        leader_end += 500
        state.follower_fetched(2, fetch_offset, leader_end, now)
        state.follower_fetched(3, leader_end, leader_end, now)
        assert state.isr_after_shrink(now, LAG_MAX_MS) is None


def test_a_follower_that_falls_behind_for_good_leaves() -> None:
    state = leader()
    for step in range(1, 40):
        now = step * 1_000
        state.follower_fetched(2, 10, step * 500, now)  # stuck at offset 10
        state.follower_fetched(3, step * 500, step * 500, now)
    assert state.isr_after_shrink(39_000, LAG_MAX_MS) == (1, 3)


def test_a_caught_up_follower_rejoins_in_replica_order() -> None:
    state = leader(isr=(1, 3), hw=50)
    state.follower_fetched(2, 40, 60, 10)
    assert state.isr_after_expand() is None
    state.follower_fetched(2, 55, 60, 20)
    assert state.isr_after_expand() == (1, 2, 3)


def test_rejoining_needs_the_current_leader_epoch() -> None:
    state = LeaderState(
        local_id=1,
        replicas=(1, 2),
        isr=(1,),
        leader_epoch=2,
        partition_epoch=2,
        high_watermark=10,
        epoch_start_offset=30,
        now_ms=0,
    )
    state.follower_fetched(2, 20, 40, 5)
    assert state.isr_after_expand() is None
    state.follower_fetched(2, 30, 40, 6)
    assert state.isr_after_expand() == (1, 2)


@given(
    st.lists(
        st.tuples(st.sampled_from((2, 3)), st.integers(0, 1_000), st.integers(0, 3)), max_size=60
    )
)
def test_high_watermark_is_monotonic_and_never_above_an_isr_log_end(
    fetches: list[tuple[int, int, int]],
) -> None:
    state = leader()
    leader_end, now = 0, 0
    for replica, offset, min_isr in fetches:
        leader_end = max(leader_end, offset)
        now += 100
        before = state.high_watermark
        state.follower_fetched(replica, offset, leader_end, now)
        state.advance_high_watermark(leader_end, min_isr)
        assert state.high_watermark >= before
        if state.high_watermark > before:
            isr_ends = [leader_end] + [state.followers[r].log_end_offset for r in (2, 3)]
            assert state.high_watermark <= min(isr_ends)
