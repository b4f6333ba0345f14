"""Write one flow's worker config as TOML, from the validated models (round-trips)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirror.config import FlowConfig, MirrorConfig


def _value(value: Any) -> str:
    """A TOML literal: strings, numbers, booleans and lists of them are JSON-compatible."""
    return json.dumps(value)


def flow_toml(mirror: MirrorConfig, flow: FlowConfig) -> str:
    """Every cluster (the cycle check reads region prefixes of all of them), one flow."""
    lines: list[str] = []
    for alias, cluster in sorted(mirror.clusters.items()):
        lines += [f"[clusters.{alias}]"]
        dumped = cluster.model_dump(by_alias=True)  # librdkafka's dotted names, quoted
        lines += [f"{_value(k)} = {_value(v)}" for k, v in dumped.items() if v is not None]
    lines.append("[[flows]]")
    lines += [f"{k} = {_value(v)}" for k, v in flow.model_dump().items() if v is not None]
    return "\n".join(lines) + "\n"


def write_flow_config(folder: Path, mirror: MirrorConfig, flow: FlowConfig) -> Path:
    path = folder / f"{flow.source}--{flow.target}.toml"
    path.write_text(flow_toml(mirror, flow))
    return path
