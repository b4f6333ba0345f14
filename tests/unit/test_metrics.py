"""The metric catalog: Prometheus conventions, the names the real exporter serves over HTTP,
the documentation and Grafana dashboard generated from it, and the few metrics recorded
outside a status object (replication latency, failover operations)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus._mapping import map_unit
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from broker.metrics import catalog
from broker.metrics.catalog import METRICS, Kind, MetricSpec
from broker.metrics.docs import grafana_dashboard, grafana_json, markdown_table
from broker.metrics.endpoint import MetricsEndpoint
from broker.metrics.instruments import histogram, observe
from mirror.copy.latency import ReplicationLatency
from mirror.failover.journal import Journal, count_operations
from mirror.failover.model import OperationKind, Outcome
from tests.unit.test_failover_journal import EU, new_plan, run_steps

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"^regionlink_[a-z0-9]+(_[a-z0-9]+)*$")
LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
BASE_UNITS = {"", "seconds", "bytes"}  # what `map_unit` makes of the catalog's units


@pytest.mark.parametrize("spec", METRICS, ids=lambda spec: spec.name)
def test_names_follow_prometheus_conventions(spec: MetricSpec) -> None:
    assert NAME.match(spec.name), spec.name
    assert spec.name.endswith("_total") == (spec.kind == Kind.COUNTER), "only counters: _total"
    base = spec.name.removesuffix("_total")
    unit = map_unit(spec.unit)
    assert unit in BASE_UNITS, f"{spec.unit!r} is not a base unit (seconds, bytes, a count)"
    if unit:
        assert base.endswith(f"_{unit}"), f"{spec.name} must end in its unit, _{unit}"
    for word in ("milliseconds", "_ms", "kilobytes", "_count", "_sum", "_bucket"):
        assert word not in spec.name
    for label in (*spec.labels, *spec.by):
        assert LABEL.match(label) and label not in ("le", "quantile"), label
    assert set(spec.by) <= {*spec.labels, "instance"}, "the dashboard groups by known labels"
    assert bool(spec.buckets) == (spec.kind == Kind.HISTOGRAM)
    assert list(spec.buckets) == sorted(set(spec.buckets))
    assert spec.help.endswith(".") and spec.aggregate in ("sum", "max", "min")


def test_names_are_unique() -> None:
    names = [spec.name for spec in METRICS]
    assert len(names) == len(set(names))


def test_the_exporter_serves_every_catalog_name_over_http() -> None:
    endpoint = MetricsEndpoint("test", "one", ("127.0.0.1", 0))
    try:
        for spec in METRICS:
            labels = {label: "x" for label in spec.labels}
            if spec.kind == Kind.HISTOGRAM:
                histogram(endpoint.meter, spec).record(0.02, labels)
            else:
                observe(endpoint.meter, spec, lambda labels=labels: [(labels, 3)])
        assert endpoint.url is not None and endpoint.url.endswith("/metrics")
        with urllib.request.urlopen(endpoint.url, timeout=5) as response:
            text = response.read().decode()
    finally:
        endpoint.close()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for spec in METRICS:
        family = families[spec.name.removesuffix("_total")]
        assert (family.type, family.documentation) == (spec.kind.value, spec.help)
        suffixes = {
            Kind.COUNTER: {"_total"},
            Kind.GAUGE: {""},
            Kind.HISTOGRAM: {"_bucket", "_count", "_sum"},
        }[spec.kind]
        assert {s.name.removeprefix(family.name) for s in family.samples} == suffixes
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(spec.labels), spec.name
    assert "target_info" in families, "the process is named once, not on every series"


def test_the_histogram_has_the_catalog_buckets() -> None:
    reader = InMemoryMetricReader()
    endpoint = MetricsEndpoint("worker", "w", readers=[reader])
    latency = ReplicationLatency(histogram(endpoint.meter, catalog.REPLICATION_LATENCY), "a->b")
    now_ms = int(time.time() * 1000)
    latency.acked([now_ms - 30, now_ms - 2_000, -1, now_ms + 60_000])  # -1: no timestamp
    data = reader.get_metrics_data()
    endpoint.close()
    assert data is not None
    (metric,) = [m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]
    (point,) = metric.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert dict(point.attributes or {}) == {"flow": "a->b"}
    assert tuple(point.explicit_bounds) == catalog.LATENCY_BUCKETS_S
    assert point.count == 3, "a batch without a timestamp is not measured"
    assert point.min == 0.0, "a clock ahead of ours counts as 0, not negative"
    assert 2.0 <= point.max < 3.0 and 2.0 <= point.sum < 3.0


def test_failover_operations_are_counted_from_the_journal(tmp_path: Path) -> None:
    assert count_operations(tmp_path) == {}, "no journal, no operations (and none created)"
    assert not (tmp_path / "failover.db").exists()
    journal = Journal(tmp_path)
    journal.acquire("test")
    plan = new_plan(journal, OperationKind.SWITCHOVER, EU)
    done = journal.begin(plan)
    run_steps(journal, done, len(plan.steps))
    journal.finish(done)
    running = journal.begin(new_plan(journal, OperationKind.SWITCHOVER, "us-east"))
    run_steps(journal, running, 1)
    journal.close()
    assert count_operations(tmp_path) == {
        (OperationKind.SWITCHOVER, Outcome.DONE): 1,
        (OperationKind.SWITCHOVER, Outcome.RUNNING): 1,
    }


def test_the_docs_table_is_the_catalog() -> None:
    text = (DOCS / "observability.md").read_text()
    start = text.index("<!-- metrics-table: generated by `regionlink metrics list` -->\n")
    end = text.index("<!-- end of metrics-table -->")
    table = text[text.index("\n", start) + 1 : end]
    assert table == markdown_table(), "run: regionlink metrics list, and paste it in"


def test_the_committed_grafana_dashboard_is_generated_from_the_catalog() -> None:
    committed = (DOCS / "grafana" / "regionlink.json").read_text()
    assert committed == grafana_json(), "run: regionlink metrics grafana > docs/grafana/..."


def test_the_dashboard_has_a_panel_per_metric_without_overlaps() -> None:
    dashboard = grafana_dashboard()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    charts = [p for p in panels if p["type"] == "timeseries"]
    assert [p["title"] for p in charts] == [spec.name for spec in METRICS]
    for panel in charts:
        assert all(panel["title"] in target["expr"] for target in panel["targets"])
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']} overlaps another"
                cells.add((x, y))
    assert json.loads(grafana_json()) == dashboard


def test_drill_steps_are_counted_from_the_state_dir(tmp_path: Path) -> None:
    from mirror.runtime.drill_steps import STEPS_FILE, count_steps, record_step

    assert count_steps(tmp_path) == {}
    record_step(tmp_path, "wan-partition", "cut", True)
    record_step(tmp_path, "wan-partition", "cut", True)
    record_step(tmp_path, "wan-partition", "failover", False)
    with (tmp_path / STEPS_FILE).open("a") as handle:
        handle.write('{"drill": "torn')  # a runner killed mid-line
    assert count_steps(tmp_path) == {
        ("wan-partition", "cut", "ok"): 2,
        ("wan-partition", "failover", "failed"): 1,
    }
