"""Consecutive produce requests of one connection in flight together, answered in order.

Kafka reads a connection's next request only after answering the last one. With acks=all
that leaves the leader idle while followers fetch, and followers idle while it waits for
the next request: one produce request per replication round trip. Here the connection's
task dispatches a produce request as soon as it is read — its appends happen there, in
request order — and a produce handler with acks=all answers `Later`: only its wait for the
ISR runs as a task, overlapping the next requests. Responses still go out in request
order, at most `MAX_IN_FLIGHT` are outstanding (librdkafka's limit for an idempotent
producer), and any other request is dispatched only once every response before it was
sent, so nothing but produce requests observes the difference.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from broker.protocol.codec import Frame, request_api_key
from broker.protocol.versions import ApiKey

MAX_IN_FLIGHT = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Later(Generic[T]):
    """A response that is ready once `finish()` returns (acks=all: after the ISR wait)."""

    finish: Callable[[], Awaitable[T]]


# What dispatching a request gives: the framed response, Later that gives it, or None (no
# response: acks=0).
Response = Frame | Later[Frame | None] | None


def is_produce(request: bytes | bytearray) -> bool:
    return request_api_key(request) == ApiKey.PRODUCE


@dataclass
class _Slot:
    done: anyio.Event = field(default_factory=anyio.Event)
    response: Frame | None = None
    error: Exception | None = None


class ProducePipeline:
    """Finishes `Later` responses as tasks and sends every response in order."""

    def __init__(self, tasks: TaskGroup, send: Callable[[Frame | None], Awaitable[None]]):
        self._tasks = tasks
        self._send = send
        self._slots: deque[_Slot] = deque()
        self._sent = anyio.Event()  # set whenever a response went out
        self.failure: Exception | None = None  # the first error; the connection must close

    async def room(self) -> None:
        """Wait until another request may be dispatched into the pipeline."""
        while len(self._slots) >= MAX_IN_FLIGHT:
            await self._wait_sent()
        if self.failure is not None:
            raise self.failure

    def add(self, response: Frame | Later[Frame | None] | None) -> None:
        """Queue a dispatched request's response, after those queued before it."""
        slot = _Slot()
        self._slots.append(slot)
        if isinstance(response, Later):
            self._tasks.start_soon(self._finish, slot, response)
        else:
            slot.response = response
            slot.done.set()
        if len(self._slots) == 1:
            self._tasks.start_soon(self._send_in_order)

    async def drain(self) -> None:
        """Return once every queued response is sent."""
        while self._slots:
            await self._wait_sent()
        if self.failure is not None:
            raise self.failure

    async def _wait_sent(self) -> None:
        if self.failure is not None:
            raise self.failure
        await self._sent.wait()

    async def _finish(self, slot: _Slot, later: Later[Frame | None]) -> None:
        try:
            slot.response = await later.finish()
        except Exception as exc:  # kept for the sender, which fails the connection
            slot.error = exc
        slot.done.set()

    async def _send_in_order(self) -> None:
        while self._slots and self.failure is None:
            slot = self._slots[0]
            await slot.done.wait()
            try:
                if slot.error is not None:
                    raise slot.error
                await self._send(slot.response)
            except Exception as exc:
                self.failure = exc
                self._tasks.cancel_scope.cancel()  # the connection's task may be receiving
            self._slots.popleft()
            self._sent.set()
            self._sent = anyio.Event()
