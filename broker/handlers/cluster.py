"""Metadata and DescribeCluster: who leads what (in a single-node region, this broker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, response_builder
from broker.protocol.versions import ApiKey
from broker.topics import TopicError, TopicInfo

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo


def _requested_topics(broker: Broker, request: Request) -> list[str]:
    topics = request.body.topics
    if topics is None or (request.header.api_version == 0 and not topics):
        return [info.name for info in broker.topics.all()]
    return [t.name for t in topics]


def _auto_create(broker: Broker, request: Request, name: str) -> int:
    """Create a missing topic if the client and the broker allow it; return the error code."""
    allowed = getattr(request.body, "allow_auto_topic_creation", True)
    if not (allowed and broker.config.auto_create_topics):
        return ErrorCode.unknown_topic_or_partition
    try:
        broker.create_topic(name, broker.config.default_partitions, {})
    except TopicError as exc:
        return exc.error_code
    return ErrorCode.leader_not_available  # Kafka's answer while a new topic settles


def _topic_metadata(broker: Broker, build: MessageBuilder, info: TopicInfo) -> Any:
    node = broker.config.node_id
    partitions = []
    for index in range(info.partitions):
        partition = broker.partition(info.name, index)
        epoch = partition.leader_epoch if partition else 0
        partitions.append(
            build.make(
                "MetadataResponsePartition",
                error_code=0,
                partition_index=index,
                leader_id=node,
                leader_epoch=epoch,
                replica_nodes=(node,),
                isr_nodes=(node,),
                offline_replicas=(),
            )
        )
    return build.make(
        "MetadataResponseTopic",
        error_code=0,
        name=info.name,
        is_internal=info.internal,
        partitions=tuple(partitions),
        topic_authorized_operations=-2147483648,
    )


@handles(ApiKey.METADATA)
async def metadata(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.METADATA, request.header.api_version)
    topics = []
    for name in _requested_topics(broker, request):
        topic = broker.topics.get(name)
        if topic is None:
            error = _auto_create(broker, request, name)
            topics.append(
                build.make(
                    "MetadataResponseTopic",
                    error_code=error,
                    name=name,
                    is_internal=False,
                    partitions=(),
                    topic_authorized_operations=-2147483648,
                )
            )
        else:
            topics.append(_topic_metadata(broker, build, topic))
    host, port = broker.config.advertised_host or broker.config.host, broker.port
    brokers = (
        build.make(
            "MetadataResponseBroker", node_id=broker.config.node_id, host=host, port=port, rack=None
        ),
    )
    return build.make(
        "MetadataResponse",
        throttle_time=0,
        brokers=brokers,
        cluster_id=broker.cluster_id,
        controller_id=broker.config.node_id,
        topics=tuple(topics),
        cluster_authorized_operations=-2147483648,
    )


@handles(ApiKey.DESCRIBE_CLUSTER)
async def describe_cluster(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DESCRIBE_CLUSTER, request.header.api_version)
    host = broker.config.advertised_host or broker.config.host
    brokers = (
        build.make(
            "DescribeClusterBroker",
            broker_id=broker.config.node_id,
            host=host,
            port=broker.port,
            rack=None,
        ),
    )
    return build.make(
        "DescribeClusterResponse",
        throttle_time=0,
        error_code=0,
        error_message=None,
        cluster_id=broker.cluster_id,
        controller_id=broker.config.node_id,
        brokers=brokers,
        cluster_authorized_operations=-2147483648,
    )
