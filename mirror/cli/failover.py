"""`regionlink switchover | failover | failback | endpoint`: move the primary role.

Each reads the topology from the state directory of `regionlink up`, shows its plan with
--dry-run, its steps live as they run (with elapsed time), and one JSON object with
--json: operation, from, to, epoch, rpo_records, rpo_seconds, rto_seconds, observed_age_s,
loss_manifest, diverged, recovered (and recovered_records), pending, not_enforced (external
regions, whose roles regionlink cannot set: each such step carries a `note` saying what the
operator does instead), and the steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mirror.cli.runtime import AsJson, StateDir
from mirror.errors import CliError
from mirror.failover import driver
from mirror.failover.journal import Journal
from mirror.failover.model import OperationKind, OperationReport, Outcome, StepState
from mirror.failover.planner import (
    DEFAULT_CATCH_UP_TIMEOUT_S,
    DEFAULT_DRAIN_TIMEOUT_S,
    Plan,
    Request,
)
from mirror.runtime.secure import admin_client
from mirror.runtime.state import StateDB
from mirror.runtime.status import running_topology

console = Console()

To = Annotated[str, typer.Option("--to", help="The region that becomes primary.")]
DryRun = Annotated[bool, typer.Option(help="Show the plan and change nothing.")]


def _require_topology(state_dir: Path) -> None:
    if not StateDB.exists(state_dir):
        raise CliError(
            f"no topology runs in {state_dir}; start one with: "
            f"regionlink up TOPOLOGY.toml --state-dir {state_dir}"
        )


def _run(state_dir: Path, request: Request, dry_run: bool, as_json: bool) -> None:
    _require_topology(state_dir)
    if dry_run:
        plan = anyio.run(driver.plan_only, state_dir, request)
        _print_plan(plan, as_json)
        return
    progress = _LiveSteps(quiet=as_json)
    with progress:
        report = anyio.run(driver.run, state_dir, request, progress.update)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    if report.outcome is not Outcome.DONE:
        raise typer.Exit(1)


def switchover(
    to: To,
    state_dir: StateDir = Path(".regionlink"),
    drain_timeout_s: Annotated[
        float, typer.Option(help="How long to wait for lag 0 before unfencing and aborting.")
    ] = DEFAULT_DRAIN_TIMEOUT_S,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Planned move of the primary role to --to, losing nothing (RPO 0).

    Fences client writes on the primary, waits until every flow to --to has lag 0, copies
    idle groups' committed offsets, promotes --to's mirror topics to writable, and starts the
    reverse flow so the old primary becomes the mirror. If lag does not reach 0 within
    --drain-timeout-s, the old primary is unfenced and nothing else changes.
    Example: regionlink switchover --to eu-west --state-dir /tmp/rl
    """
    request = Request(OperationKind.SWITCHOVER, to, drain_timeout_s=drain_timeout_s)
    _run(state_dir, request, dry_run, as_json)


def failover(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="The region that becomes primary.")] = None,
    force: Annotated[
        bool, typer.Option(help="Promote --to now, accepting the loss of what it lacks.")
    ] = False,
    state_dir: StateDir = Path(".regionlink"),
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Forced failover when the primary is lost: `failover --to REGION --force`.

    Stops the flow from the old primary, measures exactly what --to lacks (the loss
    manifest, from the old primary's end offsets as last observed), promotes --to, and
    fences the old primary — at once if it answers, else as soon as it is back.
    Without --force it refuses; with the primary reachable use `switchover`.
    Also: `failover status`, `failover history`, `failover show ID`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if to is None:
        raise CliError("failover needs --to REGION (and --force), or one of: status, history, show")
    _run(state_dir, Request(OperationKind.FAILOVER, to, force=force), dry_run, as_json)


def failback(
    to: To,
    state_dir: StateDir = Path(".regionlink"),
    catch_up_timeout_s: Annotated[
        float, typer.Option(help="How long the old primary may take to catch up.")
    ] = DEFAULT_CATCH_UP_TIMEOUT_S,
    drain_timeout_s: Annotated[
        float, typer.Option(help="The final switchover's wait for lag 0.")
    ] = DEFAULT_DRAIN_TIMEOUT_S,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Bring a failed-over old primary back and hand it the primary role again.

    Keeps --to fenced, saves the records it took that were never mirrored into
    `<topic>.diverged` on the current primary (listed in the report), truncates its
    partitions to where the current primary took over, mirrors the current primary into
    it until it has caught up, then switches over to it.
    """
    request = Request(
        OperationKind.FAILBACK,
        to,
        catch_up_timeout_s=catch_up_timeout_s,
        drain_timeout_s=drain_timeout_s,
    )
    _run(state_dir, request, dry_run, as_json)


def status(state_dir: StateDir = Path(".regionlink"), as_json: AsJson = False) -> None:
    """The primary, the topology epoch, each region's role and the running flows."""
    _require_topology(state_dir)
    topology = running_topology(state_dir)
    journal = Journal(state_dir)
    try:
        state = journal.state(driver.initial_state(topology))
        pending = journal.unfinished()
        holder = journal.holder()
    finally:
        journal.close()
    bootstraps = driver.region_bootstraps(state_dir, topology)
    security = admin_client(topology, state_dir)
    confirmed = anyio.run(driver.confirmed_roles, state, bootstraps, security)
    data: dict[str, Any] = {
        **state.to_json(),
        "unfinished": pending.id if pending else None,
        "orchestrator": holder.pid if holder else None,
    }
    for region, role in data["roles"].items():
        role["confirmed"] = confirmed.get(region)  # null: pending and not answering
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"failover: primary {state.primary} at epoch {state.epoch}")
    for column in ("region", "role", "epoch", "confirmed"):
        table.add_column(column)
    for region, role in sorted(state.roles.items()):
        table.add_row(
            region, role.role.value, str(role.epoch), _confirmed(role.pending, confirmed[region])
        )
    console.print(table)
    flows = ", ".join(f"{s}->{t} (epoch {e})" for (s, t), e in sorted(state.flows.items()))
    console.print(f"flows: {flows or 'none'}")
    if pending:
        console.print(f"[yellow]{pending.describe()} is {pending.state.value}: rerun it[/yellow]")


def _confirmed(pending: bool, holds: bool | None) -> str:
    if not pending:
        return "yes"
    if holds:
        return "yes (told on its return)"
    return "no (unreachable)" if holds is None else "no (told within ~1 s by the supervisor)"


def history(state_dir: StateDir = Path(".regionlink"), as_json: AsJson = False) -> None:
    """Every operation, newest first, with its outcome and figures."""
    _require_topology(state_dir)
    journal = Journal(state_dir)
    try:
        rows = [(r, journal.report(r.id)) for r in journal.history()]
    finally:
        journal.close()
    if as_json:
        print(json.dumps([{"id": r.id, **report.to_json()} for r, report in rows], indent=2))
        return
    table = Table(title="failover history")
    for column in ("id", "operation", "from", "to", "epoch", "outcome", "RPO", "RTO"):
        table.add_column(column)
    for record, report in rows:
        table.add_row(
            str(record.id), record.kind.value, record.from_region, record.to_region,
            str(record.epoch), record.state.value, f"{report.rpo_records} records",
            _seconds(report.rto_seconds),
        )  # fmt: skip
    console.print(table)


def show(
    operation_id: Annotated[int, typer.Argument(help="An id from `failover history`.")],
    state_dir: StateDir = Path(".regionlink"),
    as_json: AsJson = False,
) -> None:
    """One operation: its steps with timings, RPO/RTO and loss manifest."""
    _require_topology(state_dir)
    journal = Journal(state_dir)
    try:
        try:
            report = journal.report(operation_id)
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
    finally:
        journal.close()
    if as_json:
        print(json.dumps({"id": operation_id, **report.to_json()}, indent=2))
    else:
        _print_report(report)


class _LiveSteps:
    """Each step with its state and elapsed time, redrawn as the driver reports."""

    def __init__(self, quiet: bool) -> None:
        self.rows: dict[int, tuple[str, str, str]] = {}
        self.live = Live(self._table(), console=console, transient=False, auto_refresh=False)
        self.quiet = quiet

    def __enter__(self) -> _LiveSteps:
        if not self.quiet:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:
            self.live.__exit__(None, None, None)
            if not console.is_terminal:
                console.print()  # a redirected Live leaves its last line open

    def update(self, event: driver.StepEvent) -> None:
        mark = {StepState.STARTED: "…", StepState.DONE: "✓", StepState.FAILED: "✗"}
        if event.state is StepState.FAILED:
            note = f"[red]{event.detail.get('error', '')}[/red]"
        else:  # a step not enforced on an external region says what to do instead
            note = f"[yellow]{event.step.note()}[/yellow]" if not event.step.enforced else ""
        elapsed = "" if event.state is StepState.STARTED else f"{event.elapsed_s:.2f}s"
        self.rows[event.step.index] = (
            f"{mark.get(event.state, '')} {event.step.describe()}",
            elapsed,
            note,
        )
        if not self.quiet:
            self.live.update(self._table(), refresh=True)

    def _table(self) -> Table:
        table = Table(show_header=False, box=None)
        for text, elapsed, note in (self.rows[i] for i in sorted(getattr(self, "rows", {}))):
            table.add_row(text, elapsed, note)
        return table


def _print_plan(plan: Plan, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan.to_json(), indent=2))
        return
    console.print(
        f"{plan.operation.value} {plan.from_region} -> {plan.to_region} "
        f"at topology epoch {plan.epoch} (dry run: nothing changed)"
    )
    for step in plan.steps:
        note = f"  [yellow]{step.note()}[/yellow]" if not step.enforced else ""
        console.print(f"  {step.index + 1}. {step.describe()}  (epoch {step.epoch}){note}")


def _print_report(report: OperationReport) -> None:
    colour = "green" if report.outcome is Outcome.DONE else "red"
    console.print(
        f"[{colour}]{report.operation.value} {report.from_region} -> {report.to_region}: "
        f"{report.outcome.value}[/{colour}] at topology epoch {report.epoch}"
        + (f" — {report.reason}" if report.reason else "")
    )
    console.print(
        f"RPO {report.rpo_records} records ({_seconds(report.rpo_seconds)}), "
        f"RTO {_seconds(report.rto_seconds)}"
        + (
            f", old primary last observed {report.observed_age_s:.1f}s before"
            if report.observed_age_s is not None
            else ""
        )
    )
    lists = (
        ("lost", report.loss_manifest),
        ("saved as .diverged", report.diverged),
        ("recovered", report.recovered),
    )
    for label, items in lists:
        for item in items:
            console.print(
                f"  {label}: {item.topic}[{item.partition}] offsets "
                f"{item.first_offset}-{item.last_offset} ({item.records} records)"
                + (f", copied late into {item.into}" if item.into else "")
            )
    if report.recovered:
        console.print(f"recovered {report.recovered_records} records the failover had lost")
    if report.pending:
        console.print(f"pending (enforced when back): {', '.join(report.pending)}")
    for note in dict.fromkeys(t.step.note() for t in report.steps if not t.step.enforced):
        console.print(f"[yellow]{note}[/yellow]")


def endpoint(
    region: Annotated[
        str | None, typer.Option(help="A region to connect to (default: the active primary).")
    ] = None,
    state_dir: StateDir = Path(".regionlink"),
    as_json: AsJson = False,
) -> None:
    """Where clients should connect now: the active primary's bootstrap and topic names.

    For scripts and service discovery (e.g. rewrite a DNS alias or a client config after a
    switchover). --json: {"region", "primary", "client": {"bootstrap.servers", ...}, "topics"};
    with [security], `client` also holds the admin's librdkafka settings, its password too.
    """
    from mirror.failover.endpoint import endpoint as find

    _require_topology(state_dir)
    data = anyio.run(find, state_dir, region)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(
        f"{data['region']} ({'primary' if data['region'] == data['primary'] else 'standby'}):"
        f" bootstrap.servers={data['client']['bootstrap.servers']}"
    )
    if "security.protocol" in data["client"]:  # the password only with --json
        client = data["client"]
        user = f" sasl.username={client['sasl.username']}" if "sasl.username" in client else ""
        console.print(
            f"  security.protocol={client['security.protocol']}{user}"
            f" ssl.ca.location={client['ssl.ca.location']} (--json: every setting)"
        )
    for topic, name in sorted(data["topics"].items()):
        console.print(f"  {topic} -> {name}")


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}s"


def register(app: typer.Typer) -> None:
    app.command()(switchover)
    failover_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    failover_app.callback()(failover)
    failover_app.command("status")(status)
    failover_app.command("history")(history)
    failover_app.command("show")(show)
    app.add_typer(failover_app, name="failover")
    app.command()(failback)
    app.command()(endpoint)
