"""The verifier: a run's history in, findings and a verdict out (pure).

After Jepsen's Kafka checker (jepsen/tests/kafka.clj): build each partition's log from every
claim the history makes, then look for the anomaly classes its docstring defines — lost-write,
duplicate, unseen, poll-skip, nonmonotonic-poll, inconsistent-offsets — and add what a
cross-region drill needs: group resume exactness across a failover (reread, missed), each
failover's RPO and RTO measured from the clients' side, and mirrors compared with their
sources. Order of work matters once: failovers are measured first, because the records they
lost (and the offsets a new primary reuses) must leave the logs before the log checks run.

The verdict passes when every invariant the drill declares holds and the history is whole;
the findings name each anomalous record (topic, partition, offset, value) whatever passes.
No I/O and no clock: the runner reads the history (`chaos.history.read_history`) and stores
the verdict (`chaos.report`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chaos.checks.failovers import FailoverMeasure, failovers, measure_all
from chaos.checks.logs import (
    Acked,
    acknowledged,
    build_logs,
    duplicates,
    inconsistent_offsets,
    lost_writes,
    primary_contents,
    unseen,
)
from chaos.checks.mirrors import MirrorPair, mirror_findings, mirror_lag_offsets
from chaos.checks.polls import periods, poll_findings
from chaos.findings import Anomaly, Finding
from chaos.invariants import Invariant, InvariantResult, Metric, evaluate
from chaos.model import EventKind, History, SendStatus


@dataclass(frozen=True)
class Scope:
    """What the runner knows that the history does not say."""

    invariants: tuple[Invariant, ...] = ()
    mirrors: tuple[MirrorPair, ...] = ()  # flows running at the final read
    primary: str | None = None  # default: where the last failover went, else the first send


@dataclass(frozen=True)
class LagPoint:
    """One sample of a flow's mirror lag, `t_s` seconds after the history began."""

    t_s: float
    lag_records: int
    lag_seconds: float


@dataclass(frozen=True)
class Verdict:
    findings: tuple[Finding, ...]
    anomalies: Mapping[str, int]  # every anomaly name -> count
    metrics: Mapping[str, Metric]
    failovers: tuple[FailoverMeasure, ...]
    invariants: tuple[InvariantResult, ...]
    truncated: bool  # the history dropped rows: nothing can be promised
    lag: Mapping[str, tuple[LagPoint, ...]] = field(default_factory=dict)  # flow -> samples

    @property
    def passed(self) -> bool:
        return not self.truncated and all(result.passed for result in self.invariants)


def verify(history: History, scope: Scope = Scope()) -> Verdict:
    acked = acknowledged(history)
    measures, excluded, rpo_losses = measure_all(history, acked)
    primary = primary_contents(history, scope.primary or final_primary(history))
    logs = build_logs(history, acked, primary, excluded)
    lost = list(lost_writes(history, acked, primary, excluded))
    lost_values = {finding.value for finding in lost}
    polled = periods(history, excluded)
    findings = [
        *lost,
        *rpo_losses,
        *unseen(history, acked, lost_values | excluded),
        *duplicates(logs),
        *inconsistent_offsets(logs),
        *poll_findings(history, polled, logs, lost_values),
    ]
    for pair in scope.mirrors:
        findings.extend(mirror_findings(history.contents, pair))
    anomalies = _summary(findings)
    metrics = _metrics(history, acked, anomalies, measures, scope.mirrors)
    return Verdict(
        findings=tuple(findings),
        anomalies=anomalies,
        metrics=metrics,
        failovers=tuple(measures),
        invariants=tuple(evaluate(invariant, metrics) for invariant in scope.invariants),
        truncated=history.truncated,
        lag=lag_over_time(history),
    )


def lag_over_time(history: History) -> dict[str, tuple[LagPoint, ...]]:
    """Every flow's lag as the runner sampled it, in time order."""
    if not history.events:
        return {}
    start_ms = min(event.time_ms for event in history.events)
    series: dict[str, list[LagPoint]] = {}
    for event in history.events:
        if event.kind is EventKind.LAG_SAMPLED:
            point = LagPoint(
                (event.time_ms - start_ms) / 1000,
                int(event.detail["lag_records"]),
                int(event.detail["lag_ms"]) / 1000,
            )
            series.setdefault(str(event.detail["flow"]), []).append(point)
    return {flow: tuple(points) for flow, points in series.items()}


def final_primary(history: History) -> str | None:
    """The region clients should write to at the end, as far as the history tells."""
    done = failovers(history.events)
    if done:
        return done[-1].to_region
    return history.sends[0].region if history.sends else None


def _summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(finding.anomaly for finding in findings)
    return {anomaly.value: counts[anomaly] for anomaly in Anomaly}


def _metrics(
    history: History,
    acked: Mapping[str, Acked],
    anomalies: Mapping[str, int],
    measures: Sequence[FailoverMeasure],
    mirrors: Sequence[MirrorPair],
) -> dict[str, Metric]:
    last = {outcome.value: outcome.status for outcome in history.outcomes}
    statuses = Counter(last.get(send.value, SendStatus.UNKNOWN) for send in history.sends)
    return {
        "records_sent": len(history.sends),
        "records_acked": len(acked),
        "records_unknown": statuses[SendStatus.UNKNOWN],
        "records_failed": statuses[SendStatus.ERROR],
        "records_polled": len(history.polls),
        "records_lost": anomalies[Anomaly.LOST_WRITE] + anomalies[Anomaly.RPO_LOSS],
        "records_duplicated": anomalies[Anomaly.DUPLICATE],
        "rpo_records": sum(m.rpo_records for m in measures),
        "reported_rpo_records": _total([m.reported_rpo_records for m in measures]),
        "rpo_observed_records": sum(m.observed_rpo_records for m in measures),
        "rto_seconds": _longest([m.rto_seconds for m in measures]),
        "reported_rto_seconds": _longest([m.reported_rto_seconds for m in measures]),
        "failovers": len(measures),
        "mirror_lag_offsets": (
            sum(mirror_lag_offsets(history.contents, pair) for pair in mirrors) if mirrors else None
        ),
        **_lag_maxima(history),
        **anomalies,
    }


def _lag_maxima(history: History) -> dict[str, Metric]:
    """The worst mirror lag the runner sampled during the run (None: never sampled)."""
    samples = [e.detail for e in history.events if e.kind is EventKind.LAG_SAMPLED]
    if not samples:
        return {"max_lag_records": None, "max_lag_seconds": None}
    return {
        "max_lag_records": max(int(s["lag_records"]) for s in samples),
        "max_lag_seconds": max(int(s["lag_ms"]) for s in samples) / 1000,
    }


def _total(values: Sequence[int | None]) -> int | None:
    return None if None in values else sum(v for v in values if v is not None)


def _longest(values: Sequence[float | None]) -> float | None:
    if not values or None in values:
        return None
    return max(v for v in values if v is not None)
