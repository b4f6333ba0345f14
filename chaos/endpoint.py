"""Where a workload's clients connect: one region's bootstrap and its names for the topics.

A drill's workload behaves like an application that follows `regionlink endpoint --json`
({"region", "primary", "client": {"bootstrap.servers"}, "topics"}): after a failover the
runner reads the endpoint again and tells the workload to move there. Topics are named
logically (as in the primary region); `topics` maps each to its name in this region (the same
name with mirror topics, `<source>.<topic>` under prefix naming).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Endpoint:
    region: str
    bootstrap: str
    topics: Mapping[str, str] = field(default_factory=dict)  # logical name -> name here

    def topic(self, logical: str) -> str:
        return self.topics.get(logical, logical)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoint:
        return cls(data["region"], data["client"]["bootstrap.servers"], dict(data["topics"]))


def read_endpoint(state_dir: Path, region: str | None = None) -> Endpoint:
    """Ask `regionlink endpoint --json` where clients should go (the primary by default)."""
    command = [sys.executable, "-m", "mirror.cli", "endpoint", "--state-dir", str(state_dir)]
    command += ["--json"] + (["--region", region] if region else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"regionlink endpoint: {done.stderr.strip() or done.stdout.strip()}")
    return Endpoint.from_json(json.loads(done.stdout))
