"""Durable segmented partition logs: append, read, recover, retain, compact."""

from broker.log.compaction import CompactionStats
from broker.log.config import TOPIC_CONFIG_DEFAULTS, LogConfig
from broker.log.epoch_cache import LeaderEpochCache
from broker.log.errors import OffsetMismatch, OffsetOutOfRange, RecordTooLarge
from broker.log.partition_log import AppendInfo, PartitionLog


def apply_retention(log: PartitionLog, now_ms: int) -> int:
    """Function form of PartitionLog.apply_retention (the broker's maintenance loop uses it)."""
    return log.apply_retention(now_ms)


def compact(log: PartitionLog, now_ms: int) -> CompactionStats:
    """Function form of PartitionLog.compact; a no-op unless cleanup.policy has compact."""
    return log.compact(now_ms)


__all__ = [
    "TOPIC_CONFIG_DEFAULTS",
    "AppendInfo",
    "CompactionStats",
    "LeaderEpochCache",
    "LogConfig",
    "OffsetMismatch",
    "OffsetOutOfRange",
    "PartitionLog",
    "RecordTooLarge",
    "apply_retention",
    "compact",
]
