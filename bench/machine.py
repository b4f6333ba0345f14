"""Describe the machine a benchmark ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path
from typing import Any

import confluent_kafka

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def usable_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_avg_1m() -> float | None:
    """1-minute load average (other work on the box makes figures noisy)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, RAM, OS, Python, librdkafka and the UTC date."""
    return {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "confluent_kafka": getattr(confluent_kafka, "__version__", "?"),
        "librdkafka": confluent_kafka.libversion()[0],
        "load_avg_1m": load_avg_1m(),
        "free_page_reporting_kib": free_page_reporting_kib(),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_summary(info: dict[str, Any]) -> str:
    """One line, e.g. 'AMD EPYC, 2 cores, 7.8 GiB, Linux 6.1'."""
    memory = info.get("memory_gib")
    parts = [str(info["cpu_model"]), f"{info['cores']} cores"]
    if memory:
        parts.append(f"{memory:.1f} GiB")
    parts.append(str(info["os"]))
    return ", ".join(parts)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used (/proc, Linux): what a step cost it,
    whatever else the machine ran meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


WARM_CHUNK_BYTES = 1 << 20
PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/reported_kib")


def free_page_reporting_kib() -> int | None:
    """KiB of freed memory this guest has handed back to its hypervisor (virtio-balloon free
    page reporting), or None where the kernel does not report."""
    try:
        return int(PAGE_REPORTING.read_text())
    except (OSError, ValueError):
        return None


def warm_memory(directory: Path, nbytes: int) -> None:
    """Write `nbytes` to a scratch file in `directory` and delete it, just before a measured
    step writes about that much.

    In a VM with free page reporting, memory the guest freed goes back to the host, and the
    guest's first write to such a page is charged as system time to whichever process
    touches it (measured here: a 1.2 GB write costs 1.8 s of CPU the first time, 0.24 s
    right after a delete freed 1.2 GB). A step that writes three times the bytes (RF=3)
    would pay that more often than one that writes once, so every measured step starts with
    as much freshly freed memory as it will write: the figure is the broker's, not the
    hypervisor's."""
    if nbytes <= 0:
        return
    chunk = bytes(WARM_CHUNK_BYTES)
    scratch = directory / f".warm-{os.getpid()}"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(-(-nbytes // WARM_CHUNK_BYTES)):
            os.write(fd, chunk)
    finally:
        os.close(fd)
        scratch.unlink()
