"""The worker side of the gRPC control API: serves its live status and pause/resume.

The worker owns the `WorkerStatus` and the pause/resume logic; this module only maps
them onto the `WorkerControl` service defined in control.proto.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc

from mirror.control import control_pb2, control_pb2_grpc
from mirror.status import WorkerStatus

log = logging.getLogger(__name__)

# Pause or resume the flow (source, target): None on success, else why not.
FlowAction = Callable[[str, str], Awaitable[str | None]]


def status_to_proto(status: WorkerStatus) -> control_pb2.WorkerStatusReply:
    """Build the reply from `as_dict()`, so the API reports exactly what the dict reports.

    The proto's field names equal the dict's keys; a key the proto lacks raises
    ValueError, which the round-trip test turns into a failure rather than a silent gap.
    """
    return control_pb2.WorkerStatusReply(**status.as_dict())


class _Servicer(control_pb2_grpc.WorkerControlServicer):
    def __init__(self, status: WorkerStatus, pause: FlowAction, resume: FlowAction) -> None:
        self._status = status
        self._pause = pause
        self._resume = resume

    async def GetStatus(
        self, request: control_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.WorkerStatusReply:
        return status_to_proto(self._status)

    async def PauseFlow(
        self, request: control_pb2.FlowRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.FlowReply:
        return await _act(self._pause, "paused", request)

    async def ResumeFlow(
        self, request: control_pb2.FlowRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.FlowReply:
        return await _act(self._resume, "resumed", request)


async def _act(
    action: FlowAction, done: str, request: control_pb2.FlowRequest
) -> control_pb2.FlowReply:
    flow = f"{request.source}->{request.target}"
    error = await action(request.source, request.target)
    if error is not None:
        log.warning("control: %s not %s: %s", flow, done, error)
        return control_pb2.FlowReply(ok=False, message=error)
    log.info("control: %s %s", flow, done)
    return control_pb2.FlowReply(ok=True, message=f"{done} {flow}")


class ControlServer:
    """One worker's `WorkerControl` service on a grpc.aio server (asyncio only)."""

    def __init__(self, status: WorkerStatus, pause: FlowAction, resume: FlowAction) -> None:
        self._servicer = _Servicer(status, pause, resume)
        self._server: grpc.aio.Server | None = None

    async def start(self, listen: str) -> int:
        """Serve on HOST:PORT (port 0 picks a free one); returns the bound port."""
        if self._server is not None:
            raise RuntimeError("control server already started")
        # Without this, a second worker could share a port that is already taken.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        control_pb2_grpc.add_WorkerControlServicer_to_server(self._servicer, server)
        try:
            port = int(server.add_insecure_port(listen))  # older grpc returns 0 on failure
        except RuntimeError:
            port = 0
        if port == 0:
            raise OSError(f"cannot serve control requests on {listen} (in use or no such host)")
        await server.start()
        self._server = server
        log.info("control API listening on %s (port %d)", listen, port)
        return port

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop accepting calls; calls in progress get `grace_s` seconds to finish."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace_s)
