"""Rich tables for a worker's status dict (as from `fetch_status` or `WorkerStatus.as_dict()`).

A worker may own a thousand partitions; the partition table shows the ones an operator
should look at first (errors, then the most lagging) and counts the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

PARTITION_ROWS = 20


def render_status(status: dict[str, Any], max_partitions: int = PARTITION_ROWS) -> RenderableType:
    """The flows table, then each flow's `max_partitions` most urgent partitions."""
    started = datetime.fromtimestamp(status["started_ms"] / 1000, UTC)
    parts: list[RenderableType] = [
        Text(f"worker {status['worker_id']}, up since {started:%Y-%m-%d %H:%M:%S} UTC", "bold")
    ]
    flows = status["flows"]
    if not flows:
        parts.append(Text("no flows", "dim"))
        return Group(*parts)
    parts.append(_flows_table(flows))
    parts.extend(_partitions_table(flow, max_partitions) for flow in flows)
    return Group(*parts)


def _flows_table(flows: list[dict[str, Any]]) -> Table:
    table = Table(title="flows", title_justify="left")
    table.add_column("flow")
    table.add_column("state")
    table.add_column("members")
    for heading in ("lag records", "lag ms", "records/s", "copied", "lost", "groups synced"):
        table.add_column(heading, justify="right")
    table.add_column("last error", style="red", overflow="fold")
    for flow in flows:
        member = "-" if flow["member_index"] < 0 else f"#{flow['member_index']}"
        table.add_row(
            f"{flow['source']}->{flow['target']}",
            _state(flow["state"]),
            f"{member} of {flow['member_count']}",
            f"{flow['lag_records']:,}",
            f"{flow['lag_ms']:,}",
            f"{flow['records_per_s']:,.1f}",
            f"{flow['records_copied']:,}",
            _lost(flow["records_lost"]),
            f"{flow['groups_synced']:,}",
            flow["last_error"],
        )
    return table


def _partitions_table(flow: dict[str, Any], limit: int) -> RenderableType:
    partitions = flow["partitions"]
    name = f"{flow['source']}->{flow['target']}"
    if not partitions:
        return Text(f"{name}: no partitions assigned", "dim")
    urgent = sorted(partitions, key=_urgency)[:limit]
    title = f"{name}: {len(partitions)} partitions"
    if len(urgent) < len(partitions):
        title += f", {len(urgent)} shown (errors, then most lagging)"
    table = Table(title=title, title_justify="left")
    table.add_column("partition")
    table.add_column("target topic")
    table.add_column("state")
    for heading in ("source position", "target end", "lag", "records/s", "lost"):
        table.add_column(heading, justify="right")
    errors = any(p["last_error"] for p in urgent)
    if errors:
        table.add_column("last error", style="red", overflow="fold")
    for p in urgent:
        table.add_row(
            f"{p['source_topic']}[{p['partition']}]",
            p["target_topic"],
            _state(p["state"]),
            _offset(p["source_position"]),
            _offset(p["target_end"]),
            f"{p['lag_records']:,}",
            f"{p['records_per_s']:,.1f}",
            _lost(p["records_lost"]),
            *([p["last_error"]] if errors else []),
        )
    hidden = len(partitions) - len(urgent)
    if hidden:
        table.caption, table.caption_justify = f"... and {hidden} more", "left"
    return table


def _urgency(p: dict[str, Any]) -> tuple[bool, int, int, str, int]:
    """Sort key: partitions with an error first, then by lag, then by name."""
    return (not p["last_error"], -p["lag_records"], -p["lag_ms"], p["source_topic"], p["partition"])


_STATE_STYLES = {
    "running": "green",
    "caught-up": "green",
    "paused": "yellow",
    "retrying": "red",
    "error": "red",
}


def _state(state: str) -> Text:
    return Text(state, _STATE_STYLES.get(state, ""))


def _offset(offset: int) -> str:
    return "-" if offset < 0 else f"{offset:,}"


def _lost(records: int) -> Text:
    return Text(f"{records:,}", "bold red" if records else "")
