"""The `regionlink` command's entry point (and `python -m mirror.cli`'s).

kio, which every process imports for Kafka's message types, registers hypothesis strategies
for its types whenever hypothesis is importable — and a development install has it, for the
tests. Importing it took 250-280 ms of every process's start here (`python -X importtime`:
`broker.main` 620-660 ms with it, 340-380 without; `regionlink --help` pays the same): each
broker, controller and worker a topology starts or restarts, and every operator command. No
process of ours uses hypothesis, so the entry point marks it absent before anything imports
kio; a test run, which imports the modules directly, keeps it.
"""

from __future__ import annotations

import sys

TEST_ONLY_MODULES = ("hypothesis",)


def main() -> None:
    for name in TEST_ONLY_MODULES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError
    from mirror.cli.app import main as run

    run()
