"""`make bench`: the same confluent-kafka workload against our broker and Tansu, in one run.

Brokers run one at a time (never side by side) so they do not compete for CPU; every
client step runs in its own process (bench.workload). Results go to the terminal, to
bench-results/broker-bench-<date>.json, and with --json to stdout as JSON only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from bench.brokers import BROKERS, REPO_ROOT, BrokerSpec, BrokerStartError, RunningBroker, launch
from bench.machine import machine_info
from bench.report import BrokerOutcome, print_report, results_json, save_results
from bench.scenarios import BenchOptions, Scenario, ScenarioError, ScenarioResult, build_scenarios

BUSY_LOAD_PER_CORE = 0.25


def parse_partitions(text: str) -> list[int]:
    """'1,8' -> [1, 8]."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("partition counts must be >= 1")
    return counts


def positive_int(text: str) -> int:
    """An int >= 1, for argparse."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_bench", description=__doc__)
    parser.add_argument("--records", type=positive_int, default=200_000, help="records per run")
    parser.add_argument("--value-bytes", type=positive_int, default=1024, help="value size")
    parser.add_argument("--partitions", type=parse_partitions, default=[1, 8], help="e.g. 1,8")
    parser.add_argument("--only", choices=sorted(BROKERS), help="run one broker only")
    parser.add_argument("--repeat", type=positive_int, default=3, help="rounds; medians shown")
    parser.add_argument("--json", action="store_true", help="print JSON results only")
    parser.add_argument("--start-timeout-s", type=float, default=30.0)
    parser.add_argument("--client-timeout-s", type=float, default=300.0)
    return parser.parse_args(argv)


def command_line(argv: list[str]) -> str:
    """How this run was invoked, for the results table."""
    return "make bench" if not argv else f"python -m bench.broker_bench {shlex.join(argv)}"


def run_scenario(
    broker: RunningBroker, scenario: Scenario, options: BenchOptions
) -> ScenarioResult:
    """One scenario run; a failure becomes a result carrying one readable error line."""
    try:
        result = scenario.run(broker, options)
    except ScenarioError as exc:
        result = ScenarioResult(error=str(exc))
    if result.error and not broker.alive():
        result.error += f" (broker exited {broker.process.returncode}: {broker.log_tail()})"
    return result


def bench_round(
    spec: BrokerSpec,
    outcome: BrokerOutcome,
    scenarios: list[Scenario],
    options: BenchOptions,
    args: argparse.Namespace,
    status: Console,
) -> None:
    """Start a fresh broker, run every scenario once into `outcome`, always stop it."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.name}-") as work_dir:
        try:
            broker = launch(spec, Path(work_dir), args.start_timeout_s)
        except BrokerStartError as exc:
            outcome.start_error = str(exc)
            return
        try:
            for scenario in scenarios:
                runs = outcome.runs.setdefault(scenario.name, [])
                status.print(f"{spec.name}: {scenario.name} (run {len(runs) + 1}/{args.repeat})")
                runs.append(run_scenario(broker, scenario, options))
                if not broker.alive():
                    break
        finally:
            broker.stop()


def bench_all(
    names: list[str], scenarios: list[Scenario], args: argparse.Namespace, status: Console
) -> dict[str, BrokerOutcome]:
    """`--repeat` rounds; each round runs each broker in turn, so drift hits both alike."""
    options = BenchOptions(args.records, args.value_bytes, args.client_timeout_s)
    outcomes = {name: BrokerOutcome(name) for name in names}
    for _ in range(args.repeat):
        for name in names:
            if outcomes[name].start_error is None:
                bench_round(BROKERS[name], outcomes[name], scenarios, options, args, status)
    return outcomes


def warn_if_busy(machine: dict[str, Any], status: Console) -> None:
    """Say so when other work is running: the brokers and clients share these cores."""
    load = machine.get("load_avg_1m")
    if load is not None and load > BUSY_LOAD_PER_CORE * machine["cores"]:
        status.print(
            f"warning: 1-minute load average is {load:.2f} on {machine['cores']} cores; "
            "figures will be noisy",
            style="yellow",
        )


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the brokers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    exit_on_sigterm()
    scenarios = build_scenarios(args.partitions)
    names = [args.only] if args.only else ["ours", "tansu"]
    status = Console(stderr=True, highlight=False)
    machine = machine_info()
    warn_if_busy(machine, status)
    outcomes = bench_all(names, scenarios, args, status)
    command = command_line(argv)
    results = results_json(command, machine, vars(args), scenarios, outcomes)
    saved = save_results(results, "broker-bench")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        title = f"{args.records:,} x {args.value_bytes} B records, acks=all, no compression"
        print_report(Console(), command, machine, scenarios, outcomes, title)
        status.print(f"results saved to {saved.relative_to(REPO_ROOT)}")
    failed = any(
        o.start_error or any(o.errors(s.name) for s in scenarios) for o in outcomes.values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
