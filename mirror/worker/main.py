"""`regionlink worker`: run a Worker as an OS process until SIGTERM/SIGINT.

Besides the flows, the process serves the gRPC control API (status, pause, resume) and,
if asked, its Prometheus metrics (`/metrics`) and the same metrics as JSON lines.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import anyio

from broker.memory import keep_freed_buffers
from broker.metrics import catalog
from broker.metrics.endpoint import MetricsEndpoint
from broker.metrics.instruments import histogram
from mirror.config import MirrorConfig
from mirror.control.metrics import json_lines_reader, observe_worker
from mirror.control.server import ControlServer
from mirror.errors import CliError, ConfigError
from mirror.worker.runner import Worker, worker_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    worker_id: str | None = None
    control_listen: str | None = None  # overrides [worker].control_listen
    metrics_file: Path | None = None
    metrics_interval_s: float = 5.0
    metrics_listen: tuple[str, int] | None = None


def _metrics(config: MirrorConfig, options: WorkerOptions) -> MetricsEndpoint:
    readers = []
    if options.metrics_file is not None:
        readers.append(json_lines_reader(options.metrics_file, options.metrics_interval_s))
    worker_id, _ = worker_names(config, options.worker_id)
    return MetricsEndpoint("worker", worker_id, options.metrics_listen, readers)


async def _serve(config: MirrorConfig, options: WorkerOptions) -> None:
    metrics = _metrics(config, options)
    worker = Worker(
        config, options.worker_id, histogram(metrics.meter, catalog.REPLICATION_LATENCY)
    )
    observe_worker(metrics.meter, worker.status)
    control = ControlServer(worker.status, worker.pause, worker.resume)
    listen = options.control_listen or config.worker.control_listen
    port = await control.start(listen)
    host = listen.rpartition(":")[0]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            print(
                f"regionlink worker {worker.status.worker_id} ready; control API on {host}:{port}",
                flush=True,
            )
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("worker stopping on %s", signal.Signals(signum).name)
                    break
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await control.stop(1.0)
        metrics.close()


def run_worker_process(config: MirrorConfig, options: WorkerOptions) -> None:
    check_secrets(config)
    keep_freed_buffers()  # fetched and written chunks are megabytes each
    anyio.run(_serve, config, options)


def check_secrets(config: MirrorConfig) -> None:
    """Read every password the flows need now, so a missing file or variable stops the
    worker at start with one line (CliError) instead of failing each connection later."""
    aliases = {
        alias for flow in config.flows if flow.enabled for alias in (flow.source, flow.target)
    }
    try:
        for alias in sorted(aliases):
            config.clusters[alias].client_security()
    except (ConfigError, ValueError) as exc:
        raise CliError(f"cluster {alias}: {exc}") from exc
