"""Topic-level log settings, parsed from Kafka's string configs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TOPIC_CONFIG_DEFAULTS: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": str(7 * 86_400_000),
    "retention.bytes": "-1",
    "segment.bytes": str(1 << 30),
    "segment.ms": str(7 * 86_400_000),
    "delete.retention.ms": str(86_400_000),
    "min.compaction.lag.ms": "0",
    "index.interval.bytes": "4096",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
    "compression.type": "producer",
}
_CLEANUP_POLICIES = {"delete", "compact", "compact,delete", "delete,compact"}
_TIMESTAMP_TYPES = {"CreateTime", "LogAppendTime"}


def _int(configs: Mapping[str, str], key: str, minimum: int) -> int:
    raw = configs.get(key, TOPIC_CONFIG_DEFAULTS[key])
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{key}={value} is below the minimum {minimum}")
    return value


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 86_400_000
    retention_ms: int = 7 * 86_400_000  # -1 = keep forever
    retention_bytes: int = -1
    cleanup_policy: str = "delete"
    delete_retention_ms: int = 86_400_000
    min_compaction_lag_ms: int = 0
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"

    @classmethod
    def from_topic_configs(cls, configs: Mapping[str, str]) -> LogConfig:
        """Parse Kafka topic configs; ValueError names the bad key."""
        unknown = set(configs) - set(TOPIC_CONFIG_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown topic config {sorted(unknown)[0]!r}")
        policy = configs.get("cleanup.policy", "delete").replace(" ", "")
        if policy not in _CLEANUP_POLICIES:
            raise ValueError(f"cleanup.policy={policy!r} must be delete, compact or both")
        timestamp_type = configs.get("message.timestamp.type", "CreateTime")
        if timestamp_type not in _TIMESTAMP_TYPES:
            raise ValueError(f"message.timestamp.type={timestamp_type!r} must be CreateTime or LogAppendTime")
        _int(configs, "min.insync.replicas", 1)  # validated here, enforced by replication
        return cls(
            segment_bytes=_int(configs, "segment.bytes", 14),
            segment_ms=_int(configs, "segment.ms", 1),
            retention_ms=_int(configs, "retention.ms", -1),
            retention_bytes=_int(configs, "retention.bytes", -1),
            cleanup_policy=policy,
            delete_retention_ms=_int(configs, "delete.retention.ms", 0),
            min_compaction_lag_ms=_int(configs, "min.compaction.lag.ms", 0),
            index_interval_bytes=_int(configs, "index.interval.bytes", 0),
            max_message_bytes=_int(configs, "max.message.bytes", 0),
            message_timestamp_type=timestamp_type,
        )

    @property
    def compacted(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def deletes(self) -> bool:
        return "delete" in self.cleanup_policy
