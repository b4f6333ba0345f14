"""A `regionlink dashboard` process, and the instrumented application writing into the
topology's span store.

`Dashboard` runs the real command on a free loopback port and waits until it answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from broker.ports import free_port
from mirror.runtime.topology import TracingConfig
from mirror.runtime.tracing_env import tracing_environment

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class Dashboard:
    """`regionlink dashboard` on 127.0.0.1 (a free port), until `stop`."""

    def __init__(self, state_dir: Path, *args: str, listen_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state_dir.parent / f"dashboard-{self.port}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mirror.cli", "dashboard", "--state-dir", str(state_dir),
                 "--listen", f"{listen_host}:{self.port}", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )  # fmt: skip
        assert self.process.stdout is not None
        self.banner = [self.process.stdout.readline()]
        if "token (shown once)" in self.banner[0]:
            self.banner.append(self.process.stdout.readline())
        self._wait_answering()

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the dashboard exited: {self.log.read_text()}"
            try:
                urllib.request.urlopen(f"{self.url}/static/dashboard.css", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 without its token)
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the dashboard did not answer in {START_TIMEOUT_S:g}s")

    def stop(self) -> int:
        """SIGTERM, as an operator's Ctrl-C would; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the dashboard did not stop within 10 s of SIGTERM") from None


def traced_app(state_dir: Path, *args: str) -> list[str]:
    """The instrumented application (tests/integration/traced_app.py: the demo's traced
    producer, a consumer continuing the trace) with the topology's tracing environment, so
    its spans land in the topology's span store; the keys it handled."""
    env = tracing_environment(TracingConfig(), state_dir, os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.traced_app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1])["keys"])
