"""What a dashboard serves: one topology's state directory and the drills' runs directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.spanstore import SPANS_FILE

DEFAULT_RUNS_DIR = Path(".regionlink/drills")


@dataclass(frozen=True)
class DashboardConfig:
    state_dir: Path
    runs_dir: Path = DEFAULT_RUNS_DIR
    token: str | None = None  # required from every request when set

    @property
    def spans_path(self) -> Path:
        """The topology's span store (`broker.spanstore`), where its processes write."""
        return self.state_dir / SPANS_FILE
