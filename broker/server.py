"""anyio TCP listener: security handshake, framing, per-connection ordering, dispatch, limits.

Each connection handles its requests one at a time, in order, as Kafka does
(responses must return in request order). Bad input closes only that connection.

A TLS listener wraps the accepted stream before the first frame (broker/security/
connection.py). On a SASL listener nothing but ApiVersions, SaslHandshake and
SaslAuthenticate is served until the client has authenticated — any other request closes
the connection, as in Kafka — and a failed authentication is answered, costs
`connection.failed.authentication.delay.ms`, and closes it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskStatus

from broker.frame_receiver import FrameSource, frame_source
from broker.frame_sender import FrameSender, frame_sender
from broker.pipeline import Later, ProducePipeline, Response, is_produce
from broker.protocol.codec import Frame, request_api_key
from broker.protocol.errors import ProtocolError
from broker.protocol.framing import frame
from broker.security.connection import ANONYMOUS, HandshakeFailed, ListenerSecurity
from broker.security.sasl import SaslSession, State

log = logging.getLogger("regionlink.broker.server")

PLAINTEXT = ListenerSecurity()


@dataclass(frozen=True)
class ConnectionInfo:
    """One connection, as handlers see it."""

    peer_host: str
    peer_port: int
    listener: str = "client"  # the named listener the connection came in on
    security_protocol: str = "PLAINTEXT"  # Kafka's name for what the listener speaks
    certificate_principal: str | None = None  # from a verified TLS client certificate
    sasl: SaslSession | None = None  # on a SASL listener: this connection's session

    @property
    def principal(self) -> str:
        """Who the connection acts as, Kafka's way: the SASL user once authenticated, else
        the client certificate's subject, else User:ANONYMOUS."""
        if self.sasl is not None and self.sasl.principal is not None:
            return self.sasl.principal
        return self.certificate_principal or ANONYMOUS


# Returns the framed response (size prefix included) as segments, or None for no response.
Dispatcher = Callable[[bytearray, ConnectionInfo], Awaitable[Response]]


async def serve_connection(
    stream: SocketStream,
    dispatch: Dispatcher,
    max_frame_bytes: int,
    listener: str = "client",
    security: ListenerSecurity = PLAINTEXT,
) -> None:
    peer = stream.extra(SocketAttribute.remote_address, ("?", 0))
    host, port = str(peer[0]), int(peer[1]) if len(peer) > 1 else 0
    async with stream:
        if security.sasl is not None and security.sasl.refuses(host):
            log.debug("refusing a connection from %s: too many failed authentications", host)
            return
        try:
            secured, certificate_principal = await security.handshake(stream)
        except HandshakeFailed as exc:
            log.info("closing connection from %s:%s on %s: %s", host, port, listener, exc)
            return
        info = ConnectionInfo(
            host,
            port,
            listener,
            security.protocol.value,
            certificate_principal,
            security.sasl.session() if security.sasl is not None else None,
        )
        try:
            frames = frame_source(secured, max_frame_bytes)
            await _serve_frames(secured, dispatch, frames, info, security)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except ProtocolError as exc:
            log.warning("closing connection from %s:%s: %s", host, port, exc)
        except ssl.SSLError as exc:  # a TLS record that does not decrypt: garbage, or tampering
            log.warning("closing TLS connection from %s:%s: %s", host, port, exc.reason or exc)
        except Exception:  # a handler bug must cost one connection, never the broker
            log.exception("closing connection from %s:%s after an internal error", host, port)


async def _serve_frames(
    stream: ByteStream,
    dispatch: Dispatcher,
    frames: FrameSource,
    info: ConnectionInfo,
    security: ListenerSecurity,
) -> None:
    """Serve requests until the peer leaves or the connection must close. Consecutive
    produce requests are pipelined (`ProducePipeline`); any other request waits until the
    responses before it are sent, as in Kafka."""
    failure: Exception | None = None
    sender = frame_sender(stream)
    async with anyio.create_task_group() as tasks:
        pipeline = ProducePipeline(tasks, lambda frame: _send(sender, frame))
        try:
            await _serve_requests(sender, dispatch, frames, info, security, pipeline)
        except Exception as exc:  # raised below, unwrapped, for serve_connection's handlers
            failure = pipeline.failure or exc
        finally:
            tasks.cancel_scope.cancel()
    failure = failure or pipeline.failure
    if failure is not None:
        raise failure


async def _serve_requests(
    sender: FrameSender,
    dispatch: Dispatcher,
    frames: FrameSource,
    info: ConnectionInfo,
    security: ListenerSecurity,
    pipeline: ProducePipeline,
) -> None:
    session = info.sasl
    while True:
        request = await frames.receive_frame()
        if session is None or session.state is State.AUTHENTICATED:
            if is_produce(request):
                await pipeline.room()
                pipeline.add(await dispatch(request, info))  # appended now, answered in order
            else:
                await pipeline.drain()
                await _answer(sender, await dispatch(request, info))
        elif not await _authenticating(sender, dispatch, request, info, session):
            if session.state is State.FAILED and security.sasl is not None:
                log.info(
                    "failed authentication from %s:%s on %s (%s)",
                    info.peer_host,
                    info.peer_port,
                    info.listener,
                    session.mechanism,
                )
                await security.sasl.failed(info.peer_host)
            return


async def _authenticating(
    sender: FrameSender,
    dispatch: Dispatcher,
    request: bytearray,
    info: ConnectionInfo,
    session: SaslSession,
) -> bool:
    """One frame before SASL authentication succeeded; False: close the connection."""
    if session.raw_tokens:  # after SaslHandshake v0: a bare SASL token, answered bare
        answer = session.authenticate(bytes(request))
        if answer.close:
            return False
        await sender.send_frame([frame(answer.auth_bytes)])
        return True
    api_key = request_api_key(request)
    if api_key is None or not session.allows(api_key):
        log.warning(
            "closing connection from %s:%s: a request before SASL authentication",
            info.peer_host,
            info.peer_port,
        )
        return False
    await _answer(sender, await dispatch(request, info))
    return session.state is not State.FAILED


async def _answer(sender: FrameSender, response: Response) -> None:
    await _send(sender, await response.finish() if isinstance(response, Later) else response)


async def _send(sender: FrameSender, response: Frame | None) -> None:
    if response:
        await sender.send_frame(response)


async def serve(
    host: str,
    port: int,
    dispatch: Dispatcher,
    max_frame_bytes: int,
    *,
    name: str = "client",
    security: ListenerSecurity = PLAINTEXT,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen until cancelled; reports the bound port (useful with port 0) via task_status.
    `name`: the listener's name, which each connection's `ConnectionInfo` carries;
    `security`: what the listener does before serving a connection (TLS, SASL)."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
    bound_port = int(listener.extra(SocketAttribute.local_port))
    task_status.started(bound_port)

    async def handle(stream: SocketStream) -> None:
        await serve_connection(stream, dispatch, max_frame_bytes, name, security)

    async with listener:
        await listener.serve(handle)
