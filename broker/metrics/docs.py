"""Documentation generated from the catalog: the Markdown metric table of
docs/observability.md and the Grafana dashboard docs/grafana/regionlink.json.

Both are printed by `regionlink metrics list` and `regionlink metrics grafana`, and tests
check that the committed files equal what these functions produce now.
"""

from __future__ import annotations

import json
from typing import Any

from broker.metrics.catalog import METRICS, Kind, MetricSpec, Process

SECTIONS = {
    Process.WORKER: "Mirror workers",
    Process.BROKER: "Brokers",
    Process.CONTROLLER: "Controllers",
    Process.SUPERVISOR: "Supervisor and failover",
}
PANEL_HEIGHT, PANEL_WIDTH = 8, 12
QUANTILES = (0.5, 0.99)


def markdown_table() -> str:
    lines = ["| metric | type | labels | served by | meaning |", "|---|---|---|---|---|"]
    for spec in METRICS:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(f"| `{spec.name}` | {spec.kind} | {labels} | {spec.process} | {spec.help} |")
    return "\n".join(lines) + "\n"


def grafana_dashboard() -> dict[str, Any]:
    """A dashboard with a row per process kind and a time series panel per metric."""
    panels: list[dict[str, Any]] = []
    y = 0
    for process, title in SECTIONS.items():
        panels.append(_row(len(panels) + 1, title, y))
        y += 1
        specs = [spec for spec in METRICS if spec.process == process]
        for index, spec in enumerate(specs):  # two panels side by side
            x, row = (index % 2) * PANEL_WIDTH, index // 2
            panels.append(_panel(len(panels) + 1, spec, x, y + row * PANEL_HEIGHT))
        y += -(-len(specs) // 2) * PANEL_HEIGHT
    return {
        "title": "regionlink",
        "uid": "regionlink",
        "description": "Generated from broker/metrics/catalog.py by `regionlink metrics grafana`.",
        "tags": ["regionlink"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": panels,
    }


def grafana_json() -> str:
    return json.dumps(grafana_dashboard(), indent=2) + "\n"


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "panels": [],
    }


def _panel(panel_id: int, spec: MetricSpec, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": spec.name,
        "description": spec.help,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": _unit(spec)}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _queries(spec),
    }


def _queries(spec: MetricSpec) -> list[dict[str, Any]]:
    """PromQL for the panel: counters as per-second rates, histograms as quantiles."""
    legend = " ".join(f"{{{{{label}}}}}" for label in spec.by) or spec.name
    by = ", ".join(spec.by)
    if spec.kind == Kind.HISTOGRAM:
        buckets = f"sum by (le, {by}) (rate({spec.name}_bucket[$__rate_interval]))"
        return [
            {
                "refId": chr(ord("A") + index),
                "expr": f"histogram_quantile({q}, {buckets})",
                "legendFormat": f"p{q * 100:g} {legend}",
            }
            for index, q in enumerate(QUANTILES)
        ]
    series = f"rate({spec.name}[$__rate_interval])" if spec.kind == Kind.COUNTER else spec.name
    aggregate = "sum" if spec.kind == Kind.COUNTER else spec.aggregate
    grouping = f" by ({by})" if by else ""
    return [{"refId": "A", "expr": f"{aggregate}{grouping} ({series})", "legendFormat": legend}]


def _unit(spec: MetricSpec) -> str:
    """Grafana's unit: seconds and bytes as such (bytes/s for a counter), else counts."""
    if spec.unit == "s":
        return "s"
    if spec.unit == "By":
        return "Bps" if spec.kind == Kind.COUNTER else "bytes"
    return "cps" if spec.kind == Kind.COUNTER else "short"
