"""One proxy: a listener, its upstream, its toxics and the connections it carries.

Started in the server's long-lived task group, so a proxy outlives the HTTP request that
created it. Stopping (disable, delete, a changed address) closes the listener and every
connection, as Toxiproxy does, and returns only once the port is free again. Connections
are numbered in the order they were accepted; with the server's seed that number decides
which connections a toxic with toxicity < 1 hits.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

import anyio
from anyio.abc import TaskGroup

from chaos.proxy.address import format_address, parse_address
from chaos.proxy.errors import toxic_exists, toxic_not_found
from chaos.proxy.link import Connection
from chaos.proxy.sockets import TcpStream, accept, connect, listen
from chaos.proxy.spec import STREAMS, ToxicSpec

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
"""Give up dialling the upstream after this; the client's connection is then closed."""


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str, seed: int) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self._seed = seed
        self._toxics: dict[str, ToxicSpec] = {}
        self._generation = 0
        self._connections: set[Connection] = set()
        self._accepted = 0
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxic_list()],
        }

    # Toxics -------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def toxics(self, stream: str) -> Sequence[ToxicSpec]:
        return [toxic for toxic in self._toxics.values() if toxic.stream == stream]

    def toxic_list(self) -> list[ToxicSpec]:
        """Upstream toxics, then downstream ones, each in the order added (as Toxiproxy)."""
        return [toxic for stream in STREAMS for toxic in self.toxics(stream)]

    def toxic(self, name: str) -> ToxicSpec:
        try:
            return self._toxics[name]
        except KeyError:
            raise toxic_not_found() from None

    def add_toxic(self, toxic: ToxicSpec) -> None:
        if toxic.name in self._toxics:
            raise toxic_exists()
        self._toxics[toxic.name] = toxic
        self._changed()

    def replace_toxic(self, toxic: ToxicSpec) -> None:
        self.toxic(toxic.name)
        self._toxics[toxic.name] = toxic
        self._changed()

    def remove_toxic(self, name: str) -> None:
        self.toxic(name)
        del self._toxics[name]
        self._changed()

    def remove_toxics(self) -> None:
        if self._toxics:
            self._toxics.clear()
            self._changed()

    def _changed(self) -> None:
        self._generation += 1
        for connection in self._connections:
            connection.wake()

    # Listening ----------------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        """Listen (raises OSError if the address is taken); a port of 0 becomes the real one."""
        if self.enabled:
            return
        host, port = parse_address(self.listen)
        listener = listen(host, port)
        bound_host, bound_port = listener.getsockname()[:2]
        self.listen = format_address(host or str(bound_host), int(bound_port))
        self._scope = anyio.CancelScope()
        self._stopped = anyio.Event()
        self.enabled = True
        task_group.start_soon(self._serve, listener, self._scope, self._stopped)
        log.info("proxy %s listening on %s for %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        """Close the listener and every connection; back once all are closed."""
        if not self.enabled or self._scope is None:
            return
        self.enabled = False
        self._scope.cancel()
        await self._stopped.wait()
        log.info("proxy %s stopped", self.name)

    async def _serve(
        self, listener: socket.socket, scope: anyio.CancelScope, stopped: anyio.Event
    ) -> None:
        try:
            with scope, listener:
                async with anyio.create_task_group() as connections:
                    while True:
                        client = await accept(listener)
                        connections.start_soon(self._carry, client)
        finally:
            stopped.set()

    async def _carry(self, client: TcpStream) -> None:
        index = self._accepted
        self._accepted += 1
        host, port = parse_address(self.upstream)
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_S):
                upstream = await connect(host, port)
        except (OSError, TimeoutError) as exc:
            log.warning("proxy %s: cannot reach upstream %s: %s", self.name, self.upstream, exc)
            client.close()
            return
        except BaseException:
            client.close()
            raise
        connection = Connection(self, f"{self._seed}/{self.name}/{index}", client, upstream)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
