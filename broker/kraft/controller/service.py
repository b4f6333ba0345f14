"""The broker-facing RPCs: each maps a request onto a pure decision (`logic`), proposes its
records through Raft and answers once they are committed and applied.

Writes are serialised (one decision, proposal and commit at a time), so every decision is
made on an image that already holds the previous one's records; metadata writes are rare
enough that this costs nothing. Only a ready leader decides; the others answer
NOT_CONTROLLER with a leader hint. FetchMetadata is served by every controller from its own
committed state (offsets are Raft indexes, the same everywhere).

Broker sessions live in the leader's memory only: a new leader starts every broker's
session afresh, so a controller failover never fences a healthy broker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
import grpc

from broker.kraft.controller import controller_pb2 as pb
from broker.kraft.controller import controller_pb2_grpc, logic
from broker.kraft.controller.codec import CodecError, decode_message
from broker.kraft.controller.config import ControllerConfig
from broker.kraft.controller.driver import RaftDriver, now_ms
from broker.kraft.controller.state import MetadataSlice, MetadataState, Outcome, encode_batch
from broker.kraft.messages import Message
from broker.kraft.metadata import (
    MetadataError,
    MetadataImage,
    MetadataRecord,
    PartitionInfo,
    decode,
)
from broker.kraft.node import NotLeader
from broker.protocol.errors import ErrorCode

log = logging.getLogger("regionlink.controller")

T = TypeVar("T")
SESSION_CHECK_INTERVAL_S = 0.05
# A broker whose heartbeat is this late (or a third of its session, if that is shorter) has
# its listener probed; brokers heartbeat every 250 ms by default.
PROBE_WHEN_LATE_MS = 500
PROBE_TIMEOUT_S = 0.25
PROBE_INTERVAL_S = 0.1
MAX_FETCH_WAIT_MS = 60_000


class Failure(Exception):
    """An RPC's answer is this Kafka error (with the leader hint for NOT_CONTROLLER)."""

    def __init__(self, code: int, message: str, leader_hint: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.leader_hint = leader_hint

    @classmethod
    def of(cls, rejected: logic.Rejected) -> Failure:
        return cls(rejected.error_code, rejected.message)

    def proto(self) -> pb.Error:
        hint = -1 if self.leader_hint is None else self.leader_hint
        return pb.Error(code=self.code, message=self.message, leader_hint=hint)


class Controller:
    def __init__(self, config: ControllerConfig, driver: RaftDriver, state: MetadataState) -> None:
        self._config = config
        self._policy = config.policy
        self._driver = driver
        self._state = state
        self._write_lock = anyio.Lock()
        self._sessions: dict[int, int] = {}
        self._session_term: int | None = None
        self._probing: set[int] = set()

    @property
    def image(self) -> MetadataImage:
        return self._state.image

    def _not_controller(self) -> Failure:
        hint = self._driver.leader_hint
        return Failure(int(ErrorCode.not_controller), "not the controller leader", hint)

    def _require_leader(self) -> None:
        if not self._driver.is_ready_leader():
            raise self._not_controller()

    async def _commit(
        self, decide: Callable[[MetadataImage, int], tuple[T, list[MetadataRecord]]]
    ) -> T:
        """Run `decide(image, index)` on the ready leader, propose its records (if any) and
        wait until they are applied. `decide` raises `Failure` to answer an error."""
        async with self._write_lock:
            results: list[T] = []

            def build(index: int) -> bytes | None:
                result, records = decide(self._state.image, index)
                results.append(result)
                return encode_batch(records) if records else None

            waiter = await self._driver.propose(build)
            if isinstance(waiter, NotLeader):
                raise self._not_controller()
            if waiter is None:
                return results[0]
            outcome = await self._state.wait(waiter, self._config.commit_timeout_ms / 1000)
        if outcome is None:
            raise Failure(int(ErrorCode.request_timed_out), "not committed in time")
        if outcome is Outcome.LOST:
            raise self._not_controller()
        if outcome is Outcome.REJECTED:
            raise Failure(int(ErrorCode.unknown_server_error), "metadata image refused it")
        return results[0]

    # ------------------------------------------------------------------ brokers

    async def register_broker(
        self, broker_id: int, incarnation: str, host: str, port: int, listeners: dict[str, str]
    ) -> int:
        def decide(image: MetadataImage, index: int) -> tuple[int, list[MetadataRecord]]:
            decision = logic.register_broker(
                image, broker_id, incarnation, host, port, index, listeners
            )
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return index, decision

        epoch = await self._commit(decide)
        self._sessions[broker_id] = now_ms()
        log.info("broker %d registered at %s:%d with epoch %d", broker_id, host, port, epoch)
        return epoch

    async def heartbeat(
        self, broker_id: int, epoch: int, offset: int, want_shutdown: bool
    ) -> logic.HeartbeatDecision:
        self._require_leader()

        def decide(
            image: MetadataImage, _: int
        ) -> tuple[logic.HeartbeatDecision, list[MetadataRecord]]:
            decision = logic.heartbeat(image, broker_id, epoch, offset, want_shutdown)
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return decision, list(decision.records)

        quick = decide(self._state.image, 0)[0]  # most heartbeats change nothing
        self._sessions[broker_id] = now_ms()
        if not quick.records:
            return quick
        decision = await self._commit(decide)
        if decision.records:
            what = "shut down" if want_shutdown else "unfenced"
            log.info("broker %d %s (epoch %d)", broker_id, what, epoch)
        return decision

    async def run_sessions(self) -> None:
        """Fence brokers whose session expired, or whose listener refuses connections while
        their heartbeat is late, while this controller leads."""
        async with anyio.create_task_group() as probes:
            while True:
                await anyio.sleep(SESSION_CHECK_INTERVAL_S)
                if not self._driver.is_ready_leader():
                    continue
                now, term = now_ms(), self._driver.node.term
                if self._session_term != term:
                    self._sessions, self._session_term = {}, term
                for broker_id in self._state.image.brokers:
                    self._sessions.setdefault(broker_id, now)
                timeout_ms = self._policy.broker_session_timeout_ms
                for broker_id in logic.expired_sessions(
                    self.image, self._sessions, now, timeout_ms
                ):
                    await self._fence(broker_id, now, timeout_ms, "session expired")
                late_ms = max(1, min(PROBE_WHEN_LATE_MS, timeout_ms // 3))
                for broker_id in logic.expired_sessions(self.image, self._sessions, now, late_ms):
                    if broker_id not in self._probing:
                        self._probing.add(broker_id)
                        probes.start_soon(self._probe, broker_id, late_ms)

    async def _probe(self, broker_id: int, late_ms: int) -> None:
        """A late broker whose listener refuses connections has exited: fence it now.

        A refusal is definite (nothing listens there), so this cannot fence a live broker;
        a timeout or an accepted connection says nothing, and the session runs its course.
        """
        try:
            info = self.image.brokers.get(broker_id)
            if info is None or info.fenced:
                return
            try:
                with anyio.fail_after(PROBE_TIMEOUT_S):
                    stream = await anyio.connect_tcp(info.host, info.port)
                await stream.aclose()
            except (OSError, TimeoutError) as exc:
                # anyio reports a refusal as OSError caused by ConnectionRefusedError
                if isinstance(exc.__cause__ or exc, ConnectionRefusedError):
                    await self._fence(broker_id, now_ms(), late_ms, "its listener refuses")
            await anyio.sleep(PROBE_INTERVAL_S)
        finally:
            self._probing.discard(broker_id)

    async def _fence(self, broker_id: int, now: int, late_ms: int, why: str) -> None:
        try:
            await self._commit(self._fence_decision(broker_id, now, late_ms, why))
        except Failure as exc:
            log.debug("fencing broker %d failed: %s", broker_id, exc.message)

    def _fence_decision(
        self, broker_id: int, now: int, late_ms: int, why: str
    ) -> Callable[[MetadataImage, int], tuple[None, list[MetadataRecord]]]:
        def decide(image: MetadataImage, _: int) -> tuple[None, list[MetadataRecord]]:
            if broker_id not in logic.expired_sessions(image, self._sessions, now, late_ms):
                return None, []  # it heartbeated (or was fenced) meanwhile
            log.info("fencing broker %d: %s, no heartbeat for %d ms", broker_id, why, late_ms)
            return None, logic.fence_records(image, broker_id)

        return decide

    async def fetch(self, from_offset: int, wait_ms: int) -> MetadataSlice:
        """Committed records after `from_offset`; any controller serves its own state."""
        return await self._state.fetch(from_offset, min(wait_ms, MAX_FETCH_WAIT_MS))

    # ------------------------------------------------------------------ topics

    async def create_topics(
        self, requests: list[logic.TopicRequest], validate_only: bool
    ) -> list[logic.TopicOutcome]:
        def decide(
            image: MetadataImage, _: int
        ) -> tuple[list[logic.TopicOutcome], list[MetadataRecord]]:
            outcomes, records = logic.create_topics(
                image, requests, self._policy, lambda: str(uuid.uuid4())
            )
            return outcomes, [] if validate_only else records

        return await self._commit(decide)

    async def delete_topics(self, names: list[str]) -> list[logic.TopicOutcome]:
        return await self._commit(lambda image, _: logic.delete_topics(image, names))

    async def create_partitions(self, name: str, total: int, validate_only: bool) -> None:
        def decide(image: MetadataImage, _: int) -> tuple[None, list[MetadataRecord]]:
            decision = logic.create_partitions(image, name, total)
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return None, [] if validate_only else decision

        await self._commit(decide)

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> None:
        def decide(image: MetadataImage, _: int) -> tuple[None, list[MetadataRecord]]:
            decision = logic.set_topic_configs(image, name, configs)
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return None, decision

        await self._commit(decide)

    async def set_cluster_configs(self, changes: Mapping[str, str | None]) -> None:
        def decide(image: MetadataImage, _: int) -> tuple[None, list[MetadataRecord]]:
            decision = logic.set_cluster_configs(image, changes)
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return None, decision

        await self._commit(decide)

    async def alter_partition(self, r: pb.AlterPartitionRequest) -> PartitionInfo:
        def decide(image: MetadataImage, _: int) -> tuple[PartitionInfo, list[MetadataRecord]]:
            decision = logic.alter_partition(
                image,
                r.broker_id,
                r.broker_epoch,
                r.topic_id,
                r.partition,
                r.leader_epoch,
                r.partition_epoch,
                list(r.isr),
            )
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            records, result = decision
            return result, records

        return await self._commit(decide)

    async def alter_security(self, records: list[MetadataRecord]) -> int:
        """The Raft index the records were committed at (0 if there were none)."""

        def decide(image: MetadataImage, index: int) -> tuple[int, list[MetadataRecord]]:
            decision = logic.alter_security(image, records)
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return (index if decision else 0), decision

        return await self._commit(decide)

    async def allocate_producer_ids(self, broker_id: int, epoch: int) -> tuple[int, int]:
        size = self._policy.producer_id_block_size

        def decide(image: MetadataImage, _: int) -> tuple[tuple[int, int], list[MetadataRecord]]:
            decision = logic.allocate_producer_ids(image, broker_id, epoch, size)
            if isinstance(decision, logic.Rejected):
                raise Failure.of(decision)
            return (image.next_producer_id, size), decision

        return await self._commit(decide)


# ---------------------------------------------------------------------------- gRPC


def _partition_proto(p: PartitionInfo) -> pb.PartitionState:
    return pb.PartitionState(
        topic_id=p.topic_id,
        partition=p.partition,
        replicas=list(p.replicas),
        isr=list(p.isr),
        leader=p.leader,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
    )


def _topic_results(outcomes: list[logic.TopicOutcome]) -> list[pb.TopicResult]:
    return [
        pb.TopicResult(name=o.name, error_code=o.error_code, message=o.message or "")
        for o in outcomes
    ]


_OK = pb.Error(code=0, message="", leader_hint=-1)


class Servicer(controller_pb2_grpc.ControllerQuorumServicer):
    def __init__(self, node_id: int, peers: set[int], driver: RaftDriver, controller: Controller):
        self._node_id = node_id
        self._peers = peers
        self._driver = driver
        self._controller = controller

    async def Raft(self, request: pb.RaftBatch, context: grpc.aio.ServicerContext) -> pb.RaftAck:
        messages: list[Message] = []
        try:
            for data in request.messages:
                message = decode_message(data)
                if message.dst != self._node_id or message.src not in self._peers:
                    raise CodecError(f"message from {message.src} to {message.dst} is not for us")
                messages.append(message)
        except CodecError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:200])
        await self._driver.receive(messages)
        return pb.RaftAck()

    async def RegisterBroker(
        self, request: pb.RegisterBrokerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterBrokerReply:
        try:
            epoch = await self._controller.register_broker(
                request.broker_id,
                request.incarnation_id,
                request.host,
                request.port,
                dict(request.listeners),
            )
        except Failure as exc:
            return pb.RegisterBrokerReply(error=exc.proto())
        return pb.RegisterBrokerReply(error=_OK, broker_epoch=epoch)

    async def BrokerHeartbeat(
        self, request: pb.BrokerHeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.BrokerHeartbeatReply:
        try:
            decision = await self._controller.heartbeat(
                request.broker_id,
                request.broker_epoch,
                request.metadata_offset,
                request.want_shutdown,
            )
        except Failure as exc:
            return pb.BrokerHeartbeatReply(error=exc.proto())
        return pb.BrokerHeartbeatReply(
            error=_OK, fenced=decision.fenced, shutdown_ok=decision.shutdown_ok
        )

    async def FetchMetadata(
        self, request: pb.FetchMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.FetchMetadataReply:
        found = await self._controller.fetch(request.from_offset, request.wait_ms)
        return pb.FetchMetadataReply(
            error=_OK,
            has_snapshot=found.snapshot is not None,
            snapshot=found.snapshot or b"",
            records=list(found.records),
            next_offset=found.next_offset,
        )

    async def CreateTopics(
        self, request: pb.CreateTopicsRequest, context: grpc.aio.ServicerContext
    ) -> pb.TopicsReply:
        requests = [
            logic.TopicRequest(t.name, t.partitions, t.replication_factor, dict(t.configs))
            for t in request.topics
        ]
        try:
            outcomes = await self._controller.create_topics(requests, request.validate_only)
        except Failure as exc:
            return pb.TopicsReply(error=exc.proto())
        return pb.TopicsReply(error=_OK, results=_topic_results(outcomes))

    async def DeleteTopics(
        self, request: pb.DeleteTopicsRequest, context: grpc.aio.ServicerContext
    ) -> pb.TopicsReply:
        try:
            outcomes = await self._controller.delete_topics(list(request.names))
        except Failure as exc:
            return pb.TopicsReply(error=exc.proto())
        return pb.TopicsReply(error=_OK, results=_topic_results(outcomes))

    async def CreatePartitions(
        self, request: pb.CreatePartitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.TopicsReply:
        return await self._one_topic(
            request.name,
            self._controller.create_partitions(
                request.name, request.total_count, request.validate_only
            ),
        )

    async def SetTopicConfigs(
        self, request: pb.SetTopicConfigsRequest, context: grpc.aio.ServicerContext
    ) -> pb.TopicsReply:
        configs = dict(request.configs)
        return await self._one_topic(
            request.name, self._controller.set_topic_configs(request.name, configs)
        )

    async def SetClusterConfigs(
        self, request: pb.SetClusterConfigsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetClusterConfigsReply:
        changes: dict[str, str | None] = {key: None for key in request.deleted}
        changes.update(request.configs)
        try:
            await self._controller.set_cluster_configs(changes)
        except Failure as exc:
            return pb.SetClusterConfigsReply(error=exc.proto())
        return pb.SetClusterConfigsReply(error=_OK)

    async def _one_topic(self, name: str, call: Awaitable[None]) -> pb.TopicsReply:
        """A topic-level failure is the topic's result; NOT_CONTROLLER stays the RPC's."""
        try:
            await call
        except Failure as exc:
            if exc.code == ErrorCode.not_controller:
                return pb.TopicsReply(error=exc.proto())
            result = pb.TopicResult(name=name, error_code=exc.code, message=exc.message)
            return pb.TopicsReply(error=_OK, results=[result])
        return pb.TopicsReply(error=_OK, results=[pb.TopicResult(name=name, error_code=0)])

    async def AlterPartition(
        self, request: pb.AlterPartitionRequest, context: grpc.aio.ServicerContext
    ) -> pb.AlterPartitionReply:
        try:
            result = await self._controller.alter_partition(request)
        except Failure as exc:
            return pb.AlterPartitionReply(error=exc.proto())
        return pb.AlterPartitionReply(error=_OK, partition=_partition_proto(result))

    async def AlterSecurity(
        self, request: pb.AlterSecurityRequest, context: grpc.aio.ServicerContext
    ) -> pb.AlterSecurityReply:
        try:
            records = [decode(data) for data in request.records]
        except MetadataError as exc:
            failure = Failure(int(ErrorCode.invalid_request), f"undecodable record: {exc}")
            return pb.AlterSecurityReply(error=failure.proto())
        try:
            offset = await self._controller.alter_security(records)
        except Failure as exc:
            return pb.AlterSecurityReply(error=exc.proto())
        return pb.AlterSecurityReply(error=_OK, offset=offset)

    async def AllocateProducerIds(
        self, request: pb.AllocateProducerIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.AllocateProducerIdsReply:
        try:
            first, count = await self._controller.allocate_producer_ids(
                request.broker_id, request.broker_epoch
            )
        except Failure as exc:
            return pb.AllocateProducerIdsReply(error=exc.proto())
        return pb.AllocateProducerIdsReply(error=_OK, first_id=first, count=count)
