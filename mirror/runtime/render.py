"""Rich tables for `regionlink status`, `lag` and `link list`."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

PARTITION_ROWS = 15


def status_view(status: dict[str, Any]) -> RenderableType:
    supervisor = status["supervisor"]
    title = f"topology {status['topology']} — supervisor {supervisor['status']}"
    failover = status.get("failover", {})
    if failover.get("primary"):
        title += f" — primary {failover['primary']} (epoch {failover['epoch']})"
    regions = Table(title=title)
    for column in ("region", "role", "kind", "bootstrap", "brokers", "controllers", "restarts"):
        regions.add_column(column)
    for name, region in status["regions"].items():
        kind = "managed" if region["managed"] else "external"
        brokers = f"{region['brokers_running']}/{region['brokers']}" if region["managed"] else "-"
        controllers = (  # a single-node region keeps its own metadata: none to show
            f"{region['controllers_running']}/{region['controllers']}"
            if region["controllers"]
            else "-"
        )
        regions.add_row(
            name,
            region.get("role") or "-",
            kind,
            region["bootstrap"],
            brokers,
            controllers,
            str(region["restarts"]),
        )
    parts: list[RenderableType] = [regions, flows_view(status["flows"])]
    if status.get("links"):
        parts.append(links_view(status["links"]))
    processes = processes_view(status["processes"])
    if supervisor.get("metrics_url"):
        processes.caption = f"supervisor metrics: {supervisor['metrics_url']}"
    return Group(*parts, processes)


def links_view(links: list[dict[str, Any]]) -> Table:
    """WAN links: each proxy (a direction, to one broker of a region with several), up or
    cut, and its toxics (conditions and faults)."""
    table = Table(title="WAN links")
    for column in ("link", "via", "state", "toxics"):
        table.add_column(column)
    for link in links:
        state = {True: "up", False: "cut", None: "proxy not answering"}[link["enabled"]]
        toxics = link["toxics"]
        shown = "?" if toxics is None else ", ".join(_toxic(t) for t in toxics) or "none"
        table.add_row(link["name"], link["listen"], state, shown)
    return table


def _toxic(toxic: dict[str, Any]) -> str:
    attributes = " ".join(f"{k}={v}" for k, v in sorted(toxic["attributes"].items()))
    return f"{toxic['name']} ({toxic['type']} {toxic['stream']} {attributes})"


def flows_view(flows: list[dict[str, Any]]) -> RenderableType:
    table = Table(title="flows")
    for column in (
        "flow",
        "state",
        "workers",
        "lag",
        "lag ms",
        "rec/s",
        "copied",
        "lost",
        "groups",
    ):
        table.add_column(column, justify="left" if column in ("flow", "state") else "right")
    errors = []
    for flow in flows:
        name = f"{flow['source']} → {flow['target']}"
        table.add_row(
            name,
            flow["state"],
            f"{flow['workers_running']}/{flow['workers']}",
            f"{flow['lag_records']:,}",
            f"{flow['lag_ms']:,}",
            f"{flow['records_per_s']:,.0f}",
            f"{flow['records_copied']:,}",
            f"{flow['records_lost']:,}",
            str(flow["groups_synced"]),
        )
        if flow["last_error"]:
            errors.append(f"{name}: {flow['last_error']}")
    return Group(table, *errors) if errors else table


def processes_view(processes: list[dict[str, Any]]) -> Table:
    table = Table(title="processes")
    for column in ("process", "state", "pid", "address", "metrics", "restarts", "last exit"):
        table.add_column(column)
    for p in processes:
        state = p["state"] if p["alive"] or p["state"] != "running" else "gone"
        table.add_row(
            p["name"],
            state,
            str(p["pid"]),
            p["address"],
            p.get("metrics_url") or "-",
            str(p["restarts"]),
            p["last_exit"],
        )
    return table


def lag_view(flows: list[dict[str, Any]]) -> RenderableType:
    parts: list[RenderableType] = [flows_view(flows)]
    for flow in flows:
        table = Table(title=f"{flow['source']} → {flow['target']}: most lagging partitions")
        for column in (
            "partition",
            "state",
            "source position",
            "source end",
            "lag records",
            "lag ms",
            "records/s",
        ):
            table.add_column(column)
        for p in flow["partitions"][:PARTITION_ROWS]:
            table.add_row(
                f"{p['source_topic']}[{p['partition']}]",
                p["state"],
                f"{p['source_position']:,}",
                f"{p['source_end']:,}",
                f"{p['lag_records']:,}",
                f"{p['lag_ms']:,}",
                f"{p['records_per_s']:,.0f}",
            )
        if len(flow["partitions"]) > PARTITION_ROWS:
            table.caption = f"… and {len(flow['partitions']) - PARTITION_ROWS} more"
        parts.append(table)
    return Group(*parts)
