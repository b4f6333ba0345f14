"""The brokers' client of the controller quorum (gRPC).

Every call goes to the controller believed to lead; a NOT_CONTROLLER answer points at the
leader (or, with no hint, the next controller is tried), and an unreachable controller is
skipped. Retries back off briefly and give up after `timeout_s` (plus `wait_ms` for a
long-polling fetch) with `ControllerError(REQUEST_TIMED_OUT)`. Kafka errors that are the
answer (e.g. STALE_BROKER_EPOCH) raise `ControllerError` at once, with that code; per-topic
errors come back in `TopicResult`s.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import grpc

from broker.kraft.controller import controller_pb2 as pb
from broker.kraft.controller import controller_pb2_grpc
from broker.kraft.controller.transport import CHANNEL_OPTIONS
from broker.kraft.grpc_tls import GrpcTls, open_channel
from broker.kraft.metadata import (
    MetadataError,
    MetadataImage,
    MetadataRecord,
    PartitionInfo,
    decode,
    encode,
)
from broker.protocol.errors import ErrorCode

R = TypeVar("R")
_BACKOFF_S = (0.05, 0.1, 0.2, 0.4)


class ControllerError(Exception):
    """A controller call failed: `error_code` is a Kafka error code."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(f"{message} (error {error_code})")
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicResult:
    name: str
    error_code: int
    message: str | None = None


@dataclass(frozen=True)
class HeartbeatReply:
    fenced: bool
    shutdown_ok: bool


@dataclass(frozen=True)
class MetadataUpdate:
    """`snapshot` (when set) replaces the broker's image; then apply `records`; pass
    `next_offset` as the next `from_offset` (and as the heartbeat's metadata offset)."""

    snapshot: MetadataImage | None
    records: tuple[MetadataRecord, ...]
    next_offset: int


class ControllerClient:
    def __init__(
        self,
        quorum: Mapping[int, tuple[str, int]],
        *,
        timeout_s: float = 5.0,
        tls: GrpcTls | None = None,
    ) -> None:
        """`tls`: dial the controllers with mutual TLS (broker/kraft/grpc_tls.py)."""
        if not quorum:
            raise ValueError("the controller quorum is empty")
        self._addresses = {n: f"{h}:{p}" for n, (h, p) in quorum.items()}
        self._order = sorted(self._addresses)
        self._timeout_s = timeout_s
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._tls = tls
        self._leader: int | None = None
        self._next = 0

    # ------------------------------------------------------------------ the calls

    async def register_broker(
        self,
        broker_id: int,
        incarnation_id: str,
        host: str,
        port: int,
        listeners: Mapping[str, str] | None = None,
    ) -> int:
        """Register (fenced) at `host:port`, with named listeners (name -> "host:port")."""
        request = pb.RegisterBrokerRequest(
            broker_id=broker_id,
            incarnation_id=incarnation_id,
            host=host,
            port=port,
            listeners=listeners or {},
        )
        reply = await self._call(lambda s: s.RegisterBroker, request)
        return int(reply.broker_epoch)

    async def heartbeat(
        self, broker_id: int, epoch: int, metadata_offset: int, *, want_shutdown: bool = False
    ) -> HeartbeatReply:
        request = pb.BrokerHeartbeatRequest(
            broker_id=broker_id,
            broker_epoch=epoch,
            metadata_offset=metadata_offset,
            want_shutdown=want_shutdown,
        )
        reply = await self._call(lambda s: s.BrokerHeartbeat, request)
        return HeartbeatReply(fenced=reply.fenced, shutdown_ok=reply.shutdown_ok)

    async def fetch_metadata(self, from_offset: int, *, wait_ms: int) -> MetadataUpdate:
        request = pb.FetchMetadataRequest(from_offset=from_offset, wait_ms=wait_ms)
        reply = await self._call(lambda s: s.FetchMetadata, request, extra_s=wait_ms / 1000)
        try:
            snapshot = MetadataImage.from_snapshot(reply.snapshot) if reply.has_snapshot else None
            records = tuple(decode(r) for r in reply.records)
        except MetadataError as exc:
            raise ControllerError(int(ErrorCode.unknown_server_error), str(exc)) from exc
        return MetadataUpdate(snapshot, records, int(reply.next_offset))

    async def create_topics(
        self, specs: Sequence[TopicSpec], *, validate_only: bool = False
    ) -> list[TopicResult]:
        # Protobuf cannot carry a non-string value: answer for those here, as the controller
        # would, and send the rest.
        sendable = [s for s in specs if _all_strings(s.configs)]
        request = pb.CreateTopicsRequest(
            topics=[
                pb.TopicSpec(
                    name=s.name,
                    partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    configs=dict(s.configs),
                )
                for s in sendable
            ],
            validate_only=validate_only,
        )
        answered = iter(_results(await self._call(lambda s: s.CreateTopics, request)))
        return [next(answered) if _all_strings(s.configs) else _bad_configs(s.name) for s in specs]

    async def delete_topics(self, names: Sequence[str]) -> list[TopicResult]:
        request = pb.DeleteTopicsRequest(names=list(names))
        return _results(await self._call(lambda s: s.DeleteTopics, request))

    async def create_partitions(
        self, name: str, total_count: int, *, validate_only: bool = False
    ) -> TopicResult:
        request = pb.CreatePartitionsRequest(
            name=name, total_count=total_count, validate_only=validate_only
        )
        return _results(await self._call(lambda s: s.CreatePartitions, request))[0]

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicResult:
        if not _all_strings(configs):
            return _bad_configs(name)
        request = pb.SetTopicConfigsRequest(name=name, configs=dict(configs))
        return _results(await self._call(lambda s: s.SetTopicConfigs, request))[0]

    async def set_cluster_configs(self, changes: Mapping[str, str | None]) -> None:
        """Set (None: delete) the region's cluster-level configs; ControllerError if refused."""
        request = pb.SetClusterConfigsRequest(
            configs={k: v for k, v in changes.items() if v is not None},
            deleted=[k for k, v in changes.items() if v is None],
        )
        await self._call(lambda s: s.SetClusterConfigs, request)

    async def alter_partition(
        self,
        broker_id: int,
        broker_epoch: int,
        topic_id: str,
        partition: int,
        leader_epoch: int,
        partition_epoch: int,
        isr: Sequence[int],
    ) -> PartitionInfo:
        request = pb.AlterPartitionRequest(
            broker_id=broker_id,
            broker_epoch=broker_epoch,
            topic_id=topic_id,
            partition=partition,
            leader_epoch=leader_epoch,
            partition_epoch=partition_epoch,
            isr=list(isr),
        )
        p = (await self._call(lambda s: s.AlterPartition, request)).partition
        return PartitionInfo(
            p.topic_id,
            p.partition,
            tuple(p.replicas),
            tuple(p.isr),
            p.leader,
            p.leader_epoch,
            p.partition_epoch,
        )

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> tuple[int, int]:
        request = pb.AllocateProducerIdsRequest(broker_id=broker_id, broker_epoch=broker_epoch)
        reply = await self._call(lambda s: s.AllocateProducerIds, request)
        return int(reply.first_id), int(reply.count)

    async def alter_security(self, records: Sequence[MetadataRecord]) -> int:
        """Commit ACL / SCRAM credential records all or none; the Raft index they got (0
        when there was nothing to change). ControllerError(INVALID_REQUEST) if refused."""
        request = pb.AlterSecurityRequest(records=[encode(r) for r in records])
        reply = await self._call(lambda s: s.AlterSecurity, request)
        return int(reply.offset)

    async def aclose(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()

    # ------------------------------------------------------------------ routing

    def _stub(self, node_id: int) -> controller_pb2_grpc.ControllerQuorumStub:
        channel = self._channels.get(node_id)
        if channel is None:
            channel = open_channel(self._addresses[node_id], self._tls, CHANNEL_OPTIONS)
            self._channels[node_id] = channel
        return controller_pb2_grpc.ControllerQuorumStub(channel)

    def _target(self) -> int:
        if self._leader is not None:
            return self._leader
        node_id = self._order[self._next % len(self._order)]
        self._next += 1
        return node_id

    async def _call(
        self,
        method: Callable[[controller_pb2_grpc.ControllerQuorumStub], Callable[..., Awaitable[Any]]],
        request: Any,
        *,
        extra_s: float = 0.0,
    ) -> Any:
        deadline = time.monotonic() + self._timeout_s + extra_s
        last = "no controller answered"
        followed = False
        for attempt in range(1_000_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            node_id = self._target()
            try:
                reply = await method(self._stub(node_id))(request, timeout=remaining)
            except grpc.aio.AioRpcError as exc:
                last = f"controller {node_id}: {exc.code().name}"
                self._leader = None
            else:
                error = reply.error
                if error.code != ErrorCode.not_controller:
                    if error.code != 0:
                        raise ControllerError(int(error.code), error.message)
                    self._leader = node_id
                    return reply
                last = f"controller {node_id} is not the leader"
                hint = int(error.leader_hint)
                self._leader = hint if hint in self._addresses and hint != node_id else None
                if self._leader is not None and not followed:
                    followed = True
                    continue  # follow a hint at once, but not hint after hint
            followed = False
            pause = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
            await anyio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        raise ControllerError(int(ErrorCode.request_timed_out), f"timed out: {last}")


def _all_strings(configs: Mapping[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, str) for k, v in configs.items())


def _bad_configs(name: str) -> TopicResult:
    return TopicResult(
        name, int(ErrorCode.invalid_config), "config names and values must be strings"
    )


def _results(reply: Any) -> list[TopicResult]:
    return [TopicResult(r.name, int(r.error_code), r.message or None) for r in reply.results]
