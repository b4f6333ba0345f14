"""Metadata and DescribeCluster: who leads what (in a single-node region, this broker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, response_builder
from broker.protocol.versions import ApiKey
from broker.security.acl import ResourceType
from broker.security.authz import (
    CREATE_CLUSTER,
    CREATE_TOPIC,
    DESCRIBE_TOPIC,
    Access,
    authorized_operations,
    refused,
)
from broker.topics import TopicError, TopicInfo

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo


NOT_REQUESTED = -2147483648  # authorized operations a client did not ask for (Kafka's default)


def _lists_all(request: Request) -> bool:
    topics = request.body.topics
    return topics is None or (request.header.api_version == 0 and not topics)


def _requested_topics(broker: Broker, request: Request) -> list[str]:
    if _lists_all(request):
        return [info.name for info in broker.topics.all()]
    return [t.name for t in request.body.topics]


async def _auto_create(broker: Broker, request: Request, name: str, access: Access | None) -> int:
    """Create a missing topic if the client, the broker and the ACLs (CREATE on the cluster
    or the topic) allow it; return the error code."""
    allowed = getattr(request.body, "allow_auto_topic_creation", True)
    if not (allowed and broker.config.auto_create_topics):
        return ErrorCode.unknown_topic_or_partition
    if access is not None and not (
        access.allows(CREATE_CLUSTER) or access.allows(CREATE_TOPIC, name)
    ):
        return CREATE_TOPIC.error
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


def _topic_metadata(broker: Broker, build: MessageBuilder, info: TopicInfo, operations: int) -> Any:
    partitions = [_partition_metadata(broker, build, info, i) for i in range(info.partitions)]
    return build.make(
        "MetadataResponseTopic",
        error_code=0,
        name=info.name,
        is_internal=info.internal,
        partitions=tuple(p for p in partitions if p is not None),
        topic_authorized_operations=operations,
    )


def _no_topic(build: MessageBuilder, name: str, error: int) -> Any:
    return build.make(
        "MetadataResponseTopic",
        error_code=error,
        name=name,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=NOT_REQUESTED,
    )


@handles(ApiKey.METADATA)
async def metadata(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.METADATA, request.header.api_version)
    access = broker.access(info)
    names = _requested_topics(broker, request)
    # Kafka never tells a principal without DESCRIBE whether a topic exists: a listing
    # leaves it out, a named topic is answered TOPIC_AUTHORIZATION_FAILED.
    unauthorized = refused(access, DESCRIBE_TOPIC, names)
    with_operations = getattr(request.body, "include_topic_authorized_operations", False)
    topics = []
    for name in names:
        if name in unauthorized:
            if not _lists_all(request):
                topics.append(_no_topic(build, name, DESCRIBE_TOPIC.error))
            continue
        topic = broker.topics.get(name)
        if topic is None:
            topics.append(_no_topic(build, name, await _auto_create(broker, request, name, access)))
        else:
            operations = (
                authorized_operations(access, ResourceType.TOPIC, name)
                if with_operations
                else NOT_REQUESTED
            )
            topics.append(_topic_metadata(broker, build, topic, operations))
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
        cluster_authorized_operations=_cluster_operations(request, access),
    )


def _cluster_operations(request: Request, access: Access | None) -> int:
    if not getattr(request.body, "include_cluster_authorized_operations", False):
        return NOT_REQUESTED
    return authorized_operations(access, ResourceType.CLUSTER)


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
        cluster_authorized_operations=_cluster_operations(request, broker.access(info)),
    )
