"""The worker control plane end to end on loopback: gRPC status and pause/resume, the Rich
rendering of a status, and OpenTelemetry metrics read from the status object."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from rich.console import Console

from broker.metrics.endpoint import MetricsEndpoint
from mirror.control.client import ControlUnavailable, fetch_status, pause_flow, resume_flow
from mirror.control.metrics import json_lines_reader, observe_worker
from mirror.control.render import render_status
from mirror.control.server import ControlServer
from mirror.status import FlowStatus, LostRange, PartitionState, PartitionStatus, WorkerStatus

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grpc.aio runs on asyncio only


def make_status() -> WorkerStatus:
    flow = FlowStatus(
        "us",
        "eu",
        state="running",
        member_index=0,
        member_count=2,
        topics=["orders"],
        groups_checkpointed=3,
        groups_synced=2,
        last_checkpoint_ms=1_700_000_000_500,
    )
    flow.partitions[("orders", 0)] = PartitionStatus(
        "orders",
        0,
        "us.orders",
        state=PartitionState.COPYING,
        source_position=1_200,
        source_end=5_321,
        target_end=1_150,
        lag_records=4_121,
        lag_ms=9_876,
        records_copied=1_150,
        bytes_copied=115_000,
        records_per_s=123.456,
        lost=[LostRange(0, 50, 1_700_000_000_000)],
    )
    flow.partitions[("orders", 1)] = PartitionStatus(
        "orders",
        1,
        "us.orders",
        state=PartitionState.RETRYING,
        source_position=700,
        source_end=700,
        target_end=700,
        records_copied=700,
        bytes_copied=70_000,
        last_error="NOT_LEADER_OR_FOLLOWER from eu broker 2",
    )
    status = WorkerStatus("worker-a", 1_700_000_000_000)
    status.flows[flow.name] = flow
    return status


class Flows:
    """Pause/resume callbacks that record their calls and refuse unknown flows."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def pause(self, source: str, target: str) -> str | None:
        return self._act("pause", source, target)

    async def resume(self, source: str, target: str) -> str | None:
        return self._act("resume", source, target)

    def _act(self, action: str, source: str, target: str) -> str | None:
        self.calls.append((action, source, target))
        return None if (source, target) == ("us", "eu") else f"no flow {source}->{target}"


@pytest.fixture
def status() -> WorkerStatus:
    return make_status()


@pytest.fixture
def flows() -> Flows:
    return Flows()


@pytest.fixture
async def address(status: WorkerStatus, flows: Flows) -> AsyncIterator[str]:
    server = ControlServer(status, flows.pause, flows.resume)
    port = await server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_fetch_status_equals_as_dict(address: str, status: WorkerStatus) -> None:
    fetched = await fetch_status(address)
    assert fetched == status.as_dict()
    assert list(fetched["flows"][0]["partitions"][0]) == list(
        status.as_dict()["flows"][0]["partitions"][0]
    ), "keys come back in as_dict order, so printed JSON looks the same"
    assert json.loads(json.dumps(fetched)) == fetched


async def test_status_is_live(address: str, status: WorkerStatus) -> None:
    status.flows["us->eu"].partitions[("orders", 0)].lag_records = 7
    fetched = await fetch_status(address)
    assert fetched["flows"][0]["partitions"][0]["lag_records"] == 7


async def test_pause_and_resume_call_back(address: str, flows: Flows) -> None:
    assert await pause_flow(address, "us", "eu") == (True, "paused us->eu")
    assert await resume_flow(address, "us", "eu") == (True, "resumed us->eu")
    assert await pause_flow(address, "us", "ap") == (False, "no flow us->ap")
    assert flows.calls == [("pause", "us", "eu"), ("resume", "us", "eu"), ("pause", "us", "ap")]


async def test_unreachable_address_is_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ControlUnavailable) as caught:
        await fetch_status(address, timeout_s=2.0)
    assert str(caught.value) == f"no worker answers at {address} (connection refused)"


async def test_port_in_use_is_refused(address: str, status: WorkerStatus, flows: Flows) -> None:
    with pytest.raises(OSError, match="cannot serve control requests"):
        await ControlServer(status, flows.pause, flows.resume).start(address)


def render_text(data: dict[str, Any]) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render_status(data))
    return console.export_text()


def test_render_shows_flows_and_lag(status: WorkerStatus) -> None:
    text = render_text(status.as_dict())
    assert "us->eu" in text
    assert "4,121" in text  # lag records
    assert "9,876" in text  # lag ms
    assert "orders[0]" in text
    assert "NOT_LEADER" in text  # long errors fold onto more lines


def test_render_keeps_1000_partitions_short(status: WorkerStatus) -> None:
    flow = status.flows["us->eu"]
    for n in range(1_000):
        flow.partitions[("big", n)] = PartitionStatus("big", n, "us.big", lag_records=n)
    text = render_text(status.as_dict())
    assert "big[999]" in text
    assert "big[982]" in text and "big[981]" not in text  # orders[0] lags most, orders[1] failed
    assert "orders[1]" in text, "a partition with an error is shown whatever its lag"
    assert "... and 982 more" in text
    assert len(text.splitlines()) < 60


def test_metrics_observe_the_status(status: WorkerStatus) -> None:
    reader = InMemoryMetricReader()
    endpoint = MetricsEndpoint("worker", status.worker_id, readers=[reader])
    observe_worker(endpoint.meter, status)
    try:
        points = collect(reader)
    finally:
        endpoint.close()
    p0 = {"flow": "us->eu", "topic": "orders", "partition": 0}
    p1 = {"flow": "us->eu", "topic": "orders", "partition": 1}
    assert points["regionlink_mirror_lag_records"] == {key(p0): 4_121, key(p1): 0}
    assert points["regionlink_mirror_lag_seconds"] == {key(p0): 9.876, key(p1): 0}
    assert points["regionlink_mirror_records_total"] == {key(p0): 1_150, key(p1): 700}
    assert points["regionlink_mirror_bytes_total"] == {key(p0): 115_000, key(p1): 70_000}
    assert points["regionlink_mirror_records_lost_total"] == {key(p0): 50, key(p1): 0}
    assert points["regionlink_mirror_partitions"] == {
        key({"flow": "us->eu", "state": "copying"}): 1,
        key({"flow": "us->eu", "state": "retrying"}): 1,
    }


def key(attributes: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attributes.items()))


def collect(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: {
            key(dict(point.attributes or {})): point.value for point in metric.data.data_points
        }
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def test_json_lines_exporter_writes_parseable_lines(status: WorkerStatus, tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    endpoint = MetricsEndpoint("worker", status.worker_id, readers=[json_lines_reader(path, 60)])
    observe_worker(endpoint.meter, status)
    endpoint.provider.force_flush()
    endpoint.close()  # exports once more
    lines = path.read_text().splitlines()
    assert len(lines) >= 2
    for line in lines:
        names = {
            metric["name"]
            for resource in json.loads(line)["resource_metrics"]
            for scope in resource["scope_metrics"]
            for metric in scope["metrics"]
        }
        assert "regionlink_mirror_lag_records" in names


def test_a_paused_partition_keeps_its_lag_true_from_the_source_ends() -> None:
    status = PartitionStatus("orders", 0, "orders", source_position=100, lag_ms=0)
    status.pause()
    status.observe_paused(100, observed_ms=10_000)  # caught up when paused
    assert (status.lag_records, status.lag_ms) == (0, 0)
    status.observe_paused(130, observed_ms=11_000)  # 30 arrived within the last second
    assert (status.lag_records, status.lag_ms, status.source_end) == (30, 1_000, 130)
    status.observe_paused(180, observed_ms=13_500)  # the oldest of them ages with the clock
    assert (status.lag_records, status.lag_ms) == (80, 3_500)
    status.pause()  # paused again later: time while a copier ran does not count
    status.observe_paused(180, observed_ms=60_000)
    assert status.lag_ms == 3_500
