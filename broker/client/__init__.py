"""Async Kafka client on our own codec (anyio), for the mirror, followers, chaos and CLI."""

from broker.client.client import ClusterView, KafkaClient, KafkaError, PartitionInfo, TopicInfo
from broker.client.connection import KafkaConnectionError

__all__ = [
    "ClusterView",
    "KafkaClient",
    "KafkaConnectionError",
    "KafkaError",
    "PartitionInfo",
    "TopicInfo",
]
