"""Aggregate runs and render them: Rich table, markdown rows, JSON."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.brokers import REPO_ROOT
from bench.machine import machine_summary
from bench.scenarios import Metric, Scenario, ScenarioResult

RESULTS_DIR = REPO_ROOT / "bench-results"


def save_results(results: dict[str, Any], bench: str) -> Path:
    """Write results JSON as bench-results/<bench>-<UTC time>.json; return its path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{bench}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    return path


BROKER_LABELS = {"ours": "ours", "tansu": "Tansu"}


@dataclass
class BrokerOutcome:
    """Everything one broker produced in this run."""

    name: str
    start_error: str | None = None
    runs: dict[str, list[ScenarioResult]] = field(default_factory=dict)

    def median(self, scenario: str, metric: str) -> float | None:
        """Median of `metric` over the successful runs of `scenario`."""
        values = [
            value
            for run in self.runs.get(scenario, [])
            if run.error is None and (value := run.metrics.get(metric)) is not None
        ]
        return statistics.median(values) if values else None

    def errors(self, scenario: str) -> list[str]:
        return [run.error for run in self.runs.get(scenario, []) if run.error]


def format_value(value: float | None) -> str:
    """1,234 for big figures, 12.3 for small ones, '-' for missing."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def ratio(ours: float | None, tansu: float | None) -> float | None:
    """ours / Tansu, or None if either is missing or Tansu is zero."""
    if ours is None or not tansu:
        return None
    return ours / tansu


def format_ratio(value: float | None, metric: Metric, rich_markup: bool) -> str:
    """'1.23x', coloured green when ours is at least as good as Tansu."""
    if value is None:
        return "-"
    text = f"{value:.2f}x"
    if not rich_markup:
        return text
    good = value >= 1.0 if metric.higher_is_better else value <= 1.0
    return f"[{'green' if good else 'red'}]{text}[/]"


def cell(outcome: BrokerOutcome, scenario: str, metric: str) -> str:
    """A table cell: the median, or why there is none."""
    value = outcome.median(scenario, metric)
    if value is None and outcome.errors(scenario):
        return "failed"
    if value is None and outcome.start_error:
        return "not started"
    return format_value(value)


def build_table(title: str, scenarios: list[Scenario], outcomes: dict[str, BrokerOutcome]) -> Table:
    """One row per (scenario, metric); a column per broker, plus ours/Tansu if both ran."""
    table = Table(title=title)
    table.add_column("scenario")
    table.add_column("metric")
    for name in outcomes:
        table.add_column(BROKER_LABELS.get(name, name), justify="right")
    both = "ours" in outcomes and "tansu" in outcomes
    if both:
        table.add_column("ours/Tansu", justify="right")
    for scenario in scenarios:
        for index, metric in enumerate(scenario.metrics):
            row = [scenario.name if index == 0 else "", metric.label]
            row += [cell(outcome, scenario.name, metric.key) for outcome in outcomes.values()]
            if both:
                value = ratio(
                    outcomes["ours"].median(scenario.name, metric.key),
                    outcomes["tansu"].median(scenario.name, metric.key),
                )
                row.append(format_ratio(value, metric, rich_markup=True))
            table.add_row(*row, end_section=index == len(scenario.metrics) - 1)
    return table


def error_lines(scenarios: list[Scenario], outcomes: dict[str, BrokerOutcome]) -> list[str]:
    """One line per broker that failed to start or per failed scenario run."""
    lines = []
    for outcome in outcomes.values():
        label = BROKER_LABELS.get(outcome.name, outcome.name)
        if outcome.start_error:
            lines.append(f"{label}: failed to start: {outcome.start_error}")
        for scenario in scenarios:
            lines += [f"{label} / {scenario.name}: {e}" for e in outcome.errors(scenario.name)]
    return lines


def markdown_rows(
    command: str,
    machine: dict[str, Any],
    scenarios: list[Scenario],
    outcomes: dict[str, BrokerOutcome],
) -> list[str]:
    """Rows for the docs/benchmarks.md results table (ours/Tansu 'pending' if not run)."""
    summary = machine_summary(machine)
    date = str(machine["date_utc"]).split(" ")[0]
    rows = []
    for scenario in scenarios:
        for metric in scenario.metrics:
            figures = {}
            for name in ("ours", "tansu"):
                outcome = outcomes.get(name)
                figures[name] = outcome.median(scenario.name, metric.key) if outcome else None
            ours_text = format_value(figures["ours"]) if "ours" in outcomes else "pending"
            tansu_text = format_value(figures["tansu"]) if "tansu" in outcomes else "pending"
            ratio_text = format_ratio(
                ratio(figures["ours"], figures["tansu"]), metric, rich_markup=False
            )
            if "ours" not in outcomes or "tansu" not in outcomes:
                ratio_text = "pending"
            rows.append(
                f"| `{command}` | {summary} | {date} | {scenario.name} | {metric.label} "
                f"| {ours_text} | {tansu_text} | {ratio_text} |"
            )
    return rows


def results_json(
    command: str,
    machine: dict[str, Any],
    options: dict[str, Any],
    scenarios: list[Scenario],
    outcomes: dict[str, BrokerOutcome],
) -> dict[str, Any]:
    """Everything, machine-readable: medians, ratios, errors and every raw client result."""
    brokers: dict[str, Any] = {}
    for name, outcome in outcomes.items():
        brokers[name] = {
            "start_error": outcome.start_error,
            "scenarios": {
                s.name: {
                    "median": {m.key: outcome.median(s.name, m.key) for m in s.metrics},
                    "errors": outcome.errors(s.name),
                    "runs": [run.raw for run in outcome.runs.get(s.name, [])],
                }
                for s in scenarios
            },
        }
    ratios = {
        s.name: {
            m.key: ratio(
                outcomes["ours"].median(s.name, m.key), outcomes["tansu"].median(s.name, m.key)
            )
            for m in s.metrics
        }
        for s in scenarios
        if "ours" in outcomes and "tansu" in outcomes
    }
    return {
        "command": command,
        "machine": machine,
        "options": options,
        "brokers": brokers,
        "ours_over_tansu": ratios,
    }


def print_report(
    console: Console,
    command: str,
    machine: dict[str, Any],
    scenarios: list[Scenario],
    outcomes: dict[str, BrokerOutcome],
    title: str,
) -> None:
    """Machine line, the table, any errors, and markdown rows ready to paste."""
    console.print(f"[bold]machine[/]: {machine_summary(machine)}")
    console.print(f"[bold]date[/]: {machine['date_utc']}")
    console.print(
        f"[bold]client[/]: python {machine['python']}, "
        f"confluent-kafka {machine['confluent_kafka']}, librdkafka {machine['librdkafka']}"
    )
    console.print(build_table(title, scenarios, outcomes))
    for line in error_lines(scenarios, outcomes):
        console.print(line, style="red", markup=False, highlight=False)
    console.print("\nmarkdown rows for docs/benchmarks.md:")
    for row in markdown_rows(command, machine, scenarios, outcomes):
        console.print(row, markup=False, highlight=False, soft_wrap=True)
