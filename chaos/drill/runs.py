"""Where drills and their runs live.

A run's directory (`<runs-dir>/<drill>-<UTC time>-seed<N>/`) keeps everything needed to
judge it again later: `history.db` (the history, and the verdict with every finding, see
`chaos.report`), `run.json` (the `drill run --json` object: steps, errors, headline figures)
and `state/` (the topology's state directory: journal, logs of every process).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.drill.runner import RunResult, summary
from chaos.drill.spec import load_drill
from chaos.report import save_verdict
from mirror.errors import ConfigError

LIBRARY = Path(__file__).resolve().parent.parent / "drills"
RUN_FILE = "run.json"
HISTORY_FILE = "history.db"


@dataclass(frozen=True)
class DrillEntry:
    name: str
    file: str
    description: str


def list_drills(directory: Path = LIBRARY) -> list[DrillEntry]:
    """Every drill file in `directory`, by name; ConfigError if one does not load."""
    entries = []
    for path in sorted(directory.glob("*.toml")):
        drill = load_drill(path)
        entries.append(DrillEntry(drill.model.name, str(path), drill.model.description.strip()))
    return entries


def find_drill(name_or_file: str, directory: Path = LIBRARY) -> Path:
    """A drill file given as a path, or as the name of a drill in the library."""
    path = Path(name_or_file)
    if path.suffix == ".toml" or path.exists():
        return path
    for entry in list_drills(directory):
        if entry.name == name_or_file:
            return Path(entry.file)
    known = ", ".join(e.name for e in list_drills(directory))
    raise ConfigError(f"no drill {name_or_file!r}: give a .toml file or one of: {known}")


def new_run_dir(runs_dir: Path, drill: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return runs_dir / f"{drill}-{stamp}-seed{seed}"


def save_run(result: RunResult) -> dict[str, Any]:
    data = summary(result)
    (result.run_dir / RUN_FILE).write_text(json.dumps(data, indent=2) + "\n")
    if result.verdict is not None:
        save_verdict(result.run_dir / HISTORY_FILE, result.verdict)
    return data


def find_run(run: str, runs_dir: Path) -> Path:
    """A run directory given as a path, or a run's name (or its unique prefix) in runs_dir."""
    path = Path(run)
    if (path / RUN_FILE).exists():
        return path
    matches = sorted(p for p in runs_dir.glob(f"{run}*") if (p / RUN_FILE).exists())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(f"no drill run {run!r} in {runs_dir}")
    names = ", ".join(p.name for p in matches[:5])
    raise ConfigError(f"{run!r} names {len(matches)} runs in {runs_dir}: {names}")


def load_run(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / RUN_FILE).read_text()))
