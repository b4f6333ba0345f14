"""`regionlink worker`: run a Worker as an OS process until SIGTERM/SIGINT.

Besides the flows, the process serves the gRPC control API (status, pause, resume) and,
if asked, exports OpenTelemetry metrics as JSON lines.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import anyio

from mirror.config import MirrorConfig
from mirror.control.metrics import JsonLinesMetricExporter, install_metrics
from mirror.control.server import ControlServer
from mirror.worker.runner import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    worker_id: str | None = None
    control_listen: str | None = None  # overrides [worker].control_listen
    metrics_file: Path | None = None
    metrics_interval_s: float = 5.0


async def _serve(worker: Worker, config: MirrorConfig, options: WorkerOptions) -> None:
    provider = None
    if options.metrics_file is not None:
        exporter = JsonLinesMetricExporter(options.metrics_file)
        provider = install_metrics(worker.status, exporter, options.metrics_interval_s)
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
        if provider is not None:
            provider.shutdown()


def run_worker_process(config: MirrorConfig, options: WorkerOptions) -> None:
    anyio.run(_serve, Worker(config, options.worker_id), config, options)
