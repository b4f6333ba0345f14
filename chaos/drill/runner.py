"""Run a drill: deploy, load, break things on a timeline, then judge the history.

    regionlink up TOPOLOGY → create topics → workload starts (history.db)
    → each timeline step at its moment: signals (fault-injected / fault-healed events) and
      operations (failover-started / failover-finished events; the workload then follows
      `regionlink endpoint` to the new primary)
    → the workload ends by itself (producers stop, groups drain)
    → thaw what is frozen, wait for the mirrors, read every region's final contents
    → verify (chaos.verifier) → verdict.json; `regionlink down` whatever happened.

Every wait is bounded (the drill's `timeout_s` over the whole run), and cleanup runs on any
exit, an interrupt included.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from broker import telemetry
from chaos.checks.mirrors import MirrorPair
from chaos.contents import end_offsets, read_topics
from chaos.drill.deployment import Deployment, DeploymentError
from chaos.drill.spec import FLOW_ACTIONS, LINK_ACTIONS, OPERATIONS, Action, Drill, link_directions
from chaos.drill.timeline import Scheduled, Timeline
from chaos.endpoint import Endpoint
from chaos.history import HistoryWriter, read_history
from chaos.model import EventKind
from chaos.verifier import Scope, Verdict, verify
from chaos.workload import Workload
from mirror.runtime.drill_steps import record_step
from mirror.runtime.topology import load_topology
from mirror.runtime.tracing_env import tracing_environment

log = logging.getLogger(__name__)

SIGNALS = {Action.KILL: signal.SIGKILL, Action.STOP: signal.SIGSTOP, Action.CONT: signal.SIGCONT}
CAUGHT_UP_TIMEOUT_S = 60.0
DRILL_TOXIC = "drill-"  # name prefix of the toxics a drill adds; `heal` removes them
MOVE_TIMEOUT_S = 45.0
LAG_SAMPLE_S = 1.0  # beyond a producer's 30 s delivery timeout on a frozen region
WAIT_SLICE_S = 0.2  # how long the runner blocks before it looks for an interrupt again


@dataclass
class StepResult:
    at_s: float  # when it ran, from the workload's start
    description: str
    ok: bool
    detail: str = ""


@dataclass
class RunResult:
    drill: str
    file: str
    seed: int
    run_dir: Path
    verdict: Verdict | None = None
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""  # the run could not be completed: no verdict can be trusted

    @property
    def passed(self) -> bool:
        steps_ok = all(step.ok for step in self.steps)
        return not self.error and steps_ok and self.verdict is not None and self.verdict.passed


Progress = Callable[[str], None]


class DrillRunner:
    def __init__(self, drill: Drill, seed: int, run_dir: Path, progress: Progress) -> None:
        self.drill = drill
        self.model = drill.model
        self.timeline = Timeline(self.model.steps, seed)
        self.result = RunResult(self.model.name, str(drill.path), seed, run_dir)
        self.deployment = Deployment(run_dir / "state")
        self.progress = progress
        self.deadline_s = time.monotonic() + self.model.timeout_s
        self.interrupts = InterruptGuard()

    def run(self) -> RunResult:
        try:
            with self.interrupts:
                self._run()
        except (DeploymentError, TimeoutError, RuntimeError) as exc:
            self.result.error = str(exc)
        finally:
            self.progress("cleaning up: regionlink down")
            self.deployment.stop_all()
        return self.result

    def _run(self) -> None:
        self.progress(f"regionlink up {self.drill.topology_path.name}")
        bootstraps = self.deployment.up(self.drill.topology_path)
        self._start_tracing()
        primary = Endpoint.from_json(self.deployment.endpoints())
        self._create_topics(primary.bootstrap)
        history_path = self.result.run_dir / "history.db"
        with HistoryWriter(history_path) as history:
            workload = Workload(self.model.workload.spec(), primary, history)
            self.progress(f"workload on {primary.region}; {len(self.timeline.steps)} steps")
            with workload, _LagSampler(self.deployment, history):
                started_s = time.monotonic()
                try:
                    for scheduled in self.timeline.steps:
                        self._sleep_until(started_s + scheduled.at_s)
                        self._step(scheduled, started_s, history, workload)
                except BaseException:
                    self.deployment.thaw()  # a client blocked on a frozen broker must end
                    raise
                self.progress("workload draining")
                if not self._wait(workload.wait, self.deadline_s):
                    raise TimeoutError(
                        f"the workload outlived the drill's {self.model.timeout_s:g} s"
                    )
            self.deployment.thaw()
            mirrors = self._final_contents(history, bootstraps)
        self.progress("verifying")
        scope = Scope(invariants=self.model.parsed_invariants(), mirrors=mirrors)
        self.result.verdict = verify(read_history(history_path), scope)

    def _start_tracing(self) -> None:
        """The workload's clients trace into the topology's span store, as its processes do
        (the first drill of a process decides: a tracer provider is process-wide)."""
        tracing = load_topology(self.drill.topology_path).tracing
        os.environ.update(tracing_environment(tracing, self.deployment.state_dir, os.environ))
        telemetry.configure("regionlink-drill")

    def _create_topics(self, bootstrap: str) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wanted = [
            NewTopic(t.name, t.partitions, t.replication_factor, config=dict(t.configs))
            for t in self.model.workload.topics
        ]
        for topic, future in admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result(timeout=30)
            except Exception as exc:  # confluent-kafka raises KafkaException
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"creating topic {topic}: {exc}") from None

    def _sleep_until(self, moment_s: float) -> None:
        if moment_s > self.deadline_s:
            raise TimeoutError(f"the timeline outlasts the drill's {self.model.timeout_s:g} s")
        self._wait(_nap, moment_s)

    def _wait(self, wait: Callable[[float], bool], until_s: float) -> bool:
        return wait_in_slices(wait, until_s, self.interrupts)

    def _step(
        self, scheduled: Scheduled, started_s: float, history: HistoryWriter, workload: Workload
    ) -> None:
        at_s = round(time.monotonic() - started_s, 3)
        self.progress(f"t={at_s:6.1f}s {scheduled.describe()}")
        step = scheduled.step
        if step.action in OPERATIONS:
            ok, detail = self._operate(scheduled, history, workload)
        elif step.action is Action.WAIT_CAUGHT_UP:
            ok, detail = self._wait_caught_up(step.timeout_s)
        elif step.action in LINK_ACTIONS:
            ok, detail = self._link_step(scheduled, history)
        elif step.action in FLOW_ACTIONS:
            ok, detail = self._flow_step(scheduled, history)
        else:
            ok, detail = self._signal(scheduled, history)
        self.result.steps.append(StepResult(at_s, scheduled.describe(), ok, detail))
        record_step(self.deployment.state_dir, self.model.name, step.action.value, ok)

    def _signal(self, scheduled: Scheduled, history: HistoryWriter) -> tuple[bool, str]:
        step = scheduled.step
        processes = {name: region for name, (_, region) in self.deployment.processes().items()}
        names = self.timeline.targets(step, processes)
        if not names:
            return False, f"no process matches {step.process!r}"
        pids = self.deployment.signal(names, SIGNALS[step.action])
        kind = EventKind.FAULT_HEALED if step.action is Action.CONT else EventKind.FAULT_INJECTED
        history.event(kind, {"fault": step.action.value, "processes": names, "pids": pids})
        return True, ", ".join(names)

    def _flow_step(self, scheduled: Scheduled, history: HistoryWriter) -> tuple[bool, str]:
        step = scheduled.step
        assert step.flow is not None
        verb = "pause" if step.action is Action.PAUSE_FLOW else "resume"
        try:
            said = self.deployment.run_plain("link", verb, step.flow)
        except DeploymentError as exc:
            return False, str(exc)
        kind = EventKind.FAULT_INJECTED if verb == "pause" else EventKind.FAULT_HEALED
        history.event(kind, {"fault": step.action.value, "flow": step.flow})
        return True, said.splitlines()[-1] if said else ""

    def _link_step(self, scheduled: Scheduled, history: HistoryWriter) -> tuple[bool, str]:
        try:
            return self._change_link(scheduled, history)
        except DeploymentError as exc:
            return False, str(exc)
        except Exception as exc:  # toxiproxy-python: requests' errors and its own
            return False, f"the fault proxy refused: {exc}"

    def _change_link(self, scheduled: Scheduled, history: HistoryWriter) -> tuple[bool, str]:
        """A toxic on a WAN link, the link cut, or healed (drill toxics removed, link up)."""
        step = scheduled.step
        assert step.link is not None
        proxies = self.deployment.link_proxies(link_directions(step.link))
        detail: dict[str, Any] = {"fault": step.action.value, "link": step.link}
        if step.action is Action.FAULT:
            streams = ["upstream", "downstream"] if step.stream == "both" else [step.stream]
            for proxy in proxies:
                for stream in streams:
                    proxy.add_toxic(
                        name=f"{DRILL_TOXIC}{scheduled.index}-{scheduled.round}-{stream}",
                        type=step.toxic, stream=stream, toxicity=step.toxicity,
                        attributes=dict(step.attributes),
                    )  # fmt: skip
            detail |= {"toxic": step.toxic, "attributes": step.attributes, "stream": step.stream}
        elif step.action is Action.CUT:
            for proxy in proxies:
                proxy.disable()
        else:
            for proxy in proxies:
                for name in [n for n in proxy.toxics() if n.startswith(DRILL_TOXIC)]:
                    proxy.destroy_toxic(name)
                proxy.enable()
        healed = step.action is Action.HEAL
        history.event(EventKind.FAULT_HEALED if healed else EventKind.FAULT_INJECTED, detail)
        return True, ", ".join(p.name for p in proxies)

    def _operate(
        self, scheduled: Scheduled, history: HistoryWriter, workload: Workload
    ) -> tuple[bool, str]:
        step = scheduled.step
        assert step.to is not None
        before = self.deployment.journal_primary()  # it may not answer: ask the journal
        history.event(
            EventKind.FAILOVER_STARTED,
            {"operation": step.action.value, "from": before, "to": step.to},
        )
        with _Follower(self.deployment, workload, before):  # clients move at the promotion
            operation = self.deployment.operate(
                step.action.value, step.to, step.timeout_s, step.kill_orchestrator_at
            )
        failed = {"operation": step.action.value, "outcome": "failed", "from": before}
        report = operation.report or {**failed, "to": step.to, "error": operation.error}
        history.event(EventKind.FAILOVER_FINISHED, report)
        if operation.report is None:
            return False, operation.error
        if step.kill_orchestrator_at is not None and not operation.killed_at:
            return False, f"the orchestrator finished before {step.kill_orchestrator_at} started"
        endpoint = Endpoint.from_json(self.deployment.endpoints())
        if workload.endpoint.region == endpoint.region:  # the follower moved them already
            endpoint = workload.endpoint
        moved = workload.move(endpoint, MOVE_TIMEOUT_S)
        detail = f"rpo {report.get('rpo_records')} records, rto {report.get('rto_seconds')} s"
        if operation.killed_at:
            detail = f"orchestrator SIGKILLed at {operation.killed_at}, rerun resumed; {detail}"
        return (
            moved,
            detail if moved else f"{detail}; clients did not move within {MOVE_TIMEOUT_S:g} s",
        )

    def _wait_caught_up(self, timeout_s: float) -> tuple[bool, str]:
        deadline_s = min(self.deadline_s, time.monotonic() + timeout_s)
        topics = [t.name for t in self.model.workload.topics]
        pairs = [  # neither the flows nor where the regions are change while we wait
            (self._endpoint(source), self._endpoint(target))
            for source, target in self.deployment.running_flows()
        ]
        while time.monotonic() < deadline_s:
            if all(end_offsets(a, topics) == end_offsets(b, topics) for a, b in pairs):
                return True, ""
            time.sleep(0.5)
        return False, f"mirrors not caught up within {timeout_s:g} s"

    def _endpoint(self, region: str) -> Endpoint:
        return Endpoint.from_json(self.deployment.endpoint_of(region))

    def _final_contents(
        self, history: HistoryWriter, bootstraps: dict[str, str]
    ) -> tuple[MirrorPair, ...]:
        """Every region's final contents into the history, once the mirrors have copied."""
        self.progress("waiting for the mirrors, reading every region")
        self._wait_caught_up(CAUGHT_UP_TIMEOUT_S)
        topics = [t.name for t in self.model.workload.topics]
        for region in sorted(bootstraps):
            for contents in read_topics(self._endpoint(region), topics, timeout_s=30):
                history.contents(contents)
        flows = self.deployment.running_flows()
        return tuple(MirrorPair(source, target) for source, target in flows)


class _Background:
    """A thread that does `tick` every `interval_s` while the `with` block runs."""

    interval_s = 1.0

    def __init__(self) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def __enter__(self) -> _Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _loop(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:  # a state being rewritten, a region not answering
                log.debug("%s: %s", type(self).__name__, exc)

    def tick(self) -> None:
        raise NotImplementedError


class _LagSampler(_Background):
    """Each running flow's lag (records and ms) as the workers report it, into the history:
    the verifier's `max_lag_*` metrics."""

    interval_s = LAG_SAMPLE_S

    def __init__(self, deployment: Deployment, history: HistoryWriter) -> None:
        super().__init__()
        self.deployment = deployment
        self.history = history

    def tick(self) -> None:
        from mirror.runtime.status import collect

        for flow in collect(self.deployment.state_dir)["flows"]:
            detail = {"flow": f"{flow['source']}:{flow['target']}",
                      "lag_records": flow["lag_records"], "lag_ms": flow["lag_ms"]}  # fmt: skip
            self.history.event(EventKind.LAG_SAMPLED, detail)


class _Follower(_Background):
    """What an application that follows `regionlink endpoint` does during an operation: it
    notices the primary change (the journal's primary moves when the promotion is done) and
    moves its clients there at once, rather than when the operator's command returns."""

    interval_s = 0.1

    def __init__(self, deployment: Deployment, workload: Workload, primary: str) -> None:
        super().__init__()
        self.deployment = deployment
        self.workload = workload
        self.primary = primary

    def tick(self) -> None:
        primary = self.deployment.journal_primary()
        if primary == self.primary:
            return
        endpoint = Endpoint.from_json(self.deployment.endpoint_in_process())
        self.primary = primary
        self.workload.move(endpoint, MOVE_TIMEOUT_S)


def wait_in_slices(wait: Callable[[float], bool], until_s: float, guard: InterruptGuard) -> bool:
    """`wait(timeout_s)` in slices of `WAIT_SLICE_S` until it says done or `until_s`
    (monotonic) has passed, raising an interrupt between slices; whether it said done."""
    while (left_s := until_s - time.monotonic()) > 0:
        if wait(min(WAIT_SLICE_S, left_s)):
            return True
        guard.check()
    return False


def _nap(timeout_s: float) -> bool:
    """A wait that is never done early: `_wait` sleeps in slices with it."""
    time.sleep(timeout_s)
    return False


class InterruptGuard:
    """SIGINT during a drill, raised where the runner waits.

    Python raises KeyboardInterrupt in the main thread when it next runs bytecode, which
    may be long after the signal: the kernel may hand the signal to another thread (a
    workload client's), and a main thread blocked joining the workload for the rest of the
    drill does not wake for it. Waiting in slices of `WAIT_SLICE_S` bounds that; the
    handler also keeps the fact, and the runner raises it again between slices should
    code that swallows what it raises (a finalizer, a callback from C) have eaten it.
    """

    def __init__(self) -> None:
        self.interrupted = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> InterruptGuard:
        self.interrupted.clear()
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self  # a SIGINT ignored from the start (`nohup`, `cmd &`) stays ignored

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: object) -> None:
        self.interrupted.set()
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.interrupted.is_set():
            raise KeyboardInterrupt


def run_drill(drill: Drill, seed: int, run_dir: Path, progress: Progress) -> RunResult:
    run_dir.mkdir(parents=True, exist_ok=False)
    return DrillRunner(drill, seed, run_dir, progress).run()


_NO_VERDICT: dict[str, Any] = {
    "anomalies": {},
    "records_acked": None,
    "records_lost": None,
    "records_duplicated": None,
    "rpo_records": None,
    "rto_seconds": None,
    "metrics": {},
    "failovers": [],
    "invariants": [],
    "findings": [],
}


def summary(result: RunResult) -> dict[str, Any]:
    """The `drill run --json` object."""
    from chaos.report import verdict_json

    verdict = verdict_json(result.verdict) if result.verdict is not None else _NO_VERDICT
    return {
        "drill": result.drill,
        "file": result.file,
        "seed": result.seed,
        "run": str(result.run_dir),
        **verdict,
        "passed": result.passed,
        "error": result.error,
        "steps": [step.__dict__ for step in result.steps],
    }
