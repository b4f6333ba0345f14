"""Real broker processes for integration tests: start, wait until ready, SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.ports import free_port

READY = re.compile(r"ready on ([\d.]+):(\d+)")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class BrokerProcess:
    """One `regionlink broker` OS process; restartable on the same port and data dir."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[str] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> BrokerProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = open(self.log_path, "a")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mirror.cli", *self.command()],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._wait_ready()
        return self

    def command(self) -> list[str]:
        """The `regionlink` subcommand and arguments this process runs."""
        return [
            "broker",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            self.bootstrap,
            "--log-level",
            "info",
            *self.extra_args,
        ]

    def _wait_ready(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        fd = self.process.stdout.fileno()
        seen = ""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.1)
            if readable:
                chunk = os.read(fd, 4096).decode()
                seen += chunk
                if READY.search(seen):
                    return
                if not chunk:
                    break
        self.kill()
        raise RuntimeError(
            f"broker did not become ready: {seen!r}; log: {self.log_path.read_text()[-2000:]}"
        )

    def stop(self) -> int:
        """SIGTERM and wait: the clean shutdown path."""
        return self._signal(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL: nothing gets to flush."""
        return self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing (a hung peer)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _signal(self, signum: int) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        self.process.send_signal(signal.SIGCONT)  # a paused process must see SIGTERM
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[type[BrokerProcess]]:
    started: list[BrokerProcess] = []

    class Tracked(BrokerProcess):
        def start(self) -> BrokerProcess:
            started.append(self)
            return super().start()

    yield Tracked
    for proc in started:
        proc.kill()
    for proc in started:  # a handler bug only closes one connection: make it fail the test
        log_text = proc.log_path.read_text() if proc.log_path.exists() else ""
        assert "internal error" not in log_text, log_text[-3000:]


@pytest.fixture
def broker(broker_factory: type[BrokerProcess], tmp_path: Path) -> BrokerProcess:
    return broker_factory(tmp_path / "broker").start()


# Mirror fixtures live with their helpers; importing them here makes them visible to tests.
from tests.integration.mirror_harness import regions, tansu, worker_factory  # noqa: E402, F401
