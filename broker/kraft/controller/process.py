"""The `regionlink controller` process: WAL, Raft driver, peer senders and the gRPC server on
one port, until SIGTERM/SIGINT. It stays up when peers are down (Raft just has no quorum).
With `metrics_listen` it also serves its Prometheus metrics."""

from __future__ import annotations

import logging
import signal

import anyio
import grpc
from anyio.abc import TaskStatus
from opentelemetry.metrics import Meter

from broker.kraft.controller import controller_pb2_grpc
from broker.kraft.controller.config import ControllerConfig
from broker.kraft.controller.driver import RaftDriver
from broker.kraft.controller.service import Controller, Servicer
from broker.kraft.controller.state import MetadataState
from broker.kraft.controller.transport import RaftTransport
from broker.kraft.controller.wal import RaftWal
from broker.metrics.controller_metrics import observe_controller
from broker.metrics.endpoint import MetricsEndpoint

log = logging.getLogger("regionlink.controller")

WAL_NAME = "raft.wal"
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a second controller must not share a port in use
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
]


async def serve(
    config: ControllerConfig,
    meter: Meter | None = None,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the controller until cancelled; reports the bound port once serving. With
    `meter`, its metrics are observed from the Raft node and the metadata image."""
    wal, persisted = await anyio.to_thread.run_sync(RaftWal.open, config.data_dir / WAL_NAME)
    state = MetadataState()
    transport = RaftTransport(config.peers, config.tls)
    driver = RaftDriver(config, wal, persisted, transport, state)
    if meter is not None:
        observe_controller(meter, driver, state)
    await driver.tick()  # replays the snapshot and committed entries before serving
    controller = Controller(config, driver, state)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    servicer = Servicer(config.node_id, set(config.peers), driver, controller)
    controller_pb2_grpc.add_ControllerQuorumServicer_to_server(servicer, server)
    listen = f"{config.host}:{config.port}"
    try:
        port = int(
            server.add_insecure_port(listen)
            if config.tls is None
            else server.add_secure_port(listen, config.tls.server_credentials())
        )
    except RuntimeError:
        port = 0
    if port == 0:
        wal.close()
        raise OSError(f"cannot listen on {listen} (in use or no such host)")
    await server.start()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(transport.run)
            tasks.start_soon(driver.run)
            tasks.start_soon(controller.run_sessions)
            task_status.started(port)
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop(0.5)
            wal.close()


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            scope.cancel()
            return


async def run_until_signalled(
    config: ControllerConfig, metrics_listen: tuple[str, int] | None = None
) -> None:
    metrics = None
    if metrics_listen is not None:
        metrics = MetricsEndpoint("controller", f"controller-{config.node_id}", metrics_listen)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_stop_on_signal, tasks.cancel_scope)
            port = await tasks.start(serve, config, metrics.meter if metrics else None)
            print(
                f"regionlink controller {config.node_id} ready on {config.host}:{port}",
                flush=True,
            )
    finally:
        if metrics is not None:
            metrics.close()


def run_controller(config: ControllerConfig, metrics_listen: tuple[str, int] | None = None) -> None:
    anyio.run(run_until_signalled, config, metrics_listen, backend="asyncio")  # grpc.aio: asyncio
