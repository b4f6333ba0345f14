"""The dashboard's parts without a topology: latency quantiles from real Prometheus text, the
chart series, a waterfall from the real span store, trace queries, the token, and the pages
served by the real app (Starlette's test client) over a run saved by the drill code."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, format_trace_id
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from starlette.datastructures import QueryParams
from starlette.testclient import TestClient

from broker.spanstore import SPANS_FILE, SpanStore, SqliteSpanExporter
from chaos.drill.runner import RunResult, StepResult
from chaos.drill.runs import save_run
from chaos.verifier import LagPoint, Scope, verify
from mirror.dashboard.app import create_app
from mirror.dashboard.auth import is_loopback
from mirror.dashboard.config import DashboardConfig
from mirror.dashboard.latency import HISTOGRAM, LatencyWindow, histogram_buckets, quantile
from mirror.dashboard.series import FlowSeries
from mirror.dashboard.views.drills import run_dir
from mirror.dashboard.views.traces import parse_query
from mirror.dashboard.waterfall import layout
from mirror.runtime.state import StateDB
from tests.unit.history_sim import build, simulate

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def _worker_metrics(observations: list[float], partitions: int = 2) -> str:
    """What a worker serves: the latency histogram, one label set per partition."""
    registry = CollectorRegistry()
    histogram = Histogram(
        HISTOGRAM.removesuffix("_seconds"),
        "replication latency",
        ["partition"],
        unit="seconds",
        buckets=BUCKETS,
        registry=registry,
    )
    for i, seconds in enumerate(observations):
        histogram.labels(partition=str(i % partitions)).observe(seconds)
    return generate_latest(registry).decode()


def test_latency_quantiles_come_from_the_histogram_buckets_of_every_partition() -> None:
    text = _worker_metrics([0.02] * 90 + [0.4] * 10)
    buckets = histogram_buckets(text)
    assert buckets[float("inf")] == 100 and buckets[0.025] == 90
    p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
    assert p50 is not None and 0.01 < p50 <= 0.025
    assert p99 is not None and 0.25 < p99 <= 0.5
    assert quantile(0.5, {}) is None and quantile(0.5, {float("inf"): 0}) is None
    assert quantile(0.99, {1.0: 0, float("inf"): 5}) == 1.0  # past the last bound: that bound


def test_the_latency_window_measures_what_was_observed_lately_and_survives_a_restart() -> None:
    window = LatencyWindow(window_s=10)
    assert window.quantiles_ms("a:b") == (None, None)
    seen = [0.4] * 50
    window.observe("a:b", 0, histogram_buckets(_worker_metrics(seen)))
    seen += [0.003] * 200
    window.observe("a:b", 5, histogram_buckets(_worker_metrics(seen)))
    p50, p99 = window.quantiles_ms("a:b")
    assert p50 is not None and p99 is not None and p50 <= 5 and p99 <= 5  # not the older ones
    for t, more in ((20, 10), (21, 20)):
        seen += [0.2] * more
        window.observe("a:b", t, histogram_buckets(_worker_metrics(seen)))
    # Since t=5, the newest at or before 10 s ago: only the 0.2 s observations.
    assert window.quantiles_ms("a:b")[0] == pytest.approx(175, abs=75)
    window.observe("a:b", 22, histogram_buckets(_worker_metrics([0.2])))  # counts went down
    assert window.quantiles_ms("a:b") == (None, None)


def test_series_keep_every_flow_aligned_and_bounded() -> None:
    series = FlowSeries(capacity=3)
    series.append(1, {"a:b": {"lag_records": 5}})
    series.append(2, {"a:b": {"lag_records": 7}, "b:a": {"lag_records": 1}})
    series.append(3, {})
    series.append(4, {"b:a": {"lag_records": 2}})
    data = series.to_json()
    assert data["t"] == [2, 3, 4]
    assert data["flows"]["a:b"]["lag_records"] == [7, None, None]
    assert data["flows"]["b:a"]["lag_records"] == [1, None, 2]
    assert series.to_json("b:a")["flows"].keys() == {"b:a"}


def _tracer(path: Path, service: str, region: str) -> TracerProvider:
    resource = Resource.create({"service.name": service, "regionlink.region": region})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(SqliteSpanExporter(path, service)))
    return provider


def test_a_waterfall_orders_hops_across_regions_and_measures_each_delay(tmp_path: Path) -> None:
    path = tmp_path / SPANS_FILE
    app = _tracer(path, "orders-app", "us-east").get_tracer("t")
    mirror = _tracer(path, "regionlink-mirror", "us-east").get_tracer("t")
    consumer = _tracer(path, "billing", "eu-west").get_tracer("t")
    with app.start_as_current_span("send orders", kind=SpanKind.PRODUCER) as sent:
        context = sent.get_span_context()
        time.sleep(0.002)
    time.sleep(0.003)
    with mirror.start_as_current_span("mirror batch", links=[Link(context)]) as batch:
        time.sleep(0.002)
    with consumer.start_as_current_span(
        "process orders", kind=SpanKind.CONSUMER, links=[Link(batch.get_span_context())]
    ):
        pass
    trace_id = format_trace_id(context.trace_id)
    drawn = layout(trace_id, SpanStore(path).trace(trace_id))
    names = [row["name"] for row in drawn["rows"]]
    assert names == ["send orders", "mirror batch"]  # the consumer links to the batch's trace
    first, second = drawn["rows"]
    assert first["hop_delay_ms"] is None and first["own"] and first["left_pct"] == 0
    assert second["hop_delay_ms"] >= 5 and second["gap_ms"] >= 3 and not second["own"]
    assert second["links"][0]["here"] and second["left_pct"] > 50
    batch_trace = format_trace_id(batch.get_span_context().trace_id)
    followed = layout(batch_trace, SpanStore(path).trace(batch_trace))
    assert [r["region"] for r in followed["rows"]] == ["us-east", "eu-west"]
    assert followed["regions"] == ["us-east", "eu-west"]
    assert layout("0" * 32, [])["rows"] == []


def test_trace_queries_take_relative_and_absolute_times_and_name_a_bad_parameter() -> None:
    now = 10_000 * 10**9
    query = parse_query(QueryParams("key=k1&since=-15m&min_ms=2.5&limit=9999"), now)
    assert query.key == "k1" and query.topic is None and query.min_ms == 2.5
    assert query.since_ns == now - 15 * 60 * 10**9 and query.limit == 500
    assert parse_query(QueryParams("until=1970-01-01T00:00:00Z"), now).until_ns == 0
    assert not parse_query(QueryParams("topic="), now).any_filter()
    with pytest.raises(ValueError, match="min_ms"):
        parse_query(QueryParams("min_ms=fast"), now)
    with pytest.raises(ValueError, match="not a time"):
        parse_query(QueryParams("since=yesterday"), now)


def test_only_loopback_addresses_go_without_a_token() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "dashboard.example"]))


def test_a_run_is_named_by_its_directory_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "runs" / "drill-1").mkdir(parents=True)
    (tmp_path / "runs" / "drill-1" / "run.json").write_text("{}")
    (tmp_path / "run.json").write_text("{}")
    assert run_dir(tmp_path / "runs", "drill-1") == tmp_path / "runs" / "drill-1"
    for name in ("..", "../runs/drill-1", ".", "", "drill-2"):
        assert run_dir(tmp_path / "runs", name) is None, name


def _saved_run(runs_dir: Path) -> str:
    world = simulate(11, 80, 30)
    verdict = verify(build(world.entries, []), Scope(mirrors=(world.mirror,)))
    lag = {"us-east:eu-west": (LagPoint(0.0, 0, 0.0), LagPoint(1.0, 40, 0.5))}
    run = runs_dir / "switchover-demo-seed3"
    run.mkdir(parents=True)
    steps = [StepResult(0.5, "switchover eu-west", True, "rpo 0 records")]
    save_run(
        RunResult(
            "switchover-demo", "demo.toml", 3, run, dataclasses.replace(verdict, lag=lag), steps
        )
    )
    return run.name


def test_the_pages_read_the_runs_the_store_and_the_journal_and_only_read(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    name = _saved_run(runs)
    state = tmp_path / "state"
    state.mkdir()
    client = TestClient(create_app(DashboardConfig(state, runs)))

    listed = client.get("/drills")
    assert listed.status_code == 200 and f'href="/drills/{name}"' in listed.text
    shown = client.get(f"/drills/{name}")
    assert shown.status_code == 200 and "switchover eu-west" in shown.text
    assert '"us-east:eu-west"' in shown.text  # the lag chart's data
    report = client.get(f"/api/drills/{name}").json()
    assert report["lag"]["us-east:eu-west"][1]["lag_records"] == 40
    assert client.get("/drills/nope").status_code == 404
    assert client.get("/api/drills/nope").json() == {"error": "no drill run nope"}

    assert "No failover operation" in client.get("/failovers").text
    assert client.get("/api/failovers").json() == {"operations": []}
    assert client.get("/failovers/1").status_code == 404
    traces = client.get("/api/traces?key=k").json()
    assert traces["traces"] == [] and "no spans recorded yet" in traces["note"]
    assert client.get("/api/traces?min_ms=x").status_code == 400
    assert client.get("/traces?since=never").status_code == 400
    assert client.get("/api/status").status_code == 503  # no sample before the sampler runs
    assert client.post("/").status_code == 405
    assert not (state / SPANS_FILE).exists() and not (state / "failover.db").exists()
    assert client.get("/static/uplot/uPlot.iife.min.js").status_code == 200


def test_with_a_token_every_request_needs_it(tmp_path: Path) -> None:
    client = TestClient(create_app(DashboardConfig(tmp_path, tmp_path, token="t0k")))
    assert client.get("/drills").status_code == 401
    assert client.get("/static/dashboard.css").status_code == 401
    assert client.get("/drills", headers={"Authorization": "Bearer t0k"}).status_code == 200
    welcome = client.get("/drills?token=t0k&x=1", follow_redirects=False)
    assert welcome.status_code == 303 and welcome.headers["location"] == "/drills?x=1"
    assert client.get("/drills").status_code == 200  # the cookie it set


def _dashboard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror.cli", "dashboard", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(done: subprocess.CompletedProcess[str], needle: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().count("\n") == 0 and needle in done.stderr, done.stderr


def test_what_cannot_be_served_is_said_in_one_line(tmp_path: Path) -> None:
    _one_line(_dashboard("--state-dir", str(tmp_path)), f"no topology in {tmp_path}")
    StateDB(tmp_path).db.close()  # the state database `regionlink up` leaves
    _one_line(_dashboard("--state-dir", str(tmp_path), "--listen", "8080"), "--listen")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _dashboard("--state-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}")
    _one_line(done, f"cannot listen on 127.0.0.1:{port}")
