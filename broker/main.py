"""Run a broker process until SIGTERM/SIGINT, then flush and close its logs; with
`metrics_listen`, serve its Prometheus metrics meanwhile."""

from __future__ import annotations

import logging
import signal

import anyio

from broker.broker import Broker
from broker.config import BrokerConfig
from broker.memory import keep_freed_buffers
from broker.metrics.broker_metrics import observe_broker
from broker.metrics.endpoint import MetricsEndpoint

log = logging.getLogger("regionlink.broker")


async def _stop_on_signal(broker: Broker, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            await broker.prepare_shutdown()
            scope.cancel()
            return


async def run_until_signalled(
    config: BrokerConfig, metrics_listen: tuple[str, int] | None = None
) -> None:
    broker = Broker(config)
    metrics = None
    if metrics_listen is not None:
        metrics = MetricsEndpoint("broker", f"broker-{config.node_id}", metrics_listen)
        observe_broker(metrics.meter, broker)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_stop_on_signal, broker, tasks.cancel_scope)
            await tasks.start(broker.run)
            print(
                f"regionlink broker {config.node_id} ready on {config.host}:{broker.port}",
                flush=True,
            )
    finally:
        if metrics is not None:
            metrics.close()


def run_broker(config: BrokerConfig, metrics_listen: tuple[str, int] | None = None) -> None:
    keep_freed_buffers()
    anyio.run(run_until_signalled, config, metrics_listen, backend="asyncio")
