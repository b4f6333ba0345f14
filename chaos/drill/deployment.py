"""A topology under `regionlink up`, driven through the command line as an operator would.

Every call is a `regionlink` subprocess with a timeout, so a drill exercises exactly what an
operator runs (and an orchestrator killed by a drill is a real process). `stop_all` always
leaves nothing behind: frozen processes are thawed first so they see `regionlink down`, and
whatever `down` could not stop is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.runtime.state import kill_leftovers

CLI_TIMEOUT_S = 120.0
KILL_POLL_S = 0.01


class DeploymentError(RuntimeError):
    """A `regionlink` command failed; the message is its one-line error."""


@dataclass
class Operation:
    """One switchover, failover or failback as it ran."""

    report: dict[str, Any] | None  # its --json report; None if it failed
    error: str  # its error line; "" when done
    killed_at: str = ""  # the step kind its first orchestrator was SIGKILLed at, if it was


@dataclass
class Deployment:
    state_dir: Path
    stopped: set[int] = field(default_factory=set)  # pids the drill froze

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mirror.cli", *args, "--state-dir", str(self.state_dir)]

    def run(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> Any:
        """A `regionlink ... --json` command's output; DeploymentError with its error line."""
        return json.loads(self.run_plain(*args, "--json", timeout_s=timeout_s))

    def run_plain(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """A `regionlink` command's output; DeploymentError with its error line."""
        try:
            done = subprocess.run(
                self.command(*args), capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise DeploymentError(f"regionlink {args[0]} took over {timeout_s:g} s") from None
        if done.returncode != 0:
            lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
            raise DeploymentError(f"regionlink {' '.join(args)}: {lines[-1]}")
        return done.stdout.strip()

    def up(self, topology: Path) -> dict[str, str]:
        """Start the topology; each region's bootstrap."""
        started = self.run("up", str(topology), timeout_s=180)
        return {region: info["bootstrap"] for region, info in started["regions"].items()}

    def processes(self) -> dict[str, tuple[int, str]]:
        """name -> (pid, region) of every process the supervisor runs now."""
        rows = self.run("status")["processes"]
        return {row["name"]: (int(row["pid"]), row["region"]) for row in rows if row["pid"]}

    def signal(self, names: list[str], signum: signal.Signals) -> list[int]:
        """Send `signum` to the named processes; the pids it reached."""
        known = self.processes()
        reached = []
        for name in names:
            pid = known[name][0]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
                reached.append(pid)
            if signum is signal.SIGSTOP:
                self.stopped.add(pid)
            elif signum is signal.SIGCONT:
                self.stopped.discard(pid)
        return reached

    def operate(
        self, operation: str, to: str, timeout_s: float, kill_at: str | None = None
    ) -> Operation:
        """Run `regionlink switchover|failover|failback --to TO`; with `kill_at` (a step
        kind), SIGKILL that orchestrator once it has started such a step, then run the same
        command again, which resumes the operation from the journal."""
        args = [operation, "--to", to] + (["--force"] if operation == "failover" else [])
        killed_at = ""
        if kill_at is not None:
            first = subprocess.Popen(
                self.command(*args, "--json"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline_s = time.monotonic() + timeout_s
            while first.poll() is None and time.monotonic() < deadline_s:
                if kill_at in self.started_steps():
                    first.kill()
                    killed_at = kill_at
                    break
                time.sleep(KILL_POLL_S)
            if first.poll() is None and not killed_at:
                first.kill()
            first.wait()
        try:
            report = self.run(*args, timeout_s=timeout_s)
        except DeploymentError as exc:
            return Operation(None, str(exc), killed_at)
        return Operation(report, "", killed_at)

    def started_steps(self) -> set[str]:
        """Kinds of the unfinished operation's steps journaled as started or further."""
        from mirror.failover.journal import Journal

        if not (self.state_dir / "failover.db").exists():
            return set()
        journal = Journal(self.state_dir)
        try:
            record = journal.unfinished()
            if record is None:
                return set()
            kinds = {step.index: step.kind.value for step in record.plan.steps}
            return {kinds[e.index] for e in journal.entries(record.id) if e.index in kinds}
        finally:
            journal.close()

    def journal_primary(self) -> str:
        """The primary as the failover journal says now (read in-process: cheap to poll)."""
        from mirror.failover.driver import initial_state
        from mirror.failover.journal import Journal
        from mirror.runtime.status import running_topology

        journal = Journal(self.state_dir)
        try:
            return journal.state(initial_state(running_topology(self.state_dir))).primary
        finally:
            journal.close()

    def endpoint_in_process(self) -> dict[str, Any]:
        """What `regionlink endpoint --json` prints, without starting a process."""
        import anyio

        from mirror.failover.endpoint import endpoint

        return dict(anyio.run(endpoint, self.state_dir, None))

    def endpoints(self) -> dict[str, Any]:
        """`regionlink endpoint --json` for the primary."""
        return dict(self.run("endpoint"))

    def endpoint_of(self, region: str) -> dict[str, Any]:
        return dict(self.run("endpoint", "--region", region))

    def running_flows(self) -> list[tuple[str, str]]:
        status = self.run("failover", "status")
        return [(f["source"], f["target"]) for f in status["flows"]]

    def link_proxies(self, directions: list[str]) -> list[Any]:
        """The fault proxies (toxiproxy-python objects) of the named link directions ("a->b"):
        all of them, one per broker of the direction's target region."""
        from mirror.runtime.state import StateDB
        from mirror.runtime.wan import in_direction, toxiproxy_server

        wan = StateDB(self.state_dir).meta().get("wan")
        if not isinstance(wan, dict):
            raise DeploymentError("the topology has no WAN links ([links] in its file)")
        planned = [proxy["name"] for proxy in wan["proxies"]]
        names = [name for d in directions for name in planned if in_direction(name, d)]
        missing = [d for d in directions if not any(in_direction(n, d) for n in names)]
        if missing:
            raise DeploymentError(f"no WAN link {', '.join(missing)}; links: {', '.join(planned)}")
        proxies = toxiproxy_server(wan["api"]).proxies()
        if gone := [name for name in names if name not in proxies]:
            raise DeploymentError(f"the fault proxy has lost {', '.join(gone)}")
        return [proxies[name] for name in names]

    def thaw(self) -> None:
        """SIGCONT every process the drill froze and did not thaw itself."""
        for pid in sorted(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.stopped.clear()

    def stop_all(self) -> None:
        """Thaw what the drill froze, `regionlink down`, SIGKILL whatever is left."""
        self.thaw()
        if not (self.state_dir / "state.db").exists():
            return
        try:
            self.run_plain("down", timeout_s=90)
        except DeploymentError:
            kill_leftovers(self.state_dir)
