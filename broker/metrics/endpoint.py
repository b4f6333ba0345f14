"""One process's metrics: an OpenTelemetry MeterProvider, served at `http://HOST:PORT/metrics`.

The OpenTelemetry Prometheus exporter collects the provider when Prometheus scrapes, and
prometheus_client's HTTP server (a daemon thread) answers the scrape, so serving metrics
needs no task in the process's event loop and a busy loop does not delay a scrape. Each
endpoint has its own registry: nothing global, so tests can run several in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger("regionlink.metrics")

METER_NAME = "regionlink"


class MetricsEndpoint:
    """A provider for `service` (broker, controller, worker…) and, with `listen`, its HTTP
    endpoint. `readers` are extra (a worker's JSON-lines exporter, a test's in-memory one)."""

    def __init__(
        self,
        service: str,
        instance: str,
        listen: tuple[str, int] | None = None,
        readers: Sequence[MetricReader] = (),
    ) -> None:
        self.registry = CollectorRegistry()
        # Scope labels (otel_scope_name...) would repeat one constant on every series.
        prometheus = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        resource = Resource.create(
            {"service.name": f"regionlink-{service}", "service.instance.id": instance}
        )
        self.provider = MeterProvider(metric_readers=[prometheus, *readers], resource=resource)
        self.meter: Meter = self.provider.get_meter(METER_NAME)
        self._server: WSGIServer | None = None
        self.url: str | None = None
        if listen is not None:
            host, port = listen
            self._server, _ = start_http_server(port, host, registry=self.registry)
            self.url = f"http://{host}:{self._server.server_port}/metrics"
            log.info("metrics on %s", self.url)

    def close(self) -> None:
        """Stop serving and shut the provider down (its readers export a last time)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.provider.shutdown()
