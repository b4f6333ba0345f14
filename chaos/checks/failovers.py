"""Each failover measured from the history, to set beside the report it printed.

The runner records `failover-started` and `failover-finished` (the operation's `--json`
report) around every switchover, forced failover or failback; only operations that finished
`done` moved the primary role. For each, from old primary A to new primary B:

- RPO: the records sent to A since the previous operation finished that A held (acked there,
  polled there, or in A's final read) and B does not hold (not in B's final read, never polled
  or acked there). The acknowledged ones are `rpo-loss` findings and the measured RPO, to
  compare with the report's `rpo_records`; the others were never promised. All of them leave
  the logs the other checks judge, so one loss is not also a lost-write, and the offsets B
  reuses after a forced failover are not inconsistent-offsets. B's holdings are exact only
  when the runner read B's final contents.
- RTO, as a client sees it: from the last acknowledgement by A before B's first
  acknowledgement at or after the operation's start, to that first acknowledgement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.checks.logs import Acked
from chaos.findings import Anomaly, Finding
from chaos.model import Event, EventKind, History


@dataclass(frozen=True)
class Failover:
    operation: str
    from_region: str
    to_region: str
    started_ms: int
    finished_ms: int
    report: Mapping[str, Any]


@dataclass(frozen=True)
class FailoverMeasure:
    operation: str
    from_region: str
    to_region: str
    reported_rpo_records: int | None
    reported_rto_seconds: float | None
    rpo_records: int  # acknowledged by the old primary, absent on the new one
    diverged_records: int  # held by the old primary, absent on the new one, acked or not
    lost_first_acked_ms: int | None  # the oldest and newest of those lost, by ack time
    lost_last_acked_ms: int | None
    rto_seconds: float | None
    # of rpo_records, those past the old primary's ends as last observed (the report's loss
    # manifest): written after the observation, so no report could have named them
    unobserved_rpo_records: int = 0

    @property
    def observed_rpo_records(self) -> int:
        """What the report should have counted: the measured loss it could observe."""
        return self.rpo_records - self.unobserved_rpo_records

    @property
    def rpo_seconds(self) -> float | None:
        """The span of acknowledged writes lost (0 when none)."""
        if self.lost_first_acked_ms is None or self.lost_last_acked_ms is None:
            return None if self.rpo_records else 0.0
        return (self.lost_last_acked_ms - self.lost_first_acked_ms) / 1000


def failovers(events: Sequence[Event]) -> list[Failover]:
    """Operations that finished `done`, each with the start recorded before it."""
    found: list[Failover] = []
    started_ms: int | None = None
    for event in events:
        if event.kind is EventKind.FAILOVER_STARTED:
            started_ms = event.time_ms
        elif event.kind is EventKind.FAILOVER_FINISHED:
            report = event.detail
            if report.get("outcome") == "done":
                found.append(
                    Failover(
                        str(report["operation"]),
                        str(report["from"]),
                        str(report["to"]),
                        event.time_ms if started_ms is None else started_ms,
                        event.time_ms,
                        report,
                    )
                )
            started_ms = None
    return found


def holdings(history: History, acked: Mapping[str, Acked]) -> dict[str, set[str]]:
    """region -> every value the history shows that region's logs held."""
    held: dict[str, set[str]] = {}
    for a in acked.values():
        held.setdefault(a.region, set()).add(a.value)
    for poll in history.polls:
        held.setdefault(poll.region, set()).add(poll.value)
    for contents in history.contents:
        held.setdefault(contents.region, set()).update(r.value for r in contents.records)
    return held


def diverged(
    history: History, held: Mapping[str, set[str]], failover: Failover, since_ms: int | None
) -> set[str]:
    """Values sent to the old primary in the operation's window that only it held."""
    old, new = held.get(failover.from_region, set()), held.get(failover.to_region, set())
    return {
        send.value
        for send in history.sends
        if send.region == failover.from_region
        and (since_ms is None or send.sent_ms > since_ms)
        and send.sent_ms <= failover.finished_ms
        and send.value in old
        and send.value not in new
    }


def measure(
    failover: Failover, lost_values: set[str], acked: Mapping[str, Acked]
) -> tuple[FailoverMeasure, list[Finding]]:
    lost = sorted((acked[v] for v in lost_values if v in acked), key=lambda a: a.acked_ms)
    findings = [
        Finding(
            Anomaly.RPO_LOSS,
            a.topic,
            a.partition,
            a.offset,
            a.value,
            region=a.region,
            actor=a.producer,
            detail=f"{failover.operation} {failover.from_region} -> {failover.to_region}",
        )
        for a in lost
    ]
    report = failover.report
    return (
        FailoverMeasure(
            failover.operation,
            failover.from_region,
            failover.to_region,
            report.get("rpo_records"),
            report.get("rto_seconds"),
            rpo_records=len(lost),
            diverged_records=len(lost_values),
            lost_first_acked_ms=lost[0].acked_ms if lost else None,
            lost_last_acked_ms=lost[-1].acked_ms if lost else None,
            rto_seconds=rto_seconds(failover, acked),
            unobserved_rpo_records=_unobserved(report, lost),
        ),
        findings,
    )


def _unobserved(report: Mapping[str, Any], lost: list[Acked]) -> int:
    """Lost records past the manifest's observed end of their partition; a partition the
    manifest does not name lost nothing the observation saw."""
    observed_last = {
        (entry["topic"], entry["partition"]): int(entry["last_offset"])
        for entry in report.get("loss_manifest", [])
    }
    return sum(1 for a in lost if a.offset > observed_last.get((a.topic, a.partition), -1))


def rto_seconds(failover: Failover, acked: Mapping[str, Acked]) -> float | None:
    first_new = min(
        (
            a.acked_ms
            for a in acked.values()
            if a.region == failover.to_region and a.acked_ms >= failover.started_ms
        ),
        default=None,
    )
    if first_new is None:
        return None
    last_old = max(
        (
            a.acked_ms
            for a in acked.values()
            if a.region == failover.from_region and a.acked_ms <= first_new
        ),
        default=None,
    )
    return None if last_old is None else (first_new - last_old) / 1000


def measure_all(
    history: History, acked: Mapping[str, Acked]
) -> tuple[list[FailoverMeasure], set[str], list[Finding]]:
    """(a measure per failover, every value failovers lost, the rpo-loss findings)."""
    held = holdings(history, acked)
    measures: list[FailoverMeasure] = []
    excluded: set[str] = set()
    findings: list[Finding] = []
    since_ms: int | None = None
    for failover in failovers(history.events):
        lost = diverged(history, held, failover, since_ms)
        one, found = measure(failover, lost, acked)
        measures.append(one)
        excluded |= lost
        findings.extend(found)
        since_ms = failover.finished_ms
    return measures, excluded, findings
