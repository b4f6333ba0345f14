"""Non-blocking TCP sockets driven by anyio's readiness waits, read into the caller's buffer.

The proxy's data path does not use anyio's socket streams. On asyncio they sit on a
transport that reads at most 256 KiB per wake-up into a freshly allocated bytes object and
buffers what the kernel will not take; measured here (bench/proxy_bench.py) that carried
about 1 GB/s, and these sockets, which try the system call first, wait only when it would
block, and read into one reused 1 MiB buffer, about 1.7 times that. They are anyio all the same:
`wait_readable` / `wait_writable` are cancellable, so cancel scopes (a proxy going down, a
direction woken for new toxics) work as everywhere else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct

import anyio

_LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on with 0 s: close() sends an RST and drops what is unsent."""


class TcpStream:
    """One connected socket. One task may read while another writes; never two readers."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def try_receive_into(self, buffer: memoryview) -> int | None:
        """Bytes read into `buffer`, 0 at the end of the peer's stream, None if none yet."""
        try:
            return self.sock.recv_into(buffer)
        except BlockingIOError:
            return None

    async def wait_readable(self) -> None:
        await anyio.wait_readable(self.sock)

    async def send(self, data: bytes | memoryview) -> None:
        """All of `data`, waiting while the kernel's send buffer is full."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                await anyio.wait_writable(self.sock)

    def send_eof(self) -> None:
        """Half-close: the peer reads EOF once what was sent has arrived."""
        with contextlib.suppress(OSError):  # already gone: the other direction will notice
            self.sock.shutdown(socket.SHUT_WR)

    def close(self, *, reset: bool = False) -> None:
        """Close; with `reset`, abort with an RST instead of a FIN."""
        if reset and self.sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (raises OSError when the address is taken); "" = every interface."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=128)
    sock.setblocking(False)
    return sock


async def accept(listener: socket.socket) -> TcpStream:
    while True:
        try:
            conn, _ = listener.accept()
            return TcpStream(conn)
        except BlockingIOError:
            await anyio.wait_readable(listener)


async def connect(host: str, port: int) -> TcpStream:
    """Dial the first address that answers, as anyio.connect_tcp would (raises OSError)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error = OSError(f"no address for {host}")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            code = sock.connect_ex(address)
            if code == errno.EINPROGRESS:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return TcpStream(sock)
    raise error
