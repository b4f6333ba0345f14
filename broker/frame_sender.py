"""Send a framed message's segments to the socket with one event-loop yield per frame.

A response is a few segments (a fetch response: its fields, each partition's record batches
by reference, the fields after them). anyio's send() takes one bytes-like object and yields
to the event loop after each, so a fetch response cost three loop round trips; joining the
segments would copy the megabytes. On anyio's asyncio TCP stream `TransportSender` writes
every segment to the transport, then waits as anyio's send() does: until the transport has
drained if it pushed back (anyio sets its write buffer limit to 0, so any unsent byte pauses
writing), else one cancel-shielded yield so a busy connection cannot hold the loop; it
reaches them through broker/anyio_transport.py (anyio has no writelines). A TLS stream gets
the segments joined into one write, anything else sends segment by segment.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream
from anyio.streams.tls import TLSStream

from broker.anyio_transport import tcp_parts
from broker.protocol.codec import Frame


class FrameSender(Protocol):
    async def send_frame(self, frame: Frame) -> None: ...


class StreamSender:
    """Segment by segment through anyio's send() (TLS, trio, tests)."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    async def send_frame(self, frame: Frame) -> None:
        for segment in frame:
            await self._stream.send(segment)  # type: ignore[arg-type]  # any bytes-like


class JoinedSender:
    """A TLS stream: one write per segment would make a TLS record and a socket send each, so
    the segments are joined (a copy, cheap next to the encryption) into one write."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    async def send_frame(self, frame: Frame) -> None:
        await self._stream.send(b"".join(frame) if len(frame) > 1 else frame[0])  # type: ignore[arg-type]


class TransportSender:
    def __init__(self, stream: ByteStream, transport: asyncio.Transport, protocol: object):
        self._stream = stream
        self._transport = transport
        self._protocol = protocol  # anyio's StreamProtocol: write_event, exception

    async def send_frame(self, frame: Frame) -> None:
        self._raise_if_broken()
        try:
            for segment in frame:
                self._transport.write(segment)
        except RuntimeError as exc:  # the transport closed under us
            raise anyio.BrokenResourceError from exc
        write_event: asyncio.Event = self._protocol.write_event  # type: ignore[attr-defined]
        if write_event.is_set():
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return
        await write_event.wait()
        self._raise_if_broken()

    def _raise_if_broken(self) -> None:
        if getattr(self._stream, "_closed", False):
            raise anyio.ClosedResourceError
        exception = getattr(self._protocol, "exception", None)
        if exception is not None:
            raise anyio.BrokenResourceError from exception
        if self._transport.is_closing():
            raise anyio.BrokenResourceError


def frame_sender(stream: ByteStream) -> FrameSender:
    """JoinedSender on a TLS stream, TransportSender on anyio's plaintext asyncio TCP stream,
    StreamSender on any other."""
    if isinstance(stream, TLSStream):
        return JoinedSender(stream)
    parts = tcp_parts(stream)
    if parts is not None and isinstance(getattr(parts[1], "write_event", None), asyncio.Event):
        return TransportSender(stream, *parts)
    return StreamSender(stream)
