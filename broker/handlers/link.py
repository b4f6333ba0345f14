"""LinkAppend and LinkTruncate: the link from a source region writing this region's mirror topics.

A mirror topic holds every record at its source offset, so the link appends batches at their
own base offsets (gaps stay gaps) and says where it believes the log ends; a link that is out
of step (a retry, a restarted worker, a second worker) is refused with the log end, and
resumes there. Checks per partition, in this order: the partition is here and led here; the
topic mirrors the link's source region (links.link_write_refusal, also the topology epoch);
the expected offset is the log end; the batches are sound. Then, like acks=all, the answer
waits until the in-sync replicas hold the append.

With an authorizer, both need CLUSTER_ACTION on the cluster, as a follower's Fetch does
(broker/security/authz.py says why not WRITE on the topic); a refusal is answered
CLUSTER_AUTHORIZATION_FAILED on every partition and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import StatusCode

from broker import links
from broker.clock import now_ms
from broker.handlers import handles
from broker.handlers.spans import append_span
from broker.log import OffsetMismatch, RecordTooLarge
from broker.messaging_spans import OFFSET
from broker.partitions import SINGLE_NODE, Partition
from broker.protocol.batch import InvalidBatch, iter_headers
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.link import (
    LinkAppendPartition,
    LinkPartitionResult,
    LinkResponse,
    LinkTopicResult,
    LinkTruncatePartition,
)
from broker.protocol.versions import ApiKey
from broker.replication.waits import all_replicated
from broker.security.authz import CLUSTER_ACTION, allowed

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo


@dataclass
class _Outcome:
    """One partition's answer; an append fills `error` in after waiting for the ISR."""

    index: int
    error: int = ErrorCode.none
    message: str | None = None
    partition: Partition | None = None
    end_offset: int = -1  # the high watermark the append waits for
    leader_epoch: int = -1
    records: int = 0  # appended

    def result(self) -> LinkPartitionResult:
        end = self.partition.log.log_end_offset if self.partition is not None else -1
        return LinkPartitionResult(self.index, self.error, end, self.message)


def _checked(
    broker: Broker, topic: str, index: int, source_region: str, link_epoch: int
) -> _Outcome:
    """The partition's outcome so far: an error, or the partition to write."""
    partition = broker.partition(topic, index)
    if partition is None:
        return _Outcome(index, broker.missing_partition_error(topic, index))
    outcome = _Outcome(index, partition=partition, leader_epoch=partition.leader_epoch)
    info = broker.topics.get(topic)
    if error := partition.refusal():
        outcome.error = error
    elif info is not None and (
        refused := links.link_write_refusal(
            topic, info.configs, source_region, link_epoch, broker.topology
        )
    ):
        outcome.error, outcome.message = refused.error_code, refused.message
    return outcome


def _append(partition: Partition, request: LinkAppendPartition, outcome: _Outcome) -> None:
    log = partition.log
    if request.expected_next_offset != log.log_end_offset:
        outcome.error = ErrorCode.out_of_order_sequence_number
        outcome.message = (
            f"expected the log to end at {request.expected_next_offset}, it ends at "
            f"{log.log_end_offset}"
        )
        return
    leader = partition.leader
    if leader is not None and len(leader.isr) < partition.min_insync_replicas:
        outcome.error = ErrorCode.not_enough_replicas
        return
    records = request.records or b""
    try:
        log.append_at_offsets(records, leader_epoch=partition.leader_epoch, now_ms=now_ms())
    except (InvalidBatch, OffsetMismatch) as exc:
        outcome.error, outcome.message = ErrorCode.corrupt_message, str(exc)
        return
    except RecordTooLarge as exc:
        outcome.error, outcome.message = ErrorCode.message_too_large, str(exc)
        return
    appended = 0
    for header in iter_headers(records):  # as a follower: a promoted mirror keeps dedup
        appended += header.records_count
        if header.has_producer_id:
            partition.producers.record(header, header.base_offset, header.last_offset)
    partition.notify_appended()
    outcome.end_offset = log.log_end_offset
    outcome.records = appended


def _traced_append(
    broker: Broker,
    source_region: str,
    partition: Partition,
    request: LinkAppendPartition,
    outcome: _Outcome,
) -> None:
    """`_append` inside the broker's send span (broker/handlers/spans.py)."""
    records = request.records or b""
    with append_span(
        broker,
        ApiKey.LINK_APPEND,
        partition.topic,
        partition.index,
        records,
        source_region,
        request.trace_contexts,  # v1: the contexts the mirror found; None: search the records
    ) as span:
        _append(partition, request, outcome)
        if span is not None:
            span.set_attribute(OFFSET, request.expected_next_offset)
            if outcome.error:
                span.set_status(StatusCode.ERROR, outcome.message or f"error {outcome.error}")


def _truncate(partition: Partition, request: LinkTruncatePartition, outcome: _Outcome) -> None:
    if partition.leader_id != SINGLE_NODE:
        # Followers would keep what the leader cut (they truncate only on a new leader epoch)
        # and the high watermark never goes back: not safe until the controller takes part.
        outcome.error = ErrorCode.invalid_request
        outcome.message = "LinkTruncate is not supported on replicated regions yet"
        return
    if request.offset < 0:
        outcome.error, outcome.message = ErrorCode.invalid_request, "a negative offset"
        return
    log = partition.log
    log.truncate_to(request.offset)
    partition.restore_producer_state()


def _each_partition(
    broker: Broker,
    info: ConnectionInfo,
    body: Any,
    action: Callable[[Partition, Any, _Outcome], None],
) -> list[tuple[str, list[_Outcome]]]:
    """Check every partition of a link request (ACL, leader, mirror source, epoch) and run
    `action` on those that pass; the outcomes, per topic, in request order."""
    authorized = allowed(broker.access(info), CLUSTER_ACTION)
    per_topic: list[tuple[str, list[_Outcome]]] = []
    for topic in body.topics:
        outcomes = []
        for p in topic.partitions:
            if not authorized:
                outcomes.append(_Outcome(p.index, CLUSTER_ACTION.error))
                continue
            outcome = _checked(broker, topic.name, p.index, body.source_region, body.topology_epoch)
            if outcome.error == ErrorCode.none and outcome.partition is not None:
                action(outcome.partition, p, outcome)
            outcomes.append(outcome)
        per_topic.append((topic.name, outcomes))
    return per_topic


def _response(per_topic: list[tuple[str, list[_Outcome]]]) -> LinkResponse:
    return LinkResponse(
        0,
        tuple(
            LinkTopicResult(name, tuple(o.result() for o in outcomes))
            for name, outcomes in per_topic
        ),
    )


@handles(ApiKey.LINK_APPEND)
async def link_append(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    body = request.body
    per_topic = _each_partition(
        broker, info, body, partial(_traced_append, broker, body.source_region)
    )
    for name, outcomes in per_topic:
        for outcome in outcomes:
            if outcome.records:
                broker.traffic.linked(name, outcome.records)
    waiting = [
        (o, (o.partition, o.end_offset, o.leader_epoch))
        for _, outcomes in per_topic
        for o in outcomes
        if o.error == ErrorCode.none and o.partition is not None
    ]
    errors = await all_replicated([append for _, append in waiting], body.timeout_ms)
    for (outcome, _), error in zip(waiting, errors, strict=True):
        outcome.error = error
    return _response(per_topic)


@handles(ApiKey.LINK_TRUNCATE)
async def link_truncate(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    return _response(_each_partition(broker, info, request.body, _truncate))
