"""The server's proxies and Toxiproxy's rules for changing them (proxy_collection.go, api.go).

Every change runs under one lock, so two API calls never race on a proxy's listener. What
a call answers (status codes, which field is checked first, what "differs" means) follows
Toxiproxy, so a client written for it, toxiproxy-python included, sees no difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from chaos.proxy.address import format_address, parse_address
from chaos.proxy.errors import (
    ApiError,
    bad_body,
    missing_field,
    proxy_exists,
    proxy_not_found,
)
from chaos.proxy.proxy import Proxy
from chaos.proxy.spec import ToxicSpec, parse_toxic, update_toxic

DEFAULT_LISTEN = "127.0.0.1:0"
"""Where a proxy created without `listen` listens. Toxiproxy binds every interface then; a
fault proxy has no business being reachable from other hosts unless asked."""


@dataclass(frozen=True, slots=True)
class ProxyFields:
    """What a create, update or populate entry asks for."""

    name: str
    listen: str
    upstream: str
    enabled: bool


def parse_proxy(body: Any, current: Proxy | None = None, where: str = "") -> ProxyFields:
    """The fields of a proxy body; missing ones default to `current`'s (for an update)."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    fields: dict[str, str] = {}
    defaults = {
        "name": current.name if current else "",
        "listen": current.listen if current else DEFAULT_LISTEN,
        "upstream": current.upstream if current else "",
    }
    for key, default in defaults.items():
        value = body.get(key, default)
        if not isinstance(value, str):
            raise bad_body(f"{key} must be a string")
        fields[key] = value
    enabled = body.get("enabled", current.enabled if current else True)
    if not isinstance(enabled, bool):
        raise bad_body("enabled must be true or false")
    for key in ("name", "upstream"):
        if not fields[key]:
            raise missing_field(key + where)
    for key in ("listen", "upstream"):
        try:
            parse_address(fields[key])
        except ValueError as exc:
            raise bad_body(f"{key}: {exc}") from None
    return ProxyFields(fields["name"], fields["listen"], fields["upstream"], enabled)


def _differs(proxy: Proxy, fields: ProxyFields) -> bool:
    """Toxiproxy's Differs: another address (port 0 always differs) or another upstream."""
    listen = format_address(*parse_address(fields.listen))
    return listen != proxy.listen or fields.upstream != proxy.upstream


class PopulateError(Exception):
    """A populate that stopped part-way: the error, and the proxies done before it."""

    def __init__(self, error: ApiError, proxies: list[Proxy]) -> None:
        super().__init__(error.message)
        self.error = error
        self.proxies = proxies


class Registry:
    def __init__(self, task_group: TaskGroup, seed: int) -> None:
        self._task_group = task_group
        self._seed = seed
        self._proxies: dict[str, Proxy] = {}
        self._lock = anyio.Lock()

    def proxies(self) -> dict[str, Proxy]:
        return dict(self._proxies)

    def get(self, name: str) -> Proxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise proxy_not_found() from None

    async def create(self, body: Any) -> Proxy:
        fields = parse_proxy(body)
        async with self._lock:
            if fields.name in self._proxies:
                raise proxy_exists()
            proxy = await self._started(fields)
            self._proxies[proxy.name] = proxy
            return proxy

    async def update(self, name: str, body: Any) -> Proxy:
        """A new address or upstream restarts the proxy; `enabled` starts or stops it."""
        async with self._lock:
            proxy = self.get(name)
            fields = parse_proxy(body, current=proxy)
            if _differs(proxy, fields):
                await proxy.stop()
                proxy.listen, proxy.upstream = fields.listen, fields.upstream
            if fields.enabled:
                await _start(proxy, self._task_group)
            else:
                await proxy.stop()
            return proxy

    async def delete(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            await proxy.stop()
            del self._proxies[name]

    async def populate(self, body: Any) -> list[Proxy]:
        """Create or replace each listed proxy; one that is already as asked is kept as is
        (toxics, connections and all). Every entry is checked before any is touched."""
        if not isinstance(body, list):
            raise bad_body("expected a JSON array of proxies")
        entries = [parse_proxy(item, where=f" at proxy {i + 1}") for i, item in enumerate(body)]
        done: list[Proxy] = []
        async with self._lock:
            for fields in entries:
                existing = self._proxies.get(fields.name)
                if existing is not None and not _differs(existing, fields):
                    done.append(existing)
                    continue
                if existing is not None:
                    await existing.stop()
                    del self._proxies[fields.name]
                try:
                    proxy = await self._started(fields)
                except ApiError as exc:
                    raise PopulateError(exc, done) from None
                self._proxies[proxy.name] = proxy
                done.append(proxy)
        return done

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        async with self._lock:
            for proxy in self._proxies.values():
                await _start(proxy, self._task_group)
                proxy.remove_toxics()

    def add_toxic(self, proxy_name: str, body: Any) -> ToxicSpec:
        proxy = self.get(proxy_name)
        toxic = parse_toxic(body)
        proxy.add_toxic(toxic)
        return toxic

    def update_toxic(self, proxy_name: str, toxic_name: str, body: Any) -> ToxicSpec:
        proxy = self.get(proxy_name)
        toxic = update_toxic(proxy.toxic(toxic_name), body)
        proxy.replace_toxic(toxic)
        return toxic

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        self.get(proxy_name).remove_toxic(toxic_name)

    async def close(self) -> None:
        """Stop every proxy (the server is shutting down)."""
        async with self._lock:
            for proxy in self._proxies.values():
                await proxy.stop()

    async def _started(self, fields: ProxyFields) -> Proxy:
        proxy = Proxy(fields.name, fields.listen, fields.upstream, self._seed)
        if fields.enabled:
            await _start(proxy, self._task_group)
        return proxy


async def _start(proxy: Proxy, task_group: TaskGroup) -> None:
    """Start, turning a refused address into the 500 Toxiproxy answers with."""
    try:
        await proxy.start(task_group)
    except OSError as exc:
        raise ApiError(500, f"listen tcp {proxy.listen}: {exc.strerror or exc}") from None
