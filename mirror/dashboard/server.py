"""Serving the dashboard: Hypercorn on anyio's asyncio backend, until SIGINT or SIGTERM."""

from __future__ import annotations

import socket
from typing import cast

import anyio
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.typing import Framework

from mirror.dashboard.app import create_app
from mirror.dashboard.config import DashboardConfig

GRACE_S = 1.0  # open live feeds are cut after this on shutdown


def claim_port(host: str, port: int) -> int:
    """Check that `host:port` can be listened on (OSError if not), before printing where
    the dashboard is; the port it gets (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = GRACE_S
    config.loglevel = "WARNING"  # we print where it listens ourselves
    return config


def serve(config: DashboardConfig, host: str, port: int) -> None:
    """Run until a signal; OSError when the address cannot be listened on."""
    # Starlette's ASGI types and Hypercorn's describe the same protocol in different words.
    app = cast(Framework, create_app(config))
    anyio.run(hypercorn_serve, app, hypercorn_config(host, port), backend="asyncio")
