"""How the pages write times, durations and figures (Jinja filters)."""

from __future__ import annotations

import time


def clock_ms(epoch_ms: float | None) -> str:
    """A wall-clock time to the millisecond, in the server's local time zone."""
    if epoch_ms is None:
        return "—"
    seconds, ms = divmod(int(epoch_ms), 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{ms:03d}"


def clock_ns(epoch_ns: int | None) -> str:
    return clock_ms(None if epoch_ns is None else epoch_ns // 1_000_000)


def seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} s"


def millis(value: float | None) -> str:
    """A duration in ms, with as many digits as it needs to be read."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f} ms"
    return f"{value:.2f} ms" if abs(value) >= 1 else f"{value * 1000:.0f} µs"


FILTERS = {"clock_ms": clock_ms, "clock_ns": clock_ns, "seconds": seconds, "millis": millis}
