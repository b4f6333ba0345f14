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


async def _auto_create(broker: Broker, request: Request, name: str) -> int:
    """Create a missing topic if the client and the broker allow it; return the error code."""
    allowed = getattr(request.body, "allow_auto_topic_creation", True)
    if not (allowed and broker.config.auto_create_topics):
        return ErrorCode.unknown_topic_or_partition
    try:
        await broker.create_topic(name, broker.config.default_partitions, {})
    except TopicError as exc:
        if exc.error_code != ErrorCode.topic_already_exists:
            return exc.error_code
    return ErrorCode.leader_not_available  # Kafka's answer while a new topic settles


def _partition_metadata(broker: Broker, build: MessageBuilder, info: TopicInfo, index: int) -> Any:
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    if broker.cluster is None:
        node = broker.config.node_id
        partition = broker.partition(info.name, index)
        epoch = partition.leader_epoch if partition else 0
        leader, replicas, isr = node, (node,), (node,)
        offline: tuple[int, ...] = ()
    else:
        placement = broker.cluster.image.partition(info.topic_id, index)
        if placement is None:
            return None
        leader, epoch = placement.leader, placement.leader_epoch
        replicas, isr = placement.replicas, placement.isr
        offline = tuple(r for r in replicas if not broker.cluster.is_live(r))
    return build.make(
        "MetadataResponsePartition",
        error_code=ErrorCode.none if leader >= 0 else ErrorCode.leader_not_available,
        partition_index=index,
        leader_id=leader,
        leader_epoch=epoch,
        replica_nodes=replicas,
        isr_nodes=isr,
        offline_replicas=offline,
    )


def _topic_metadata(broker: Broker, build: MessageBuilder, info: TopicInfo) -> Any:
    partitions = [_partition_metadata(broker, build, info, i) for i in range(info.partitions)]
    return build.make(
        "MetadataResponseTopic",
        error_code=0,
        name=info.name,
        is_internal=info.internal,
        partitions=tuple(p for p in partitions if p is not None),
        topic_authorized_operations=-2147483648,
    )


@handles(ApiKey.METADATA)
async def metadata(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.METADATA, request.header.api_version)
    topics = []
    for name in _requested_topics(broker, request):
        topic = broker.topics.get(name)
        if topic is None:
            error = await _auto_create(broker, request, name)
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
    brokers = tuple(
        build.make("MetadataResponseBroker", node_id=node, host=host, port=port, rack=None)
        for node, (host, port) in _brokers(broker, info)
    )
    return build.make(
        "MetadataResponse",
        throttle_time=0,
        brokers=brokers,
        cluster_id=broker.cluster_id,
        controller_id=_controller_id(broker),
        topics=tuple(topics),
        cluster_authorized_operations=-2147483648,
    )


def _brokers(broker: Broker, info: ConnectionInfo) -> list[tuple[int, tuple[str, int]]]:
    """The brokers clients may use, at their addresses for the listener the client came in
    on: this one, or every live broker of the region."""
    if broker.cluster is None:
        return [(broker.config.node_id, broker.advertised_for(info.listener))]
    return broker.cluster.live_brokers(info.listener)


def _controller_id(broker: Broker) -> int:
    """Clients send admin requests to the "controller"; any live broker forwards them."""
    return broker.config.node_id


@handles(ApiKey.DESCRIBE_CLUSTER)
async def describe_cluster(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DESCRIBE_CLUSTER, request.header.api_version)
    brokers = tuple(
        build.make("DescribeClusterBroker", broker_id=node, host=host, port=port, rack=None)
        for node, (host, port) in _brokers(broker, info)
    )
    return build.make(
        "DescribeClusterResponse",
        throttle_time=0,
        error_code=0,
        error_message=None,
        cluster_id=broker.cluster_id,
        controller_id=_controller_id(broker),
        brokers=brokers,
        cluster_authorized_operations=-2147483648,
    )
