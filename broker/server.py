"""anyio TCP listener: framing, per-connection ordering, dispatch, limits.

Each connection handles its requests one at a time, in order, as Kafka does
(responses must return in request order). Bad input closes only that connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from broker.protocol.codec import Frame
from broker.protocol.errors import ProtocolError
from broker.protocol.framing import FrameReader

log = logging.getLogger("regionlink.broker.server")

RECEIVE_CHUNK_BYTES = 1 << 20


ANONYMOUS = "User:ANONYMOUS"
"""Kafka's principal for a connection that has not authenticated (KafkaPrincipal.ANONYMOUS)."""


@dataclass(frozen=True)
class ConnectionInfo:
    peer_host: str
    peer_port: int
    listener: str = "client"  # the named listener the connection came in on
    principal: str = ANONYMOUS  # who the authorizer checks: "User:<name>" once authenticated


# Returns the framed response (size prefix included) as segments, or None for no response.
Dispatcher = Callable[[bytearray, ConnectionInfo], Awaitable[Frame | None]]


async def serve_connection(
    stream: SocketStream, dispatch: Dispatcher, max_frame_bytes: int, listener: str = "client"
) -> None:
    peer = stream.extra(SocketAttribute.remote_address, ("?", 0))
    info = ConnectionInfo(str(peer[0]), int(peer[1]) if len(peer) > 1 else 0, listener)
    reader = FrameReader(max_frame_bytes)
    async with stream:
        try:
            while True:
                data = await stream.receive(RECEIVE_CHUNK_BYTES)
                for request in reader.feed(data):
                    response = await dispatch(request, info)
                    for segment in response or ():
                        await stream.send(segment)  # type: ignore[arg-type]  # any bytes-like
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except ProtocolError as exc:
            log.warning("closing connection from %s:%s: %s", info.peer_host, info.peer_port, exc)
        except Exception:  # a handler bug must cost one connection, never the broker
            log.exception("closing connection from %s:%s after an internal error", *peer[:2])


async def serve(
    host: str,
    port: int,
    dispatch: Dispatcher,
    max_frame_bytes: int,
    *,
    name: str = "client",
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen until cancelled; reports the bound port (useful with port 0) via task_status.
    `name`: the listener's name, which each connection's `ConnectionInfo` carries."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
    bound_port = int(listener.extra(SocketAttribute.local_port))
    task_status.started(bound_port)

    async def handle(stream: SocketStream) -> None:
        await serve_connection(stream, dispatch, max_frame_bytes, name)

    async with listener:
        await listener.serve(handle)
