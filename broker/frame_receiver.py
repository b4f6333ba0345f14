"""Receive whole Kafka frames from a connection, with as few copies as the stream allows.

anyio's TCP stream hands received bytes over in chunks of at most 256 KiB, each a new bytes
object and an event-loop round trip (with two epoll_ctl calls when it has to wait), and
`FrameReader` then joins a frame's chunks into one bytearray. For the megabyte frames of
replication (produce requests, fetch responses) that is much of what receiving costs.

On a plaintext asyncio transport, `frame_source` swaps anyio's protocol for `FrameProtocol`, an
asyncio BufferedProtocol: the transport calls recv_into with buffers `FrameAssembler`
(pure, in broker/protocol/framing.py) provides, so a large frame is written once, by the
kernel, into its own bytearray, and the waiting task is woken once per frame. anyio's
stream still sends: the write flow-control and connection-lost callbacks are passed on to
its protocol. A TLS connection whose records asyncio's SSLProtocol runs
(broker/security/native_tls.py) gets `FrameProtocol` too, on its TLS transport: the
decrypted bytes are written into the frame's buffer by `SSLObject.read`. anyio's TLSStream
and trio streams keep the portable path (`StreamFrames`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Protocol

import anyio
from anyio.abc import ByteStream

from broker.anyio_transport import tcp_parts
from broker.protocol.framing import FrameAssembler, FrameReader

RECEIVE_CHUNK_BYTES = 1 << 20
# This many complete frames may wait for the connection's task before the transport stops
# reading (Kafka mutes a channel with a request in flight; we pipeline only produce requests).
QUEUED_FRAMES_HIGH = 16


class FrameSource(Protocol):
    async def receive_frame(self) -> bytearray:
        """The next whole frame (size prefix removed); anyio.EndOfStream when the peer
        closed, anyio.BrokenResourceError when the connection failed, ProtocolError for a
        frame over the size limit."""
        ...


class StreamFrames:
    """Frames from any anyio byte stream, through FrameReader (TLS, trio, tests)."""

    def __init__(self, stream: ByteStream, max_frame_bytes: int) -> None:
        self._stream = stream
        self._reader = FrameReader(max_frame_bytes)
        self._ready: deque[bytearray] = deque()

    async def receive_frame(self) -> bytearray:
        while not self._ready:
            self._ready.extend(self._reader.feed(await self._stream.receive(RECEIVE_CHUNK_BYTES)))
        return self._ready.popleft()


class FrameProtocol(asyncio.BufferedProtocol):
    """The asyncio side of a zero-copy receiver; see the module docstring."""

    def __init__(self, transport: asyncio.Transport, inner: asyncio.Protocol, max_frame_bytes: int):
        self._transport = transport
        self._inner = inner  # anyio's protocol: it still needs the write and close callbacks
        self._assembler = FrameAssembler(max_frame_bytes)
        self._frames: deque[bytearray] = deque()
        self._failure: BaseException | None = None
        self._at_eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def take_over(self, received: deque[bytes] | tuple[()]) -> None:
        """Bytes anyio's protocol received before the swap come first."""
        for chunk in received:
            feed(self, chunk)

    # --- called by the transport ---------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._assembler.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        frames = self._assembler.filled(nbytes)
        if self._assembler.refused is not None:  # raised after the frames before it
            self._failure = self._assembler.refused
            self._pause()
        elif len(self._frames) + len(frames) >= QUEUED_FRAMES_HIGH:
            self._pause()
        if frames or self._failure is not None:
            self._frames.extend(frames)
            self._wake()

    def eof_received(self) -> bool | None:
        self._at_eof = True
        self._wake()
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._failure is None:
            self._failure = receive_error(exc)
        self._at_eof = True
        self._wake()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- called by the receiving task ----------------------------------------------

    async def receive_frame(self) -> bytearray:
        while not self._frames:
            if self._failure is not None:
                raise self._failure
            if self._at_eof:
                raise anyio.EndOfStream
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame = self._frames.popleft()
        if self._paused and len(self._frames) < QUEUED_FRAMES_HIGH // 2 and self._failure is None:
            self._paused = False
            self._transport.resume_reading()
        return frame

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand `data` to a buffered protocol as its transport would, buffer by buffer."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        view = view[size:]
        protocol.buffer_updated(size)


def receive_error(exc: BaseException) -> BaseException:
    """What a receiver raises for the error a connection was lost with: a TLS record that
    does not decrypt as such (the server names it), anything else as a broken stream."""
    if isinstance(exc, ssl.SSLError):
        return exc
    return anyio.BrokenResourceError(str(exc))


def _native_tls(stream: ByteStream) -> bool:
    """A TLS stream whose `_transport` is asyncio's TLS transport (decrypted bytes, and
    BufferedProtocol app protocols supported): broker/security/native_tls.py."""
    return getattr(stream, "native_tls", False) is True


def frame_source(stream: ByteStream, max_frame_bytes: int) -> FrameSource:
    """The cheapest receiver this stream allows: FrameProtocol on anyio's plaintext asyncio
    TCP stream and on a NativeTLSStream (broker/anyio_transport.py), StreamFrames on
    anything else."""
    parts = tcp_parts(stream, tls=_native_tls(stream))
    if parts is None:
        return StreamFrames(stream, max_frame_bytes)
    transport, inner = parts
    protocol = FrameProtocol(transport, inner, max_frame_bytes)
    transport.set_protocol(protocol)
    protocol.take_over(getattr(inner, "read_queue", ()))
    transport.resume_reading()  # anyio pauses reading between its receive() calls
    return protocol
