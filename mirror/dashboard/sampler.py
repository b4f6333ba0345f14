"""The dashboard's one sampler: the topology's status each second, kept for the charts.

Pages never poll the topology themselves: however many are open, the topology is asked once
a second — `regionlink status` (state db and each worker's control API), each region's
metadata (broker health), each worker's Prometheus histogram (latency), the journal's
newest operation — and every page subscribed to `/api/events` gets the same sample. The
figures go into bounded ring buffers (`series.FlowSeries`) so a page opened now draws the
last minutes at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from broker.client.security import ClientSecurity
from mirror.dashboard import journal
from mirror.dashboard.health import regions_health
from mirror.dashboard.latency import LatencyWindow, histogram_buckets, merge, scrape
from mirror.dashboard.series import FlowSeries, Value
from mirror.errors import CliError, ConfigError
from mirror.runtime.secure import admin_client
from mirror.runtime.status import collect, running_topology
from mirror.runtime.topology import LinkConfig

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
HISTORY_POINTS = 900  # 15 minutes at one sample a second
SUBSCRIBER_BUFFER = 8  # samples a slow page may fall behind before it misses some

Sample = dict[str, Any]

# The toxics a [links] table itself puts on a link (its latency, jitter, bandwidth); any
# other toxic on a link's proxy is a fault someone added (a drill, `regionlink chaos`).
LINK_CONDITIONS = frozenset(
    str(t["name"]) for t in LinkConfig(latency_ms=1, jitter_ms=1, bandwidth_kbps=8).toxics()
)


def flow_id(flow: dict[str, Any]) -> str:
    """How URLs name a flow: `source:target`."""
    return f"{flow['source']}:{flow['target']}"


class Sampler:
    def __init__(
        self, state_dir: Path, interval_s: float = INTERVAL_S, capacity: int = HISTORY_POINTS
    ) -> None:
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.series = FlowSeries(capacity)
        self.latency = LatencyWindow()
        self.latest: Sample | None = None
        self._subscribers: set[MemoryObjectSendStream[Sample]] = set()

    async def run(self) -> None:
        """Sample every `interval_s` until cancelled; a slow sample skips the ticks it
        overran instead of bunching up."""
        next_at = anyio.current_time()
        while True:
            self.publish(await self.take())
            next_at += self.interval_s
            now = anyio.current_time()
            if next_at < now:
                next_at = now + self.interval_s
            await anyio.sleep_until(next_at)

    async def take(self) -> Sample:
        """One sample: the status with each region's health, each flow's latency, the
        journal's newest operation, and `figures` (flow -> the values the series keep)."""
        t = time.time()
        try:
            status, latest_operation = await anyio.to_thread.run_sync(self._read, t)
        except Exception as exc:  # the page shows why; the next tick tries again
            log.warning("cannot read the status of %s: %s", self.state_dir, exc)
            self.series.append(t, {})
            return {"t": t, "error": f"cannot read {self.state_dir}: {exc}", "figures": {}}
        bootstraps = {name: region["bootstrap"] for name, region in status["regions"].items()}
        health = await regions_health(bootstraps, self._security())
        for name, region in status["regions"].items():
            region["health"] = health.get(name)
        figures: dict[str, dict[str, Value]] = {}
        for flow in status["flows"]:
            flow["id"] = flow_id(flow)
            flow["p50_ms"], flow["p99_ms"] = self.latency.quantiles_ms(flow["id"])
            figures[flow["id"]] = {
                "lag_records": flow["lag_records"],
                "lag_s": flow["lag_ms"] / 1000,
                "records_per_s": flow["records_per_s"],
                "p50_ms": flow["p50_ms"],
                "p99_ms": flow["p99_ms"],
            }
        self.series.append(t, figures)
        return {"t": t, "error": "", **status, "journal": latest_operation, "figures": figures}

    def _security(self) -> ClientSecurity | None:
        """The admin's settings when the topology is secured (read each time: `up` may
        have made the files after the dashboard started); None if unreadable."""
        try:
            return admin_client(running_topology(self.state_dir), self.state_dir)
        except (OSError, ValueError, ConfigError, CliError):
            return None

    def _read(self, t: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The blocking part of a sample (sqlite, gRPC and HTTP calls), in a worker thread."""
        status = collect(self.state_dir)
        for link in status["links"]:
            for toxic in link["toxics"] or []:
                toxic["fault"] = toxic["name"] not in LINK_CONDITIONS
        for flow in status["flows"]:
            self._scrape_latency(flow_id(flow), status["processes"], t)
        return status, journal.latest(self.state_dir)

    def _scrape_latency(self, flow: str, processes: list[dict[str, Any]], t: float) -> None:
        urls = [
            p["metrics_url"]
            for p in processes
            if p["kind"] == "worker" and p["flow"] == flow and p.get("metrics_url")
        ]
        if not urls:
            return
        try:
            buckets = merge(histogram_buckets(scrape(url)) for url in urls)
        except (OSError, ValueError):  # a worker not answering: no point this tick
            return
        self.latency.observe(flow, t, buckets)

    def publish(self, sample: Sample) -> None:
        self.latest = sample
        for stream in list(self._subscribers):
            with contextlib.suppress(anyio.WouldBlock):  # a page too slow misses samples
                stream.send_nowait(sample)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[Sample]]:
        """The samples from now on, for as long as the caller stays inside."""
        send, receive = anyio.create_memory_object_stream[Sample](SUBSCRIBER_BUFFER)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()
