"""`regionlink metrics list | grafana | targets`: the metric catalog and how to scrape it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from broker.metrics.docs import grafana_json, markdown_table
from mirror.errors import CliError
from mirror.runtime.scrape import file_sd_targets
from mirror.runtime.state import StateDB

metrics_app = typer.Typer(
    help="Prometheus metrics: what each process serves, a Grafana dashboard, scrape targets.",
    no_args_is_help=True,
)


@metrics_app.command("list")
def metrics_list() -> None:
    """Every metric with its type, labels, serving process and meaning (a Markdown table)."""
    print(markdown_table(), end="")


@metrics_app.command("grafana")
def metrics_grafana() -> None:
    """A Grafana dashboard (JSON) with a panel per metric; import it in Grafana."""
    print(grafana_json(), end="")


@metrics_app.command("targets")
def metrics_targets(
    state_dir: Annotated[
        Path, typer.Option(help="Where the topology's state, data and logs live.")
    ] = Path(".regionlink"),
) -> None:
    """The running topology's /metrics endpoints as Prometheus file_sd JSON.

    Example: regionlink metrics targets --state-dir /tmp/rl > /etc/prometheus/regionlink.json
    """
    if not StateDB.exists(state_dir):
        raise CliError(f"no topology in {state_dir}; start one with regionlink up")
    print(json.dumps(file_sd_targets(state_dir), indent=2))
