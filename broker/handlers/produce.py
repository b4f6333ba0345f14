"""Produce: validate batch headers, check idempotence, append bytes to the log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker import telemetry
from broker.clock import now_ms
from broker.handlers import handles
from broker.log import RecordTooLarge
from broker.partitions import Partition
from broker.producer_state import ProducerFenced
from broker.protocol.batch import BatchHeader, InvalidBatch, iter_headers
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, response_builder
from broker.protocol.versions import ApiKey

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

VALID_ACKS = (-1, 0, 1)


def _result(
    build: MessageBuilder,
    index: int,
    error: int,
    base_offset: int = -1,
    log_append_time_ms: int = -1,
    log_start_offset: int = -1,
    message: str | None = None,
) -> Any:
    return build.make(
        "PartitionProduceResponse",
        index=index,
        error_code=error,
        base_offset=base_offset,
        log_append_time=log_append_time_ms,
        log_start_offset=log_start_offset,
        record_errors=(),
        error_message=message,
    )


def _append(partition: Partition, records: bytes) -> tuple[int, int, int]:
    """Append one partition's batches; return (error, base_offset, log_append_time_ms)."""
    buffer = bytearray(records)
    headers = list(iter_headers(buffer))
    if not headers:
        raise InvalidBatch("no record batch in produce request")
    if len(headers) == 1:
        earlier = partition.producers.check(headers[0])
        if earlier is not None:  # a retry of an append that already happened
            return ErrorCode.none, earlier.first_offset, -1
    else:
        for header in headers:
            partition.producers.check(header)
    appended = partition.log.append(buffer, leader_epoch=partition.leader_epoch, now_ms=now_ms())
    _remember_producers(partition, headers, appended.first_offset)
    partition.notify_appended()
    return ErrorCode.none, appended.first_offset, appended.log_append_time_ms


def _remember_producers(
    partition: Partition, headers: list[BatchHeader], first_offset: int
) -> None:
    offset = first_offset
    for header in headers:
        partition.producers.record(header, offset, offset + header.last_offset_delta)
        offset += header.last_offset_delta + 1


def _produce_partition(
    broker: Broker, build: MessageBuilder, topic: str, index: int, records: bytes | None
) -> Any:
    partition = broker.partition(topic, index)
    if partition is None:
        return _result(build, index, ErrorCode.unknown_topic_or_partition)
    try:
        with telemetry.span(
            f"publish {topic}",
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "publish",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(index),
            },
        ):
            error, base_offset, append_time_ms = _append(partition, records or b"")
    except InvalidBatch as exc:
        return _result(build, index, ErrorCode.corrupt_message, message=str(exc))
    except RecordTooLarge as exc:
        return _result(build, index, ErrorCode.message_too_large, message=str(exc))
    except ProducerFenced as exc:
        return _result(build, index, exc.error_code, message=str(exc))
    return _result(build, index, error, base_offset, append_time_ms, partition.log.log_start_offset)


@handles(ApiKey.PRODUCE)
async def produce(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.PRODUCE, request.header.api_version)
    topics = []
    for topic in body.topic_data:
        results = []
        for data in topic.partition_data:
            if body.acks not in VALID_ACKS:
                results.append(_result(build, data.index, ErrorCode.invalid_required_acks))
            else:
                results.append(
                    _produce_partition(broker, build, topic.name, data.index, data.records)
                )
        topics.append(
            build.make("TopicProduceResponse", name=topic.name, partition_responses=tuple(results))
        )
    if body.acks == 0:
        return None
    return build.make("ProduceResponse", responses=tuple(topics), throttle_time=0)
