"""`regionlink worker`: run a Worker as an OS process until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal

import anyio

from mirror.config import MirrorConfig
from mirror.worker import Worker

log = logging.getLogger(__name__)


async def _serve(worker: Worker) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        print(f"regionlink worker {worker.status.worker_id} ready", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("worker stopping on %s", signal.Signals(signum).name)
                break
        tg.cancel_scope.cancel()


def run_worker_process(config: MirrorConfig, worker_id: str | None = None) -> None:
    anyio.run(_serve, Worker(config, worker_id))
