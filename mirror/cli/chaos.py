"""`regionlink chaos proxy`: the fault proxy drills put between regions.

The main app mounts this with ``app.add_typer(chaos_app, name="chaos")``.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import anyio
import typer

from mirror.errors import CliError

chaos_app = typer.Typer(
    help="Fault injection for drills: WAN latency, bandwidth caps, cuts and resets.",
    no_args_is_help=True,
)


@chaos_app.command("proxy")
def proxy(
    listen: Annotated[
        str, typer.Option(help="HOST:PORT for the HTTP API (port 0 = any; printed at start).")
    ] = "127.0.0.1:8474",
    seed: Annotated[
        int,
        typer.Option(
            help="Seeds which connections a toxic with toxicity < 1 hits, and every jitter "
            "and slice size, so a drill replays the same faults."
        ),
    ] = 0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Run a TCP fault proxy with Toxiproxy's HTTP API.

    Create proxies and add toxics (latency, bandwidth, slow_close, timeout, reset_peer,
    slicer, limit_data) over the API, exactly as with Toxiproxy, for example with
    toxiproxy-python or curl:

      curl -XPOST 127.0.0.1:8474/proxies \\
        -d '{"name": "eu", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9092"}'

      curl -XPOST 127.0.0.1:8474/proxies/eu/toxics \\
        -d '{"type": "latency", "attributes": {"latency": 80}}'

    Prints "regionlink chaos proxy ready on HOST:PORT" once the API is up; SIGTERM or
    Ctrl-C closes every proxy and its connections.
    """
    from chaos.proxy.address import parse_address
    from chaos.proxy.server import ServerConfig, serve

    try:
        host, port = parse_address(listen)
    except ValueError as exc:
        raise CliError(f"--listen: {exc}") from exc
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = ServerConfig(host or "0.0.0.0", port, seed)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            address = await tg.start(serve, config)
            print(f"regionlink chaos proxy ready on {address}", flush=True)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

    try:
        anyio.run(main)
    except* OSError as group:
        error = group.exceptions[0]
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CliError(f"cannot serve the proxy API on {listen}: {detail}") from None
