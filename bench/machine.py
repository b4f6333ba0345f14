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
