"""Produce: validate batch headers, check idempotence, append bytes to the log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker import links
from broker.clock import now_ms
from broker.handlers import handles
from broker.handlers.spans import append_span
from broker.log import RecordTooLarge
from broker.messaging_spans import OFFSET
from broker.partitions import Partition
from broker.pipeline import Later
from broker.producer_state import ProducerFenced
from broker.protocol.batch import BatchHeader, InvalidBatch, iter_headers
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, millis, response_builder
from broker.protocol.versions import ApiKey
from broker.replication.waits import all_replicated
from broker.security.authz import NOTHING, WRITE_TOPIC, WRITE_TRANSACTIONAL_ID, Access

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

VALID_ACKS = (-1, 0, 1)


@dataclass
class _Outcome:
    """One partition's answer; acks=all fills `error` in after waiting for the ISR."""

    index: int
    error: int
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    message: str | None = None
    partition: Partition | None = None
    end_offset: int = -1  # the high watermark acks=all waits for
    leader_epoch: int = -1

    def build(self, build: MessageBuilder) -> Any:
        return build.make(
            "PartitionProduceResponse",
            index=self.index,
            error_code=self.error,
            base_offset=self.base_offset if self.error == ErrorCode.none else -1,
            log_append_time=self.log_append_time_ms,
            log_start_offset=self.log_start_offset,
            record_errors=(),
            error_message=self.message,
        )


def _append(partition: Partition, records: bytes | memoryview, outcome: _Outcome) -> int:
    """Append one partition's batches (or find the earlier append a retry repeats); the
    number of records appended (0 for a retry)."""
    headers = list(iter_headers(records))
    if not headers:
        raise InvalidBatch("no record batch in produce request")
    if len(headers) == 1:
        earlier = partition.producers.check(headers[0])
        if earlier is not None:  # a retry of an append that already happened
            outcome.base_offset, outcome.end_offset = earlier.first_offset, earlier.last_offset + 1
            return 0
    else:
        for header in headers:
            partition.producers.check(header)
    # Writable views into the received frame (the request reader's) are stamped in place.
    appended = partition.log.append(records, leader_epoch=partition.leader_epoch, now_ms=now_ms())
    _remember_producers(partition, headers, appended.first_offset)
    partition.notify_appended()
    outcome.base_offset = appended.first_offset
    outcome.log_append_time_ms = appended.log_append_time_ms
    outcome.end_offset = appended.last_offset + 1
    return sum(header.records_count for header in headers)


def _remember_producers(
    partition: Partition, headers: list[BatchHeader], first_offset: int
) -> None:
    offset = first_offset
    for header in headers:
        partition.producers.record(header, offset, offset + header.last_offset_delta)
        offset += header.last_offset_delta + 1


def _refusal(broker: Broker, topic: str, index: int, acks: int) -> tuple[int, str | None]:
    """The error (and message) that refuses this append before it happens, or 0."""
    partition = broker.partition(topic, index)
    if partition is None:
        return broker.missing_partition_error(topic, index), None
    if error := partition.refusal():
        return error, None
    info = broker.topics.get(topic)
    if info is not None and (
        refused := links.client_write_refusal(
            topic, info.configs, broker.topology, broker.lease_refusal()
        )
    ):
        return refused.error_code, refused.message
    leader = partition.leader
    if acks == -1 and leader is not None and len(leader.isr) < partition.min_insync_replicas:
        return ErrorCode.not_enough_replicas, None
    return ErrorCode.none, None


def _produce_partition(
    broker: Broker, topic: str, index: int, records: bytes | None, acks: int
) -> _Outcome:
    error, message = _refusal(broker, topic, index, acks)
    outcome = _Outcome(index, error, message=message)
    partition = broker.partition(topic, index)
    if outcome.error or partition is None:
        return outcome
    outcome.partition, outcome.leader_epoch = partition, partition.leader_epoch
    try:
        data = records or b""
        with append_span(broker, ApiKey.PRODUCE, topic, index, data) as span:
            if appended := _append(partition, data, outcome):
                broker.traffic.produced(topic, appended, len(data))
            if span is not None:
                span.set_attribute(OFFSET, outcome.base_offset)
    except InvalidBatch as exc:
        outcome.error, outcome.message = ErrorCode.corrupt_message, str(exc)
    except RecordTooLarge as exc:
        outcome.error, outcome.message = ErrorCode.message_too_large, str(exc)
    except ProducerFenced as exc:
        outcome.error, outcome.message = exc.error_code, str(exc)
    outcome.log_start_offset = partition.log.log_start_offset
    return outcome


async def _await_isr(outcomes: list[_Outcome], timeout_ms: int) -> None:
    """acks=all: each appended partition waits for its high watermark, within the timeout."""
    waiting = [
        (o, (o.partition, o.end_offset, o.leader_epoch))
        for o in outcomes
        if o.error == ErrorCode.none and o.partition is not None
    ]
    errors = await all_replicated([append for _, append in waiting], timeout_ms)
    for (outcome, _), error in zip(waiting, errors, strict=True):
        outcome.error = error


def _unauthorized(access: Access, body: Any) -> tuple[int, frozenset[str]]:
    """Kafka's checks: WRITE on the transactional id, if any (else the whole request is
    refused), then WRITE on each topic. The request's error, and the topics refused."""
    transactional_id = body.transactional_id
    if transactional_id is not None and not access.allows(WRITE_TRANSACTIONAL_ID, transactional_id):
        return WRITE_TRANSACTIONAL_ID.error, frozenset()
    return ErrorCode.none, access.refused(WRITE_TOPIC, (t.name for t in body.topic_data))


@handles(ApiKey.PRODUCE)
async def produce(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    build = response_builder(ApiKey.PRODUCE, request.header.api_version)
    access = broker.access(info)
    refused_all, refused = _unauthorized(access, body) if access else (0, NOTHING)
    per_topic: list[tuple[str, list[_Outcome]]] = []
    for topic in body.topic_data:
        outcomes = []
        for data in topic.partition_data:
            if refused_all or topic.name in refused:
                outcomes.append(_Outcome(data.index, refused_all or WRITE_TOPIC.error))
            elif body.acks not in VALID_ACKS:
                outcomes.append(_Outcome(data.index, ErrorCode.invalid_required_acks))
            else:
                outcomes.append(
                    _produce_partition(broker, topic.name, data.index, data.records, body.acks)
                )
        per_topic.append((topic.name, outcomes))
    if body.acks == 0:
        return None
    if body.acks == -1:  # answered once the ISR holds the appends (broker/pipeline.py)
        timeout_ms = int(millis(body.timeout))

        async def after_isr() -> Any:
            await _await_isr([o for _, outcomes in per_topic for o in outcomes], timeout_ms)
            return _response(build, per_topic)

        return Later(after_isr)
    return _response(build, per_topic)


def _response(build: MessageBuilder, per_topic: list[tuple[str, list[_Outcome]]]) -> Any:
    topics = tuple(
        build.make(
            "TopicProduceResponse",
            name=name,
            partition_responses=tuple(o.build(build) for o in outcomes),
        )
        for name, outcomes in per_topic
    )
    return build.make("ProduceResponse", responses=topics, throttle_time=0)
