"""Bounded time series for the charts: one time axis, and per flow one column per figure.

The charting library (uPlot) draws aligned columns — `[times, values, values, ...]` — so
every flow keeps a value (or None) at every sampled time, including flows that appear
later (a switchover starts the reverse flow) or go away. Each column is a deque of the same
`maxlen`, so memory stays bounded however long the dashboard runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

FIGURES = ("lag_records", "lag_s", "records_per_s", "p50_ms", "p99_ms")

Value = float | None


class FlowSeries:
    """The last `capacity` samples of every flow's figures (`FIGURES`)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.times: deque[float] = deque(maxlen=capacity)
        self.flows: dict[str, dict[str, deque[Value]]] = {}

    def append(self, t: float, figures: Mapping[str, Mapping[str, Value]]) -> None:
        """Add the sample taken at `t` (seconds since the epoch): flow -> figure -> value."""
        for flow in figures:
            if flow not in self.flows:  # a new flow: no value at the times already kept
                self.flows[flow] = {
                    name: deque([None] * len(self.times), maxlen=self.capacity) for name in FIGURES
                }
        self.times.append(t)
        for flow, columns in self.flows.items():
            values = figures.get(flow, {})
            for name, column in columns.items():
                column.append(values.get(name))

    def to_json(self, flow: str | None = None) -> dict[str, Any]:
        """{"t": [...], "flows": {flow: {figure: [...]}}}, one flow's only when given."""
        chosen = self.flows if flow is None else {flow: self.flows.get(flow, {})}
        return {
            "t": list(self.times),
            "flows": {
                name: {figure: list(column) for figure, column in columns.items()}
                for name, columns in chosen.items()
            },
        }
