"""What a toxic is, as Toxiproxy's API describes it, validated once at the edge (pure).

A toxic is `{"name", "type", "stream", "toxicity", "attributes"}`. Toxiproxy's defaults
apply: stream "downstream", toxicity 1.0, name "<type>_<stream>", and every attribute of the
type present (0 unless given) — the Go server decodes attributes into a struct, so its answers
always show them all. We refuse a few values Go accepts and then misbehaves on (negative
times, a slicer with average_size 0, which recurses forever, toxicity outside 0..1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chaos.proxy.errors import bad_body, invalid_stream, invalid_toxic_type

UPSTREAM = "upstream"
"""Client → server: what the proxy's clients send."""
DOWNSTREAM = "downstream"
"""Server → client: what the upstream answers."""
STREAMS = (UPSTREAM, DOWNSTREAM)

# Each type's attributes (all integers in Toxiproxy) and what their units are.
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),  # ms
    "bandwidth": ("rate",),  # KB/s (1 KB = 1000 bytes); 0 = unlimited
    "slow_close": ("delay",),  # ms
    "timeout": ("timeout",),  # ms; 0 = swallow data and never close
    "reset_peer": ("timeout",),  # ms
    "slicer": ("average_size", "size_variation", "delay"),  # bytes, bytes, µs
    "limit_data": ("bytes",),  # bytes
}


@dataclass(frozen=True, slots=True)
class ToxicSpec:
    """One toxic of a proxy. Stages (per connection) are built from it; it holds no state."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, int]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


def parse_toxic(body: Any) -> ToxicSpec:
    """A new toxic from a POST body, checked in Toxiproxy's order: body, stream, type."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    stream = _string(body, "stream", DOWNSTREAM).lower()
    if stream not in STREAMS:
        raise invalid_stream()
    kind = _string(body, "type", "")
    name = _string(body, "name", "") or f"{kind}_{stream}"
    if kind not in TOXIC_ATTRIBUTES:
        raise invalid_toxic_type()
    toxicity = _toxicity(body.get("toxicity", 1.0))
    attributes = _attributes(kind, {}, body.get("attributes"))
    return ToxicSpec(name, kind, stream, toxicity, attributes)


def update_toxic(spec: ToxicSpec, body: Any) -> ToxicSpec:
    """An update changes attributes (only those given) and toxicity, never name, type or stream."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    toxicity = _toxicity(body.get("toxicity", spec.toxicity))
    attributes = _attributes(spec.type, spec.attributes, body.get("attributes"))
    return replace(spec, toxicity=toxicity, attributes=attributes)


def _string(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_body(f"{key} must be a string")
    return value


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body("toxicity must be a number")
    if not 0.0 <= value <= 1.0:
        raise bad_body(f"toxicity must be between 0 and 1, got {value}")
    return float(value)


def _attributes(kind: str, current: Mapping[str, int], given: Any) -> dict[str, int]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise bad_body("attributes must be an object")
    names = TOXIC_ATTRIBUTES[kind]
    merged = {name: current.get(name, 0) for name in names}
    for name in names:
        if name not in given:
            continue
        value = given[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_body(f"attribute {name} of {kind} must be an integer")
        if value < 0:
            raise bad_body(f"attribute {name} of {kind} must not be negative")
        merged[name] = value
    if kind == "slicer" and merged["average_size"] < 1:
        raise bad_body("slicer average_size must be at least 1")
    if kind == "slicer" and merged["size_variation"] >= merged["average_size"]:
        raise bad_body("slicer size_variation must be less than average_size")
    return merged
