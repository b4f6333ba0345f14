"""A broker, controller or worker process imports only what its own command needs, and no
process imports what only the tests use."""

from __future__ import annotations

import subprocess
import sys

import pytest

OPERATOR_MODULES = ("mirror.failover", "mirror.cli.failover", "mirror.cli.chaos", "chaos")


def _imported(*argv: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mirror.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Usage" in result.stdout
    # -X importtime writes "import time: self | cumulative | module" lines to stderr.
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("command", ["broker", "controller", "worker"])
def test_process_commands_do_not_import_the_operator_commands(command: str) -> None:
    modules = _imported(command)
    loaded = sorted(m for m in modules if m.startswith(OPERATOR_MODULES))
    assert not loaded, f"`regionlink {command}` imports {loaded}"


def test_the_operator_commands_are_mounted_for_everything_else() -> None:
    modules = _imported("failover")
    assert "mirror.cli.failover" in modules and "mirror.cli.chaos" in modules


@pytest.mark.parametrize("command", ["broker", "worker", "failover", "status"])
def test_only_the_dashboard_command_loads_the_web_stack(command: str) -> None:
    modules = _imported(command)
    loaded = sorted(m for m in modules if m.startswith(("mirror.dashboard", "jinja2")))
    assert not loaded, f"`regionlink {command}` imports {loaded}"


@pytest.mark.parametrize("command", ["broker", "worker", "failover"])
def test_no_process_imports_the_test_only_libraries(command: str) -> None:
    # kio would import hypothesis whenever it is installed (mirror/cli/entry.py); its one
    # attempt, `hypothesis.strategies`, now fails at once and loads nothing
    modules = _imported(command)
    loaded = sorted(modules & {"hypothesis", "hypothesis.core", "pytest", "trio.testing"})
    assert not loaded, f"`regionlink {command}` imports {loaded}"
