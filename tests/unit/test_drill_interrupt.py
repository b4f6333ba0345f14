"""A drill's SIGINT is not lost: raised at once, and raised again where the runner waits
should code that swallows exceptions have eaten the first one."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from chaos.drill.runner import WAIT_SLICE_S, InterruptGuard, wait_in_slices


def _never_done(timeout_s: float) -> bool:
    time.sleep(timeout_s)
    return False


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """Python's own SIGINT handler, whatever this test run inherited (`nohup make test`
    starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_raises")
def test_an_interrupt_swallowed_on_the_way_is_raised_at_the_next_slice() -> None:
    with InterruptGuard() as guard:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here
        except KeyboardInterrupt:
            pass  # as a finalizer or a callback from C would swallow it
        started_s = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            wait_in_slices(_never_done, time.monotonic() + 30, guard)
        assert time.monotonic() - started_s < 2 * WAIT_SLICE_S + 0.5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "restored"


def test_a_sigint_ignored_from_the_start_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with InterruptGuard() as guard:
            os.kill(os.getpid(), signal.SIGINT)
            assert not wait_in_slices(_never_done, time.monotonic() + 0.5, guard)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_without_an_interrupt_the_wait_ends_when_done_or_at_its_deadline() -> None:
    with InterruptGuard() as guard:
        assert wait_in_slices(lambda timeout_s: True, time.monotonic() + 30, guard)
        started_s = time.monotonic()
        assert not wait_in_slices(_never_done, started_s + 0.5, guard)
        assert 0.5 <= time.monotonic() - started_s < 1.0
