"""The proxy server: Toxiproxy's API on Hypercorn and the proxies, under one anyio task group.

Hypercorn runs the Starlette app on the same (asyncio) event loop as the proxies, so an API
call changes a proxy directly, with no threads or locks beyond the registry's. We bind the
API socket ourselves and hand it to Hypercorn, so port 0 works and the caller learns the
real address before the first request.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import cast

import anyio
from anyio.abc import TaskStatus
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.typing import Framework
from starlette.applications import Starlette

from chaos.proxy.address import format_address
from chaos.proxy.api import create_app
from chaos.proxy.registry import Registry

GRACEFUL_S = 1.0
"""On shutdown, how long API requests in flight may take to finish."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8474
    seed: int = 0
    """Decides which connections a toxic with toxicity < 1 hits, and every jitter and slice."""


async def serve(
    config: ServerConfig, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Run until cancelled; `task_status.started` gets the API's address, HOST:PORT.

    On cancellation the API stops taking requests and every proxy closes its listener and
    connections before this returns.
    """
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    listener = socket.create_server((config.host, config.port), family=family)
    host, port = listener.getsockname()[:2]
    http_config = Config()
    http_config.bind = [f"fd://{listener.detach()}"]
    http_config.loglevel = "WARNING"
    http_config.graceful_timeout = GRACEFUL_S
    stop_http = anyio.Event()
    async with anyio.create_task_group() as tg:
        registry = Registry(tg, config.seed)
        app = create_app(registry)
        tg.start_soon(_serve_http, app, http_config, stop_http)
        task_status.started(format_address(host, port))
        try:
            await anyio.sleep_forever()
        finally:
            stop_http.set()
            with anyio.CancelScope(shield=True):
                await registry.close()


async def _serve_http(app: Starlette, config: Config, stop: anyio.Event) -> None:
    """Hypercorn, shielded from the task group's cancellation: it stops when `stop` is set,
    so it finishes the requests in flight and closes its sockets in order."""
    with anyio.CancelScope(shield=True):
        # Starlette's ASGI types are looser than Hypercorn's; the app is a plain ASGI 3 app.
        await hypercorn_serve(cast(Framework, app), config, shutdown_trigger=stop.wait)
