"""`regionlink dashboard`: the web dashboard of a running topology.

The main app mounts it with `register(app)`. Starlette, Hypercorn and Jinja2 are imported
only when the command runs, so other commands (and every broker, controller and worker
process) do not pay for them.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from mirror.cli.runtime import StateDir
from mirror.errors import CliError
from mirror.runtime.state import StateDB


def dashboard(
    state_dir: StateDir = Path(".regionlink"),
    listen: Annotated[
        str,
        typer.Option(
            help="HOST:PORT to serve on. Bound to anything but loopback, every request "
            "needs the token."
        ),
    ] = "127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="REGIONLINK_DASHBOARD_TOKEN",
            help="Require this token from every request (?token=... once in a browser, or "
            "Authorization: Bearer). Default: none on loopback; on any other address one is "
            "generated and printed once.",
        ),
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option(help="Where `regionlink drill run` keeps its runs.")
    ] = Path(".regionlink/drills"),
) -> None:
    """Serve a live web dashboard of the topology in --state-dir, read-only.

    Every view has its own URL, for alerts and runbooks to link to:

    /  topology map: regions, brokers (leader/ISR), flows, links, the primary

    /flows/SOURCE:TARGET  lag, throughput, replication latency p50/p99

    /traces?topic=&key=&trace_id=&min_ms=&since=&until=  trace search

    /traces/TRACE_ID  a trace's waterfall across regions

    /failovers, /failovers/ID  operations, steps, RPO/RTO, loss manifest

    /drills, /drills/RUN  drill reports

    Each has a JSON twin under /api/; /api/events streams a sample a second.

    Read-only: GET only, nothing written. Binds to 127.0.0.1 by default; bound
    to any other address, requests without the token get 401.

    Example: regionlink dashboard --state-dir /tmp/rl
    """
    from mirror.cli.app import parse_listen

    if not StateDB.exists(state_dir):
        raise CliError(
            f"no topology in {state_dir}: start one with "
            f"regionlink up TOPOLOGY.toml --state-dir {state_dir}, or pass its --state-dir"
        )
    try:
        host, port = parse_listen(listen)
    except typer.BadParameter as exc:
        raise CliError(f"--listen: {exc}") from None
    _serve(state_dir, runs_dir, host, port, token)


def _serve(state_dir: Path, runs_dir: Path, host: str, port: int, token: str | None) -> None:
    from mirror.dashboard.auth import QUERY, is_loopback
    from mirror.dashboard.config import DashboardConfig
    from mirror.dashboard.server import claim_port, serve

    generated = token is None and not is_loopback(host)
    if generated:
        token = secrets.token_urlsafe(24)
    try:
        port = claim_port(host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    if generated:
        print(f"token (shown once): {token}")
        url += f"?{QUERY}={token}"
    print(f"dashboard of {state_dir} on {url} (read-only; Ctrl-C stops it)", flush=True)
    try:
        serve(DashboardConfig(state_dir, runs_dir, token), host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command()(dashboard)
