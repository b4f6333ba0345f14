"""Move the bytes of one proxied connection: one task per direction, toxics in between.

The driver is thin on purpose: what toxics do is decided by the pure `Chain`; here we only
read, hand chunks to the chain with the time, and carry out the stamped events it returns,
sleeping until the earliest one. With no toxic on a direction (the common case, and the
one that must keep up with a mirror's large fetch and produce frames) a direction is a
plain read/write loop: 1 MiB reads into one reused buffer, written on from that buffer,
no timers. Only chunks that go through toxics are copied out as bytes.

A direction wakes from a wait when the proxy's toxics change (`wake`), so a toxic added to
an idle connection still takes hold (a timeout closes it on time). Orderly ends are passed
on as half-closes; a toxic's close or reset, or an error on either socket, ends both.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import anyio

from chaos.proxy.chain import Chain
from chaos.proxy.sockets import TcpStream
from chaos.proxy.spec import DOWNSTREAM, UPSTREAM, ToxicSpec
from chaos.proxy.stages import Close, End, Event, Reset, Send

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20
"""Each direction's read buffer: a whole large Kafka frame per system call when it is there."""
MAX_PENDING_BYTES = 8 << 20
"""A direction stops reading while this much waits on its toxics (a slow wire pushes back)."""


class ToxicSource(Protocol):
    """The proxy, as its connections see it: its toxics and a number that moves on change."""

    @property
    def generation(self) -> int: ...

    def toxics(self, stream: str) -> Sequence[ToxicSpec]: ...


class Connection:
    """A client connection and the upstream connection dialled for it."""

    def __init__(
        self, source: ToxicSource, seed_key: str, client: TcpStream, upstream: TcpStream
    ) -> None:
        self.client = client
        self.upstream = upstream
        self._scope = anyio.CancelScope()
        self._reset = False
        self._directions = (
            _Direction(self, source, f"{seed_key}/{UPSTREAM}", UPSTREAM, client, upstream),
            _Direction(self, source, f"{seed_key}/{DOWNSTREAM}", DOWNSTREAM, upstream, client),
        )

    async def run(self) -> None:
        """Until both directions have ended, or a toxic or an error ended the connection."""
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    for direction in self._directions:
                        tg.start_soon(direction.run)
        finally:
            self.client.close(reset=self._reset)
            self.upstream.close(reset=self._reset)

    def abort(self, *, reset: bool) -> None:
        """End both directions now; with `reset`, the sockets close with an RST."""
        self._reset = self._reset or reset
        self._scope.cancel()

    def wake(self) -> None:
        """The proxy's toxics changed: let each direction look at them again."""
        for direction in self._directions:
            direction.wake()


class _Direction:
    """client → upstream (upstream) or upstream → client (downstream)."""

    def __init__(
        self,
        connection: Connection,
        source: ToxicSource,
        seed_key: str,
        stream: str,
        reader: TcpStream,
        writer: TcpStream,
    ) -> None:
        self._connection = connection
        self._source = source
        self._stream = stream
        self._reader = reader
        self._writer = writer
        self._buffer = memoryview(bytearray(READ_BYTES))
        self._chain = Chain(seed_key)
        self._generation = -1
        self._pending: deque[Event] = deque()
        self._pending_bytes = 0
        self._read_all = False
        self._waiting: anyio.CancelScope | None = None

    def wake(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()

    async def run(self) -> None:
        try:
            await self._pump()
        except OSError as exc:
            log.debug("%s: %r", self._stream, exc)
            self._connection.abort(reset=False)

    async def _pump(self) -> None:
        while True:
            if self._generation != self._source.generation:
                self._generation = self._source.generation
                now_s = anyio.current_time()
                self._queue(self._chain.update(self._source.toxics(self._stream), now_s))
            if not self._chain and not self._pending:
                size = await self._read(math.inf)
                if size is None:
                    continue
                if size == 0:
                    self._writer.send_eof()
                    return
                await self._writer.send(self._buffer[:size])
                continue
            now_s = anyio.current_time()
            due_s = self._due_s()
            if due_s <= now_s:
                if self._pending and self._pending[0].at_s <= now_s:
                    if await self._carry_out(self._pending.popleft()):
                        return
                else:
                    self._queue(self._chain.tick(now_s))
                continue
            if self._read_all or self._pending_bytes >= MAX_PENDING_BYTES:
                await self._sleep_until(due_s)
                continue
            size = await self._read(due_s)
            if size is None:
                continue
            now_s = anyio.current_time()
            if size:
                self._queue(self._chain.data(bytes(self._buffer[:size]), now_s))
            else:
                self._read_all = True
                self._queue(self._chain.end(now_s))

    def _due_s(self) -> float:
        due_s = self._pending[0].at_s if self._pending else math.inf
        deadline_s = self._chain.deadline_s()
        return due_s if deadline_s is None else min(due_s, deadline_s)

    def _queue(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Send):
                self._pending_bytes += len(event.data)
            self._pending.append(event)

    async def _carry_out(self, event: Event) -> bool:
        """Do one due event; True when this direction is over."""
        if isinstance(event, Send):
            self._pending_bytes -= len(event.data)
            await self._writer.send(event.data)
            return False
        if isinstance(event, End):
            self._writer.send_eof()
        elif isinstance(event, Close | Reset):
            self._connection.abort(reset=isinstance(event, Reset))
        return True

    async def _read(self, until_s: float) -> int | None:
        """Bytes read into the buffer, 0 at the end of input, or None when woken (toxics
        changed) or `until_s` came first. Reads at once when it can, with no timer."""
        size = self._try_read()
        if size is not None:
            return size
        with anyio.CancelScope(deadline=until_s) as scope:
            self._waiting = scope
            await self._reader.wait_readable()
        self._waiting = None
        if scope.cancel_called:
            return None
        return self._try_read()

    def _try_read(self) -> int | None:
        """A reset from the peer ends the input like an EOF, as in Toxiproxy: what the toxics
        hold is still delivered, then the end is passed on."""
        try:
            return self._reader.try_receive_into(self._buffer)
        except OSError as exc:
            log.debug("%s: reading: %r", self._stream, exc)
            return 0

    async def _sleep_until(self, until_s: float) -> None:
        with anyio.CancelScope(deadline=until_s) as scope:
            self._waiting = scope
            await anyio.sleep_forever()
        self._waiting = None
