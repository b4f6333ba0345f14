"""What the supervisor runs: one spec per controller, broker or worker process, and how it is
watched."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildSpec:
    name: str  # unique in the topology, also the log file's stem
    kind: str  # "controller" | "broker" | "worker"
    region: str
    flow: str  # "source:target" for workers
    argv: tuple[str, ...]
    ready: re.Pattern[str]  # matched on stdout; group 1 is the address to record
    log_path: Path


NODE_READY = re.compile(r"ready on (\S+:\d+)")  # brokers and controllers alike
WORKER_READY = re.compile(r"control API on (\S+:\d+)")


def regionlink_argv(*args: str) -> tuple[str, ...]:
    """This interpreter running our CLI, so children use the same venv."""
    return (sys.executable, "-m", "mirror.cli", *args)


def controller_spec(
    state_dir: Path,
    region: str,
    index: int,
    quorum: str,
    replication_factor: int,
    security: tuple[str, ...] = (),
) -> ChildSpec:
    """Controller `index` of `region`; it listens on its own entry of `quorum`; `security`
    are its mutual-TLS arguments (mirror/runtime/secure.py)."""
    return _node_spec(
        state_dir,
        region,
        "controller",
        index,
        ("--quorum", quorum, "--default-replication-factor", str(replication_factor), *security),
    )


def broker_spec(
    state_dir: Path,
    region: str,
    index: int,
    port: int,
    quorum: str | None = None,
    listeners: tuple[str, ...] = (),
    security: tuple[str, ...] = (),
) -> ChildSpec:
    """Broker `index` of `region`: single-node without `quorum`, else registered with it;
    `listeners` are its `--listener` arguments (WAN links' proxies in front of it),
    `security` its TLS/SASL ones (mirror/runtime/secure.py)."""
    cluster = ("--controllers", quorum) if quorum else ()
    args = ("--listen", f"127.0.0.1:{port}", *cluster, *listeners, *security)
    return _node_spec(state_dir, region, "broker", index, args)


def _node_spec(
    state_dir: Path, region: str, kind: str, index: int, args: tuple[str, ...]
) -> ChildSpec:
    """A region's controller or broker: `regionlink KIND`, its own data dir and log."""
    return ChildSpec(
        name=f"{region}/{kind}-{index}",
        kind=kind,
        region=region,
        flow="",
        argv=regionlink_argv(
            kind,
            "--data-dir",
            str(state_dir / "data" / region / f"{kind}-{index}"),
            "--node-id",
            str(index),
            *args,
        ),
        ready=NODE_READY,
        log_path=state_dir / "logs" / f"{region}-{kind}-{index}.log",
    )


def worker_spec(
    state_dir: Path, source: str, target: str, index: int, config: Path, control_port: int
) -> ChildSpec:
    flow = f"{source}:{target}"
    worker_id = f"{source}-{target}-{index}"
    return ChildSpec(
        name=f"{source}->{target}/worker-{index}",
        kind="worker",
        region=source,
        flow=flow,
        argv=regionlink_argv(
            "worker",
            "--config",
            str(config),
            "--worker-id",
            worker_id,
            "--control-listen",
            f"127.0.0.1:{control_port}",
            "--metrics-file",
            str(state_dir / "metrics" / f"{worker_id}.jsonl"),
        ),
        ready=WORKER_READY,
        log_path=state_dir / "logs" / f"worker-{worker_id}.log",
    )
