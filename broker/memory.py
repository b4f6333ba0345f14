"""Keep freed megabyte buffers in the process instead of returning them to the kernel.

Every produce request and fetch response a broker or mirror worker receives is a buffer of
up to several MB, freed soon after. glibc serves allocations above M_MMAP_THRESHOLD (128 KiB
until its dynamic rule raises it) with a fresh mmap and gives the heap's top back with brk
past M_TRIM_THRESHOLD, so each such buffer costs a page fault per 4 KiB touched plus the
kernel zeroing the page: in the RF=3 replication bench that was over a third of every
follower's CPU (bench.replication_bench; docs/benchmarks.md "Replication"). Raising both
thresholds once at start-up lets freed buffers be reused, as a JVM keeps its heap.
The cost is resident memory that stays at its peak; the limits bound it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("regionlink.memory")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's ceiling for this setting on 64-bit systems
TRIM_THRESHOLD_BYTES = 256 << 20


def keep_freed_buffers() -> bool:
    """Tune glibc's malloc as the module docstring says; False where there is no glibc
    (musl, macOS): those processes run with their allocator's defaults."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.debug("no glibc mallopt: large buffers keep the allocator's defaults")
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return ok and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
