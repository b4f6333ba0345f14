"""Prometheus scrape targets of a running topology, in file_sd format.

Ports are chosen by the supervisor and kept in the state directory, so a file written by
`regionlink metrics targets` stays right across restarts; rewrite it after `up` of another
topology. Target labels carry a `regionlink_` prefix: plain `process`, `kind` and `region`
are labels of the supervisor's own metrics, and Prometheus would rename those on a clash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirror.runtime.state import StateDB


def file_sd_targets(state_dir: Path) -> list[dict[str, Any]]:
    """One group per process serving `/metrics`, the supervisor first."""
    state = StateDB(state_dir)
    meta = state.meta()
    topology = str(meta.get("topology", ""))
    groups = []
    if meta.get("metrics_url"):
        groups.append(_group(str(meta["metrics_url"]), topology, "supervisor", "supervisor", ""))
    for row in state.processes():
        if row.metrics_url:
            groups.append(_group(row.metrics_url, topology, row.name, row.kind, row.region))
    return groups


def _group(url: str, topology: str, process: str, kind: str, region: str) -> dict[str, Any]:
    return {
        "targets": [urlsplit(url).netloc],
        "labels": {
            "regionlink_topology": topology,
            "regionlink_process": process,
            "regionlink_kind": kind,
            "regionlink_region": region,
        },
    }
