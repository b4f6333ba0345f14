"""`regionlink up | down | status | lag | link`: run a topology on this machine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.live import Live

from mirror.errors import CliError, ConfigError
from mirror.runtime.links import initial_links, load_links, running_flows
from mirror.runtime.render import flows_view, lag_view, status_view
from mirror.runtime.state import StateDB, is_ours, pid_alive
from mirror.runtime.status import TOPOLOGY_COPY, collect
from mirror.runtime.topology import TopologyConfig, load_topology

UP_TIMEOUT_S = 90.0
DOWN_TIMEOUT_S = 55.0  # workers, brokers, controllers: up to 15 s each, then leftovers are killed
console = Console()

StateDir = Annotated[Path, typer.Option(help="Where the topology's state, data and logs live.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _load(path: Path) -> TopologyConfig:
    try:
        topology = load_topology(path)
    except ConfigError as exc:
        _fail(str(exc))
    return topology


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _supervisor_pid(state_dir: Path) -> int:
    if not StateDB.exists(state_dir):
        return 0
    pid = int(StateDB(state_dir).meta().get("supervisor_pid", 0))
    return pid if pid_alive(pid) and is_ours(pid) else 0


def up(
    file: Annotated[Path, typer.Argument(help="Topology TOML (see topologies/).")],
    state_dir: StateDir = Path(".regionlink"),
    timeout_s: Annotated[float, typer.Option(help="How long to wait for health.")] = UP_TIMEOUT_S,
    as_json: AsJson = False,
) -> None:
    """Start every controller, broker and mirror worker of a topology; wait until all are healthy.

    Each runs as its own process under a supervisor that restarts crashed ones with backoff;
    data and logs go under --state-dir. Running `up` again with the same file changes nothing.
    Example: regionlink up topologies/two-regions.toml --state-dir /tmp/rl
    """
    _load(file)
    state_dir.mkdir(parents=True, exist_ok=True)
    copy = state_dir / TOPOLOGY_COPY
    if _supervisor_pid(state_dir):
        if copy.exists() and _digest(copy) == _digest(file):
            _show(state_dir, as_json, note=f"already up in {state_dir}; nothing changed")
            return
        _fail(
            f"another topology is running in {state_dir}; "
            f"run: regionlink down --state-dir {state_dir}"
        )
    shutil.copyfile(file, copy)
    (state_dir / "logs").mkdir(exist_ok=True)
    log_path = state_dir / "logs" / "supervisor.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mirror.runtime.supervisor", str(copy), str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    _wait_healthy(state_dir, process, log_path, timeout_s)
    _show(state_dir, as_json, note=f"up: state, data and logs in {state_dir}")


def _wait_healthy(
    state_dir: Path, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    with console.status("starting controllers, brokers and workers…") as spinner:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                reason = StateDB(state_dir).meta().get("error") if StateDB.exists(state_dir) else ""
                _fail(f"the topology did not come up: {reason or f'see {log_path}'}")
            if StateDB.exists(state_dir):
                state = StateDB(state_dir)
                rows = state.processes()
                running = sum(1 for r in rows if r.state == "running")
                spinner.update(f"starting: {running}/{len(rows)} processes running")
                if state.meta().get("status") == "healthy":
                    return
            time.sleep(0.3)
    _fail(f"not healthy after {timeout_s:g}s; see {state_dir / 'logs'}")


def _show(state_dir: Path, as_json: bool, note: str = "") -> None:
    status = collect(state_dir)
    if as_json:
        print(json.dumps(status))
        return
    console.print(status_view(status))
    if note:
        console.print(note, soft_wrap=True)


def down(state_dir: StateDir = Path(".regionlink")) -> None:
    """Stop every process of the topology in --state-dir (workers, brokers, then controllers)."""
    pid = _supervisor_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    leftovers = 0
    if StateDB.exists(state_dir):
        for row in StateDB(state_dir).processes():
            if pid_alive(row.pid) and is_ours(row.pid):
                os.kill(row.pid, signal.SIGKILL)
                leftovers += 1
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    if not pid and not leftovers:
        console.print(f"nothing is running in {state_dir}", soft_wrap=True)
        return
    console.print(
        f"stopped the topology in {state_dir}"
        + (f" ({leftovers} processes had to be killed)" if leftovers else ""),
        soft_wrap=True,
    )


def _require_running(state_dir: Path) -> None:
    if not (state_dir / TOPOLOGY_COPY).exists() or not StateDB.exists(state_dir):
        _fail(
            f"no topology in {state_dir}; start one with: regionlink up FILE --state-dir "
            f"{state_dir}"
        )


def status(
    state_dir: StateDir = Path(".regionlink"),
    as_json: AsJson = False,
    watch: Annotated[bool, typer.Option(help="Refresh every second until Ctrl-C.")] = False,
) -> None:
    """Regions, processes and flows of the running topology, with lag and throughput."""
    _require_running(state_dir)
    if not watch:
        _show(state_dir, as_json)
        return
    with Live(status_view(collect(state_dir)), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(1)
            live.update(status_view(collect(state_dir)))


def lag(state_dir: StateDir = Path(".regionlink"), as_json: AsJson = False) -> None:
    """How far each flow is behind its source, per flow and per most-lagging partition."""
    _require_running(state_dir)
    flows = collect(state_dir)["flows"]
    if as_json:
        print(json.dumps(flows))
        return
    console.print(lag_view(flows))


link_app = typer.Typer(help="List, pause and resume the flows (links) of a running topology.")


@link_app.command("list")
def link_list(state_dir: StateDir = Path(".regionlink"), as_json: AsJson = False) -> None:
    """Every flow with its state and workers."""
    _require_running(state_dir)
    flows = collect(state_dir)["flows"]
    if as_json:
        print(json.dumps([{k: v for k, v in f.items() if k != "partitions"} for f in flows]))
        return
    console.print(flows_view(flows))


def _set_link(state_dir: Path, flow: str, paused: bool) -> None:
    import anyio

    from mirror.control.client import ControlError, pause_flow, resume_flow

    _require_running(state_dir)
    topology = load_topology(state_dir / TOPOLOGY_COPY)
    state = StateDB(state_dir)
    running = running_flows(topology, load_links(state) or initial_links(topology))
    if flow not in {f.spec for f in running}:
        _fail(f"no running flow {flow}; flows are: {', '.join(f.spec for f in running)}")
    state.set_paused(flow, paused)  # the supervisor re-applies it to restarted workers
    source, target = flow.split(":")
    action = pause_flow if paused else resume_flow
    workers = [r for r in state.processes() if r.flow == flow and r.state == "running"]
    for row in workers:
        try:
            ok, message = anyio.run(action, row.address, source, target)
        except ControlError as exc:
            _fail(f"{row.name}: {exc}")
        if not ok:
            _fail(f"{row.name}: {message}")
    verb = "paused" if paused else "resumed"
    console.print(f"{verb} {source} → {target} on {len(workers)} worker(s)", soft_wrap=True)


@link_app.command("pause")
def link_pause(
    flow: Annotated[str, typer.Argument(help="SOURCE:TARGET, e.g. us-east:eu-west")],
    state_dir: StateDir = Path(".regionlink"),
) -> None:
    """Stop copying a flow after the current batch; progress and offsets are kept."""
    _set_link(state_dir, flow, True)


@link_app.command("resume")
def link_resume(
    flow: Annotated[str, typer.Argument(help="SOURCE:TARGET, e.g. us-east:eu-west")],
    state_dir: StateDir = Path(".regionlink"),
) -> None:
    """Continue a paused flow exactly where it stopped."""
    _set_link(state_dir, flow, False)


def register(app: typer.Typer) -> None:
    from mirror.cli.metrics import metrics_app

    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(lag)
    app.add_typer(link_app, name="link")
    app.add_typer(metrics_app, name="metrics")


__all__ = ["register"]
