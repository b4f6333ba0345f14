"""Durable segmented partition logs: append, read, recover, retain, compact."""

from broker.log.cleaner import CompactionStats, apply_retention, compact
from broker.log.config import TOPIC_CONFIG_DEFAULTS, LogConfig
from broker.log.partition_log import AppendInfo, OffsetOutOfRange, PartitionLog, RecordTooLarge

__all__ = [
    "TOPIC_CONFIG_DEFAULTS",
    "AppendInfo",
    "CompactionStats",
    "LogConfig",
    "OffsetOutOfRange",
    "PartitionLog",
    "RecordTooLarge",
    "apply_retention",
    "compact",
]
