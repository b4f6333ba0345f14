"""LogConfig parsing from Kafka topic configs."""

from __future__ import annotations

import pytest

from broker.log import TOPIC_CONFIG_DEFAULTS, LogConfig


def test_defaults_match_the_dataclass() -> None:
    assert LogConfig.from_topic_configs({}) == LogConfig()
    assert LogConfig.from_topic_configs(TOPIC_CONFIG_DEFAULTS) == LogConfig()


def test_parses_kafka_names() -> None:
    config = LogConfig.from_topic_configs(
        {
            "cleanup.policy": "delete, compact",
            "retention.ms": "-1",
            "segment.bytes": "1048576",
            "message.timestamp.type": "LogAppendTime",
            "min.insync.replicas": "2",
        }
    )
    assert config.cleanup_policy == "compact,delete" and config.compacted and config.deletes
    assert (config.retention_ms, config.segment_bytes, config.min_insync_replicas) == (
        -1,
        1 << 20,
        2,
    )
    assert config.log_append_time


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("segment.bytes", "lots"),
        ("segment.bytes", "10"),
        ("retention.ms", "-2"),
        ("cleanup.policy", "shred"),
        ("cleanup.policy", ""),
        ("message.timestamp.type", "WallClock"),
        ("compression.type", "brotli"),
        ("no.such.config", "1"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        LogConfig.from_topic_configs({key: value})
