"""A verdict for people and programs: Rich tables, JSON, and tables in the run's sqlite file.

The JSON is the drill-run shape (`regionlink drill run --json` adds `drill`): `passed`,
`anomalies` (every anomaly name -> count), `records_acked`, `records_lost`,
`records_duplicated`, `rpo_records`, `rto_seconds`, then every metric, each failover measured
beside its report, each invariant with why it failed, and the findings — at most
`FINDINGS_PER_ANOMALY` of each anomaly, the full list being in the sqlite file (`findings`
table), where `drill report RUN` finds the verdict again (`load_verdict`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlite_utils
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chaos.checks.failovers import FailoverMeasure
from chaos.findings import Anomaly, Finding
from chaos.invariants import InvariantResult
from chaos.verifier import LagPoint, Verdict

FINDINGS_PER_ANOMALY = 20
_FINDING_COLUMNS: dict[str, type] = {
    "anomaly": str,
    "topic": str,
    "partition": int,
    "offset": int,
    "value": str,
    "region": str,
    "actor": str,
    "detail": str,
}
HEADLINE = ("records_acked", "records_lost", "records_duplicated", "rpo_records", "rto_seconds")


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    shown = _first_of_each(verdict.findings, FINDINGS_PER_ANOMALY)
    return {
        "passed": verdict.passed,
        "anomalies": dict(verdict.anomalies),
        **{name: verdict.metrics[name] for name in HEADLINE},
        "truncated": verdict.truncated,
        "metrics": dict(verdict.metrics),
        "failovers": [_failover_json(m) for m in verdict.failovers],
        "invariants": [asdict(result) for result in verdict.invariants],
        "findings": [_finding_json(f) for f in shown],
        "findings_omitted": len(verdict.findings) - len(shown),
        "lag": {flow: [asdict(point) for point in points] for flow, points in verdict.lag.items()},
    }


def render(verdict: Verdict, findings_shown: int = 5) -> RenderableType:
    """The verdict, its invariants, failovers and the first findings of each anomaly."""
    passed = Text("PASSED", style="bold green") if verdict.passed else Text("FAILED", "bold red")
    parts: list[RenderableType] = [Text.assemble("verdict: ", passed)]
    if verdict.truncated:
        parts.append(Text("the history was truncated: nothing can be promised", "bold red"))
    parts.append(_anomalies_table(verdict))
    if verdict.invariants:
        parts.append(_invariants_table(verdict.invariants))
    if verdict.failovers:
        parts.append(_failovers_table(verdict.failovers))
    if verdict.lag:
        parts.append(_lag_table(verdict.lag))
    if verdict.findings:
        parts.append(_findings_table(_first_of_each(verdict.findings, findings_shown)))
    return Group(*parts)


def save_verdict(path: Path, verdict: Verdict) -> None:
    """Into the run's history file, replacing an earlier verdict of the same run."""
    db = sqlite_utils.Database(path)
    try:
        summary = verdict_json(verdict) | {"findings": []}
        db.table("verdict").insert({"id": 1, "json": json.dumps(summary)}, pk="id", replace=True)
        findings = db.table("findings")
        if findings.exists():
            findings.drop()
        findings.create(_FINDING_COLUMNS)
        findings.insert_all((_finding_json(f) for f in verdict.findings), batch_size=10_000)
    finally:
        db.close()


def load_verdict(path: Path) -> Verdict:
    db = sqlite_utils.Database(path)
    try:
        summary = json.loads(next(iter(db.table("verdict").rows))["json"])
        findings = tuple(_finding(row) for row in db.table("findings").rows_where(order_by="rowid"))
    finally:
        db.close()
    return Verdict(
        findings=findings,
        anomalies=summary["anomalies"],
        metrics=summary["metrics"],
        failovers=tuple(_failover(item) for item in summary["failovers"]),
        invariants=tuple(InvariantResult(**item) for item in summary["invariants"]),
        truncated=summary["truncated"],
        lag={
            flow: tuple(LagPoint(**point) for point in points)
            for flow, points in summary.get("lag", {}).items()
        },
    )


def _first_of_each(findings: Iterable[Finding], most: int) -> list[Finding]:
    taken: dict[Anomaly, int] = {}
    shown = []
    for finding in findings:
        if taken.get(finding.anomaly, 0) < most:
            taken[finding.anomaly] = taken.get(finding.anomaly, 0) + 1
            shown.append(finding)
    return shown


def _finding_json(finding: Finding) -> dict[str, Any]:
    return asdict(finding) | {"anomaly": finding.anomaly.value}


def _finding(row: Mapping[str, Any]) -> Finding:
    return Finding(**{**row, "anomaly": Anomaly(row["anomaly"])})


def _failover_json(measure: FailoverMeasure) -> dict[str, Any]:
    extra = {
        "rpo_seconds": measure.rpo_seconds,
        "observed_rpo_records": measure.observed_rpo_records,
    }
    return asdict(measure) | extra


def _failover(data: Mapping[str, Any]) -> FailoverMeasure:
    derived = {"rpo_seconds", "observed_rpo_records"}
    return FailoverMeasure(**{k: v for k, v in data.items() if k not in derived})


SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 40


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """`values` in at most `width` characters, each the largest of its share of them."""
    if not values:
        return ""
    count = min(width, len(values))
    buckets = [
        max(values[i * len(values) // count : (i + 1) * len(values) // count]) for i in range(count)
    ]
    top = max(buckets)
    if top <= 0:
        return SPARK[0] * len(buckets)
    return "".join(
        SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in buckets
    )


def _lag_table(lag: Mapping[str, Sequence[LagPoint]]) -> Table:
    table = Table(title="mirror lag over time (sampled each second)")
    table.add_column("flow", no_wrap=True)
    table.add_column("max records", justify="right")
    table.add_column("max s", justify="right")
    table.add_column("records, over the run", no_wrap=True)
    for flow, points in lag.items():
        records = [p.lag_records for p in points]
        span = f" {points[0].t_s:.0f}-{points[-1].t_s:.0f} s" if points else ""
        table.add_row(
            flow,
            str(max(records, default=0)),
            f"{max((p.lag_seconds for p in points), default=0):.1f}",
            sparkline(records) + span,
        )
    return table


def _anomalies_table(verdict: Verdict) -> Table:
    table = Table(title="anomalies")
    table.add_column("anomaly")
    table.add_column("records", justify="right")
    table.add_column("first")
    first = {f.anomaly.value: f for f in reversed(verdict.findings)}
    for name, count in verdict.anomalies.items():
        example = first.get(name)
        where = "" if example is None else f"{_where(example)} {example.value}"
        table.add_row(name, str(count), where, style="red" if count else "")
    return table


def _invariants_table(results: Sequence[InvariantResult]) -> Table:
    table = Table(title="invariants")
    table.add_column("invariant")
    table.add_column("kept")
    table.add_column("why not")
    for result in results:
        kept = Text("yes", "green") if result.passed else Text("no", "bold red")
        table.add_row(result.text, kept, result.reason)
    return table


def _failovers_table(measures: Sequence[FailoverMeasure]) -> Table:
    table = Table(title="failovers (measured / reported)")
    for column in ("operation", "RPO records", "RPO s (lost span)", "RTO s", "diverged"):
        table.add_column(column)
    for m in measures:
        table.add_row(
            f"{m.operation} {m.from_region} -> {m.to_region}",
            f"{m.rpo_records} / {_show(m.reported_rpo_records)}",
            _show(m.rpo_seconds),
            f"{_show(m.rto_seconds)} / {_show(m.reported_rto_seconds)}",
            str(m.diverged_records),
        )
    return table


def _findings_table(findings: Sequence[Finding]) -> Table:
    table = Table(title="findings (first of each anomaly)")
    for column in ("anomaly", "topic-partition@offset", "value", "region", "who", "detail"):
        table.add_column(column)
    for f in findings:
        table.add_row(f.anomaly.value, _where(f), f.value, f.region, f.actor, f.detail)
    return table


def _where(finding: Finding) -> str:
    return f"{finding.topic}-{finding.partition}@{finding.offset}"


def _show(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
