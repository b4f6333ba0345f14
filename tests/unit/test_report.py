"""The report: the drill-run JSON shape, a Rich rendering, the verdict kept in the run's file."""

from __future__ import annotations

import random
from pathlib import Path

from rich.console import Console

from chaos.history import HistoryWriter, read_history
from chaos.invariants import Invariant
from chaos.model import EventKind, History
from chaos.report import (
    FINDINGS_PER_ANOMALY,
    load_verdict,
    render,
    save_verdict,
    sparkline,
    verdict_json,
)
from chaos.verifier import Scope, Verdict, verify
from tests.unit.history_sim import build, simulate
from tests.unit.test_verifier import drop_acked


def _failed_run() -> Verdict:
    world = simulate(11, 80, 30)
    entries, contents = drop_acked(world, random.Random(2)) or ([], [])
    history = build(entries, contents)
    invariants = (Invariant.parse("no lost-write"), Invariant.parse("rto_seconds < 5"))
    return verify(history, Scope(invariants=invariants, mirrors=(world.mirror,)))


def test_json_has_the_drill_run_shape_and_names_the_record() -> None:
    verdict = _failed_run()
    data = verdict_json(verdict)
    assert data["passed"] is False
    assert data["anomalies"]["lost-write"] == 1 and set(data["anomalies"]) >= {
        "duplicate",
        "unseen",
    }
    assert data["records_lost"] == 1 and data["records_duplicated"] == 0
    assert data["rpo_records"] == 0 and data["rto_seconds"] is not None
    assert data["records_acked"] == verdict.metrics["records_acked"]
    (finding,) = data["findings"]
    assert finding["anomaly"] == "lost-write"
    assert {"topic", "partition", "offset", "value"} <= set(finding)
    assert data["invariants"][0] == {
        "text": "no lost-write",
        "passed": False,
        "reason": "lost-write = 1",
    }
    assert data["failovers"][0]["operation"] == "switchover"


def test_json_caps_the_findings_of_each_anomaly() -> None:
    world = simulate(5, 200, None)
    history = build(world.entries, [])
    # A group was assigned the partitions but polled nothing: every acked record is unseen.
    assigned = History(
        sends=history.sends, outcomes=history.outcomes, assignments=history.assignments
    )
    assert assigned.assignments
    verdict = verify(assigned)
    assert verdict.anomalies["unseen"] > FINDINGS_PER_ANOMALY
    data = verdict_json(verdict)
    assert len(data["findings"]) == FINDINGS_PER_ANOMALY
    assert data["findings_omitted"] == verdict.anomalies["unseen"] - FINDINGS_PER_ANOMALY


def test_the_verdict_is_stored_in_the_run_file_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    HistoryWriter(path).close()
    verdict = _failed_run()
    save_verdict(path, verdict)
    save_verdict(path, verdict)  # a second verification replaces the first
    assert load_verdict(path) == verdict


def test_the_rendering_shows_the_verdict_and_the_record() -> None:
    verdict = _failed_run()
    console = Console(width=200, record=True)
    console.print(render(verdict))
    text = console.export_text()
    finding = verdict.findings[0]
    assert "FAILED" in text and "lost-write" in text
    assert f"{finding.topic}-{finding.partition}@{finding.offset}" in text
    assert "rto_seconds < 5" in text and "switchover east -> west" in text


def test_lag_over_time_is_kept_reported_and_drawn(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    samples = [0, 40, 400, 900, 300, 0]  # a paused mirror catching up
    with HistoryWriter(path) as writer:
        for records in samples:
            detail = {"flow": "east:west", "lag_records": records, "lag_ms": records * 10}
            writer.event(EventKind.LAG_SAMPLED, detail)
    verdict = verify(read_history(path))
    points = verdict.lag["east:west"]
    assert [p.lag_records for p in points] == samples
    assert [p.lag_seconds for p in points] == [r / 100 for r in samples]
    assert points == tuple(sorted(points, key=lambda p: p.t_s)) and points[0].t_s == 0
    assert verdict.metrics["max_lag_records"] == 900
    assert verdict_json(verdict)["lag"]["east:west"][3] == {
        "t_s": points[3].t_s,
        "lag_records": 900,
        "lag_seconds": 9.0,
    }
    save_verdict(path, verdict)
    assert load_verdict(path).lag == verdict.lag
    console = Console(width=200, record=True)
    console.print(render(verdict))
    text = console.export_text()
    assert "mirror lag over time" in text and "▁▁▄█▃▁" in text and "9.0" in text


def test_a_sparkline_keeps_the_peaks_of_a_long_series() -> None:
    values = [0.0] * 500
    values[250] = 7.0
    line = sparkline(values, width=50)
    assert len(line) == 50 and line.count("█") == 1 and set(line) == {"▁", "█"}
    assert sparkline([]) == "" and sparkline([0, 0]) == "▁▁"
