"""What `regionlink status`, `lag` and `link` show: the state database plus every worker's
control API, gathered into one JSON-able dict."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio

from mirror.config import FlowConfig
from mirror.control.client import ControlError, fetch_status
from mirror.runtime.links import LinkState, initial_links, load_links, running_flows
from mirror.runtime.state import ProcessRow, StateDB, pid_alive
from mirror.runtime.topology import TopologyConfig, load_topology
from mirror.runtime.wan import link_status

TOPOLOGY_COPY = "topology.toml"
CONTROL_TIMEOUT_S = 2.0


def running_topology(state_dir: Path) -> TopologyConfig:
    return load_topology(state_dir / TOPOLOGY_COPY)


async def _worker_statuses(workers: list[ProcessRow]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    async def one(row: ProcessRow) -> None:
        with contextlib.suppress(ControlError):  # shown as a worker without figures
            found[row.name] = await fetch_status(row.address, CONTROL_TIMEOUT_S)

    async with anyio.create_task_group() as tg:
        for row in workers:
            if row.state == "running" and row.address:
                tg.start_soon(one, row)
    return found


def collect(state_dir: Path) -> dict[str, Any]:
    """{"supervisor": …, "regions": {name: {...}}, "flows": [...], "processes": [...]}."""
    state = StateDB(state_dir)
    meta = state.meta()
    topology = running_topology(state_dir)
    rows = state.processes()
    links = load_links(state) or initial_links(topology)
    workers = [r for r in rows if r.kind == "worker"]
    live = anyio.run(_worker_statuses, workers)
    supervisor_pid = int(meta.get("supervisor_pid", 0))
    return {
        "topology": topology.name,
        "supervisor": {
            "pid": supervisor_pid,
            "alive": pid_alive(supervisor_pid),
            "status": meta.get("status", "unknown"),
            "metrics_url": meta.get("metrics_url") or "",
        },
        "regions": _regions(topology, rows, links),
        "flows": _flows(running_flows(topology, links), workers, live, state.paused_flows()),
        "failover": {"epoch": links.epoch, "primary": links.primary},
        "links": link_status(meta["wan"]) if isinstance(meta.get("wan"), dict) else [],
        "processes": [{**row.__dict__, "alive": pid_alive(row.pid)} for row in rows],
    }


def _regions(topology: TopologyConfig, rows: list[ProcessRow], links: LinkState) -> dict[str, Any]:
    regions: dict[str, Any] = {}
    for name, config in sorted(topology.regions.items()):
        brokers = [r for r in rows if r.kind == "broker" and r.region == name]
        controllers = [r for r in rows if r.kind == "controller" and r.region == name]
        bootstrap = config.bootstrap or ",".join(r.address for r in brokers if r.address)
        regions[name] = {
            "bootstrap": bootstrap,
            "managed": config.managed,
            "brokers": len(brokers),
            "brokers_running": _running(brokers),
            "controllers": len(controllers),
            "controllers_running": _running(controllers),
            "restarts": sum(r.restarts for r in brokers),
            "role": links.roles[name].role.value if name in links.roles else "",
        }
    return regions


def _running(rows: list[ProcessRow]) -> int:
    return sum(1 for r in rows if r.state == "running")


def _flows(
    running: list[FlowConfig],
    workers: list[ProcessRow],
    live: dict[str, dict[str, Any]],
    paused: set[str],
) -> list[dict[str, Any]]:
    flows = []
    for flow in running:
        rows = [r for r in workers if r.flow == flow.spec]
        figures = [
            f
            for r in rows
            if r.name in live
            for f in live[r.name]["flows"]
            if (f["source"], f["target"]) == (flow.source, flow.target)
        ]
        partitions = [p for f in figures for p in f["partitions"]]
        flows.append(
            {
                "source": flow.source,
                "target": flow.target,
                "state": "paused" if flow.spec in paused else _flow_state(rows, figures),
                "workers": len(rows),
                "workers_running": sum(1 for r in rows if r.state == "running"),
                "lag_records": sum(f["lag_records"] for f in figures),
                "lag_ms": max((f["lag_ms"] for f in figures), default=0),
                "records_per_s": round(sum(f["records_per_s"] for f in figures), 1),
                "records_copied": sum(f["records_copied"] for f in figures),
                "records_lost": sum(f["records_lost"] for f in figures),
                "groups_synced": max((f["groups_synced"] for f in figures), default=0),
                "last_error": next((f["last_error"] for f in figures if f["last_error"]), ""),
                "partitions": sorted(
                    partitions, key=lambda p: (-p["lag_records"], p["source_topic"], p["partition"])
                ),
            }
        )
    return flows


def _flow_state(rows: list[ProcessRow], figures: list[dict[str, Any]]) -> str:
    if not rows or not figures:
        return "down"
    if any(f["state"] == "error" for f in figures):
        return "error"
    return "running"
