"""TLS run by asyncio's own TLS record layer (`asyncio.sslproto`) under an anyio stream —
the path every TLS connection takes on the asyncio backend: a broker listener's, and our
Kafka client's (the mirror's, a follower's) since it was measured there too (the mirror
through SSL at 0.40x of plaintext with anyio's `TLSStream` in the client; docs/benchmarks.md,
Security).

anyio's `TLSStream` runs the TLS record layer in the task that receives: a socket read,
a `MemoryBIO` write, a loop of `SSLObject.read` into a new buffer, and `FrameReader` joins
a frame out of those buffers — one task switch and two copies of every byte per socket
read. asyncio's `SSLProtocol` (3.11+) does the same `SSLObject.read` calls from the
transport's read callback, and hands decrypted bytes to a BufferedProtocol app protocol
by writing them into the buffer that protocol gives: so `FrameProtocol`
(broker/frame_receiver.py) works over TLS too, and a produce request is decrypted straight
into its own bytearray, the waiting task woken once per frame (docs/benchmarks.md,
Security).

`NativeTLSStream` is an anyio `TLSStream` (its `extra` attributes — peer certificate,
cipher, TLS version — read the real `SSLObject`; broker/frame_sender.py joins the segments of
a response into one write for it as for any `TLSStream`) whose reads and writes go through
asyncio's transport. `wrap` returns None for a stream it cannot take over (not anyio's
asyncio TCP stream, e.g. on trio): the listener then uses anyio's `TLSStream`.

Uses asyncio's `sslproto.SSLProtocol` (documented only through `loop.start_tls`, which
cannot be given the bytes anyio has already read from the socket — a client's hello often
is among them) and anyio's stream's `_transport` and `_protocol` (broker/anyio_transport.py).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import weakref
from asyncio import sslproto
from collections import deque

import anyio
from anyio.abc import ByteStream
from anyio.lowlevel import checkpoint
from anyio.streams.tls import TLSStream

from broker.anyio_transport import tcp_parts
from broker.frame_receiver import feed, receive_error

# Where the stream allows (asyncio); REGIONLINK_NATIVE_TLS=0 keeps every connection, a
# listener's and our client's, on anyio's TLSStream.
NATIVE_TLS = os.environ.get("REGIONLINK_NATIVE_TLS", "1") != "0"
# Client side only, for measuring it apart from the listeners' (docs/benchmarks.md, Security).
NATIVE_CLIENT_TLS = NATIVE_TLS and os.environ.get("REGIONLINK_NATIVE_CLIENT_TLS", "1") != "0"

# Bytes read from the socket per read callback (asyncio's default is 256 KiB). The buffer
# they land in is shared by the connections of an event loop (see `_landing_buffer`), so
# a large one costs no memory per connection.
TRANSPORT_READ_BYTES = 1 << 20
_LANDING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bytearray] = (
    weakref.WeakKeyDictionary()
)
# Decrypted bytes queued before anyone receives them (before frame_source takes over).
QUEUED_BYTES_HIGH = 1 << 20


class _AppProtocol(asyncio.Protocol):
    """What the TLS transport delivers, until `frame_source` swaps in `FrameProtocol`
    (which takes over `read_queue` and passes on the write and close callbacks)."""

    def __init__(self) -> None:
        self.read_queue: deque[bytes] = deque()
        self.queued = 0
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.exception: BaseException | None = None
        self.at_eof = False
        self.lost = False
        self.transport: asyncio.Transport | None = None

    def data_received(self, data: bytes) -> None:
        self.read_queue.append(data)
        self.queued += len(data)
        self.readable.set()
        if self.queued >= QUEUED_BYTES_HIGH and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> None:  # a TLS close_notify; None: asyncio closes
        self.at_eof = True
        self.readable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.exception is None:
            self.exception = exc
        self.lost = True
        self.readable.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class NativeTLSStream(TLSStream):
    """A TLS connection whose record layer is asyncio's `SSLProtocol`; see the module
    docstring. Made by `wrap_accepted` (server side) or `wrap_connected` (client side)."""

    _transport: asyncio.Transport  # the TLS (application data) transport
    _protocol: _AppProtocol
    native_tls = True  # frame_source may put FrameProtocol on `_transport`

    @classmethod
    async def wrap_accepted(
        cls, stream: ByteStream, ssl_context: ssl.SSLContext, handshake_timeout_s: float
    ) -> NativeTLSStream | None:
        """The TLS server side of anyio's asyncio TCP `stream`, once the handshake is done
        (its errors raised: ssl.SSLError, OSError); None if `stream` is not one."""
        return await cls._wrap(stream, ssl_context, handshake_timeout_s, None)

    @classmethod
    async def wrap_connected(
        cls,
        stream: ByteStream,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        handshake_timeout_s: float,
    ) -> NativeTLSStream | None:
        """The TLS client side of anyio's asyncio TCP `stream` (our Kafka client's: the
        mirror's fetches and appends, replica fetches), the server's certificate checked
        against `server_hostname` as `ssl_context` says; None if `stream` is not one."""
        return await cls._wrap(stream, ssl_context, handshake_timeout_s, server_hostname)

    @classmethod
    async def _wrap(
        cls,
        stream: ByteStream,
        ssl_context: ssl.SSLContext,
        handshake_timeout_s: float,
        server_hostname: str | None,
    ) -> NativeTLSStream | None:
        """The server side when `server_hostname` is None, else the client side."""
        parts = tcp_parts(stream)
        if parts is None:
            return None
        raw, anyio_protocol = parts
        loop = asyncio.get_running_loop()
        handshake_done = loop.create_future()
        app = _AppProtocol()
        records = sslproto.SSLProtocol(
            loop,
            app,
            ssl_context,
            handshake_done,
            server_side=server_hostname is None,
            server_hostname=server_hostname,
            call_connection_made=False,
            # the caller's deadline comes first; this one only guards against a leak
            ssl_handshake_timeout=int(handshake_timeout_s) + 5,
        )
        _landing_buffer(records, loop)
        raw.pause_reading()
        raw.set_protocol(records)
        records.connection_made(raw)
        for chunk in getattr(anyio_protocol, "read_queue", ()):  # what anyio already read
            feed(records, chunk)
        if getattr(anyio_protocol, "is_at_eof", False):
            records.eof_received()
        raw.resume_reading()
        try:
            await handshake_done
        except BaseException:
            raw.abort()
            raise
        transport = records._app_transport
        app.transport = transport
        tls = cls(
            transport_stream=stream,
            standard_compatible=False,
            _ssl_object=records._sslobj,  # type: ignore[attr-defined]
            _read_bio=records._incoming,  # type: ignore[attr-defined]
            _write_bio=records._outgoing,  # type: ignore[attr-defined]
        )
        tls._transport = transport
        tls._protocol = app
        return tls

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """What has been decrypted (everything queued, up to max_bytes)."""
        app = self._protocol
        while not app.read_queue:
            if app.exception is not None:
                raise receive_error(app.exception)
            if app.at_eof or app.lost:
                raise anyio.EndOfStream
            app.readable.clear()
            await app.readable.wait()
        queue, taken, size = app.read_queue, [], 0
        while queue and size < max_bytes:
            chunk = queue.popleft()
            if size + len(chunk) > max_bytes:
                queue.appendleft(chunk[max_bytes - size :])
                chunk = chunk[: max_bytes - size]
            taken.append(chunk)
            size += len(chunk)
        app.queued -= size
        if app.queued < QUEUED_BYTES_HIGH // 2:
            self._transport.resume_reading()
        return taken[0] if len(taken) == 1 else b"".join(taken)

    async def send(self, item: bytes) -> None:
        app = self._protocol
        if app.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from app.exception
        self._transport.write(item)
        if not app.writable.is_set():
            await app.writable.wait()
            if app.lost:
                raise anyio.BrokenResourceError from app.exception
        else:
            await checkpoint()

    async def send_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close")

    async def unwrap(self) -> tuple[ByteStream, bytes]:
        raise NotImplementedError("a Kafka connection is never unwrapped")

    async def aclose(self) -> None:
        self._transport.abort()
        await self.transport_stream.aclose()


def _landing_buffer(records: sslproto.SSLProtocol, loop: asyncio.AbstractEventLoop) -> None:
    """Give `records` the loop's shared landing buffer for encrypted bytes. SSLProtocol
    keeps one of 256 KiB per connection, but only from `get_buffer` to the end of
    `buffer_updated` — one synchronous read callback, which copies it into the MemoryBIO —
    so the connections of one loop (one thread) can share one buffer: larger reads
    without 1 MiB per idle connection."""
    buffer = _LANDING.get(loop)
    if buffer is None:
        buffer = _LANDING[loop] = bytearray(TRANSPORT_READ_BYTES)
    records.max_size = len(buffer)  # type: ignore[misc]
    records._ssl_buffer = buffer  # type: ignore[attr-defined]
    records._ssl_buffer_view = memoryview(buffer)  # type: ignore[attr-defined]
