"""The steps a drill has carried out on a topology, in its state dir, for the supervisor's
metrics (`regionlink_drill_steps_total`).

A drill (`regionlink drill run`) is a short-lived process, but the topology it runs has a
supervisor that Prometheus scrapes while the drill goes on: each step the runner carries out
is appended here as one JSON line, and the supervisor counts them when scraped, as it
counts failover operations from the journal. Faults, kills and failovers then line up with
the lag and latency graphs of the same run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

STEPS_FILE = "drill-steps.jsonl"


def record_step(state_dir: Path, drill: str, action: str, ok: bool) -> None:
    line = json.dumps({"drill": drill, "action": action, "ok": ok})
    with (state_dir / STEPS_FILE).open("a") as handle:
        handle.write(line + "\n")


def count_steps(state_dir: Path) -> Counter[tuple[str, str, str]]:
    """(drill, action, outcome "ok"/"failed") -> steps; a torn last line is skipped."""
    counts: Counter[tuple[str, str, str]] = Counter()
    try:
        lines = (state_dir / STEPS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return counts
    for line in lines:
        try:
            step = json.loads(line)
            counts[(str(step["drill"]), str(step["action"]), "ok" if step["ok"] else "failed")] += 1
        except (ValueError, KeyError, TypeError):
            continue
    return counts
