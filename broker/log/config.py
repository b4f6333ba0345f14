"""Topic-level log settings, parsed from Kafka's string topic configs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

_DAY_MS = 86_400_000

TOPIC_CONFIG_DEFAULTS: dict[str, str] = {
    "segment.bytes": str(1 << 30),
    "segment.ms": str(7 * _DAY_MS),
    "retention.ms": str(7 * _DAY_MS),
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "delete.retention.ms": str(_DAY_MS),
    "min.compaction.lag.ms": "0",
    "index.interval.bytes": "4096",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
    "compression.type": "producer",
}
# Topic configs under this prefix belong to the links between regions (broker/links.py checks
# them); the log has no use for them and lets them through.
LINK_CONFIG_PREFIX = "regionlink."
_POLICIES = {"delete", "compact"}
_TIMESTAMP_TYPES = {"CreateTime", "LogAppendTime"}
_COMPRESSION_TYPES = {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 1 << 30  # segment.bytes
    segment_ms: int = 7 * _DAY_MS  # segment.ms
    retention_ms: int = 7 * _DAY_MS  # retention.ms, -1 = keep forever
    retention_bytes: int = -1  # retention.bytes, -1 = no size limit
    cleanup_policy: str = "delete"  # cleanup.policy: delete, compact, compact,delete
    delete_retention_ms: int = _DAY_MS  # delete.retention.ms: how long tombstones stay
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms
    index_interval_bytes: int = 4096  # index.interval.bytes
    max_message_bytes: int = 1048588  # max.message.bytes: largest batch accepted
    message_timestamp_type: str = "CreateTime"  # message.timestamp.type
    min_insync_replicas: int = 1  # min.insync.replicas (enforced by replication)
    compression_type: str = "producer"  # compression.type (only "producer" is honoured)

    @classmethod
    def from_topic_configs(cls, configs: Mapping[str, str]) -> LogConfig:
        """Parse Kafka topic configs; a ValueError names the offending key."""
        unknown = sorted(
            key
            for key in configs
            if key not in TOPIC_CONFIG_DEFAULTS and not key.startswith(LINK_CONFIG_PREFIX)
        )
        if unknown:
            raise ValueError(f"unknown topic config {unknown[0]!r}")
        values = {**TOPIC_CONFIG_DEFAULTS, **configs}
        parsed: dict[str, Any] = {field.name: _PARSERS[field.name](values) for field in fields(cls)}
        return cls(**parsed)

    @property
    def compacted(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def deletes(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"


def _int(key: str, minimum: int) -> Callable[[Mapping[str, str]], int]:
    def parse(values: Mapping[str, str]) -> int:
        raw = values[key].strip()
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{key}={raw!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"{key}={value} is below the minimum {minimum}")
        return value

    return parse


def _choice(key: str, allowed: set[str]) -> Callable[[Mapping[str, str]], str]:
    def parse(values: Mapping[str, str]) -> str:
        value = values[key].strip()
        if value not in allowed:
            raise ValueError(f"{key}={value!r} must be one of {', '.join(sorted(allowed))}")
        return value

    return parse


def _cleanup_policy(values: Mapping[str, str]) -> str:
    raw = values["cleanup.policy"]
    policies = {item.strip() for item in raw.split(",") if item.strip()}
    if not policies or not policies <= _POLICIES:
        raise ValueError(f"cleanup.policy={raw!r} must be delete, compact or compact,delete")
    return ",".join(sorted(policies))


_PARSERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "segment_bytes": _int("segment.bytes", 14),
    "segment_ms": _int("segment.ms", 1),
    "retention_ms": _int("retention.ms", -1),
    "retention_bytes": _int("retention.bytes", -1),
    "cleanup_policy": _cleanup_policy,
    "delete_retention_ms": _int("delete.retention.ms", 0),
    "min_compaction_lag_ms": _int("min.compaction.lag.ms", 0),
    "index_interval_bytes": _int("index.interval.bytes", 0),
    "max_message_bytes": _int("max.message.bytes", 0),
    "message_timestamp_type": _choice("message.timestamp.type", _TIMESTAMP_TYPES),
    "min_insync_replicas": _int("min.insync.replicas", 1),
    "compression_type": _choice("compression.type", _COMPRESSION_TYPES),
}
