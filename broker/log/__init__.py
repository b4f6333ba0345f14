"""Durable segmented partition logs: append, read, recover, retain, compact."""

from broker.log.compaction import CompactionStats
from broker.log.config import TOPIC_CONFIG_DEFAULTS, LogConfig
from broker.log.epoch_cache import LeaderEpochCache
from broker.log.errors import OffsetMismatch, OffsetOutOfRange, RecordTooLarge
from broker.log.partition_log import AppendInfo, PartitionLog

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
]
