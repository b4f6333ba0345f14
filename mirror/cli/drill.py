"""`regionlink drill run|list|report`: chaos drills from TOML files, judged by the verifier.

The main app mounts this with ``app.add_typer(drill_app, name="drill")``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mirror.cli.runtime import AsJson
from mirror.errors import CliError, ConfigError

drill_app = typer.Typer(
    help="Chaos drills: a topology, a workload and a timeline of faults and failovers, "
    "then a verifier that accounts for every acknowledged record.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

RunsDir = Annotated[
    Path, typer.Option(help="Where each run's directory (history, verdict, logs) is kept.")
]


@drill_app.command("list")
def list_(as_json: AsJson = False) -> None:
    """The drills in the library (chaos/drills/), with what each promises."""
    from chaos.drill.runs import list_drills

    try:
        entries = list_drills()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return
    table = Table(title="drills")
    for column in ("name", "description"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.name, entry.description)
    console.print(table)


@drill_app.command("run")
def run(
    drill: Annotated[
        str, typer.Argument(help="A drill file (.toml) or a drill's name from `drill list`.")
    ],
    seed: Annotated[
        int, typer.Option(help="Picks moments given as ranges and processes picked 'one'.")
    ] = 0,
    runs_dir: RunsDir = Path(".regionlink/drills"),
    as_json: AsJson = False,
) -> None:
    """Run a drill: deploy its topology, run its workload and timeline, verify, clean up.

    Exit code 0 when every invariant the drill declares held and every step ran; 1 when
    not (the report names the records); 2 when the drill could not be read or run.
    """
    from chaos.drill.runner import run_drill
    from chaos.drill.runs import find_drill, new_run_dir, save_run
    from chaos.drill.spec import load_drill

    try:
        loaded = load_drill(find_drill(drill))
        if not loaded.topology_path.exists():
            raise ConfigError(f"{loaded.path}: topology: {loaded.topology_path} does not exist")
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    run_dir = new_run_dir(runs_dir, loaded.model.name, seed)
    progress = (lambda _line: None) if as_json else (lambda line: err.print(f"[dim]{line}[/dim]"))
    result = run_drill(loaded, seed, run_dir, progress)
    data = save_run(result)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _render(data, run_dir)
    if result.error:
        raise CliError(f"drill {loaded.model.name} could not complete: {result.error}")
    if not result.passed:
        sys.exit(1)


@drill_app.command("report")
def report(
    run: Annotated[str, typer.Argument(help="A run directory, or its name (a unique prefix).")],
    runs_dir: RunsDir = Path(".regionlink/drills"),
    as_json: AsJson = False,
) -> None:
    """A finished run's verdict again: invariants, anomalies, failovers, first findings."""
    from chaos.drill.runs import find_run, load_run

    try:
        run_dir = find_run(run, runs_dir)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    data = load_run(run_dir)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _render(data, run_dir)


def _render(data: dict[str, object], run_dir: Path) -> None:
    from chaos.drill.runs import HISTORY_FILE
    from chaos.report import load_verdict, render

    table = Table(title=f"drill {data['drill']} (seed {data['seed']})")
    for column in ("t (s)", "step", "ok", "detail"):
        table.add_column(column)
    steps = data.get("steps") or []
    assert isinstance(steps, list)
    for step in steps:
        mark = "[green]✓[/green]" if step["ok"] else "[red]✗[/red]"
        table.add_row(f"{step['at_s']:.1f}", step["description"], mark, step["detail"])
    console.print(table)
    history = run_dir / HISTORY_FILE
    if data.get("error"):
        console.print(f"[red]could not complete:[/red] {data['error']}")
    elif history.exists():
        console.print(render(load_verdict(history)))
    verdict = "[green]PASSED[/green]" if data["passed"] else "[red]FAILED[/red]"
    console.print(f"drill {data['drill']}: {verdict} — run kept in {run_dir}")
