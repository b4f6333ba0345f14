"""The wall clock, in the one place the I/O layer reads it (cores take time as arguments)."""

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
