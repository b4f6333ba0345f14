"""CreateTopics, DeleteTopics, CreatePartitions and InitProducerId."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import response_builder
from broker.protocol.versions import ApiKey
from broker.security.authz import (
    ALTER_TOPIC,
    CREATE_CLUSTER,
    CREATE_TOPIC,
    DELETE_TOPIC,
    IDEMPOTENT_WRITE,
    WRITE_TOPIC,
    WRITE_TRANSACTIONAL_ID,
    Access,
    refused,
)
from broker.topics import TopicError

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo


async def _create_one(broker: Broker, topic: Any, validate_only: bool) -> tuple[int, str | None]:
    partitions = (
        topic.num_partitions if topic.num_partitions > 0 else broker.config.default_partitions
    )
    configs = {c.name: c.value for c in topic.configs if c.value is not None}
    try:
        await broker.create_topic(
            topic.name,
            partitions,
            configs,
            replication_factor=topic.replication_factor,
            validate_only=validate_only,
        )
    except TopicError as exc:
        return exc.error_code, exc.message
    except ValueError as exc:
        return ErrorCode.invalid_config, str(exc)
    return ErrorCode.none, None


@handles(ApiKey.CREATE_TOPICS)
async def create_topics(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.CREATE_TOPICS, request.header.api_version)
    validate_only = getattr(request.body, "validate_only", False)
    access = broker.access(info)
    names = [topic.name for topic in request.body.topics]
    # CREATE on the cluster covers every topic; else each needs CREATE on itself.
    unauthorized = (
        refused(access, CREATE_TOPIC, names)
        if access is not None and not access.allows(CREATE_CLUSTER)
        else frozenset()
    )
    results = []
    for topic in request.body.topics:
        error: int
        message: str | None
        if topic.name in unauthorized:
            error, message = CREATE_TOPIC.error, "Authorization failed."
        else:
            error, message = await _create_one(broker, topic, validate_only)
        results.append(
            build.make(
                "CreatableTopicResult",
                name=topic.name,
                error_code=error,
                error_message=message,
                num_partitions=-1,
                replication_factor=-1,
            )
        )
    return build.make("CreateTopicsResponse", throttle_time=0, topics=tuple(results))


@handles(ApiKey.DELETE_TOPICS)
async def delete_topics(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DELETE_TOPICS, request.header.api_version)
    unauthorized = refused(broker.access(info), DELETE_TOPIC, request.body.topic_names)
    results = []
    for name in request.body.topic_names:
        if name in unauthorized:  # before existence: no answer tells whether it exists
            results.append(
                build.make("DeletableTopicResult", name=name, error_code=DELETE_TOPIC.error)
            )
            continue
        try:
            await broker.delete_topic(name)
            error: int = ErrorCode.none
        except TopicError as exc:
            error = exc.error_code
        results.append(build.make("DeletableTopicResult", name=name, error_code=error))
    return build.make("DeleteTopicsResponse", throttle_time=0, responses=tuple(results))


@handles(ApiKey.CREATE_PARTITIONS)
async def create_partitions(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.CREATE_PARTITIONS, request.header.api_version)
    unauthorized = refused(broker.access(info), ALTER_TOPIC, (t.name for t in request.body.topics))
    results = []
    for topic in request.body.topics:
        error: int = ErrorCode.none
        message: str | None = None
        try:
            if topic.name in unauthorized:
                error, message = ALTER_TOPIC.error, "The topic authorization is failed."
            else:
                await broker.add_partitions(
                    topic.name, topic.count, validate_only=request.body.validate_only
                )
        except TopicError as exc:
            error, message = exc.error_code, exc.message
        results.append(
            build.make(
                "CreatePartitionsTopicResult",
                name=topic.name,
                error_code=error,
                error_message=message,
            )
        )
    return build.make("CreatePartitionsResponse", throttle_time=0, results=tuple(results))


@handles(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    """Idempotent producers get a fresh id at epoch 0; transactions are not served yet."""
    build = response_builder(ApiKey.INIT_PRODUCER_ID, request.header.api_version)
    access = broker.access(info)
    refusal = _producer_id_refusal(access, request.body) if access is not None else 0
    if refusal or request.body.transactional_id is not None:
        return build.make(
            "InitProducerIdResponse",
            throttle_time=0,
            error_code=refusal or ErrorCode.transactional_id_authorization_failed,
            producer_id=-1,
            producer_epoch=-1,
        )
    try:
        producer_id, error = await broker.allocate_producer_id(), int(ErrorCode.none)
    except TopicError as exc:  # the controller quorum is unreachable
        producer_id, error = -1, exc.error_code
    return build.make(
        "InitProducerIdResponse",
        throttle_time=0,
        error_code=error,
        producer_id=producer_id,
        producer_epoch=0,
    )


def _producer_id_refusal(access: Access, body: Any) -> int:
    """Kafka's checks: WRITE on the transactional id; without one, IDEMPOTENT_WRITE on the
    cluster or WRITE on any topic (KIP-679). The error, or 0."""
    if body.transactional_id is not None:
        allowed = access.allows(WRITE_TRANSACTIONAL_ID, body.transactional_id)
        return 0 if allowed else WRITE_TRANSACTIONAL_ID.error
    if access.allows(IDEMPOTENT_WRITE) or access.allows_any(WRITE_TOPIC):
        return 0
    return IDEMPOTENT_WRITE.error
