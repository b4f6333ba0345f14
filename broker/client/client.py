"""An async Kafka client on our codec: metadata, routing to leaders, version negotiation.

Used by the mirror (and later by follower fetchers, chaos and the CLI). It speaks only
the public protocol, so it works against any Kafka-compatible cluster.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from broker.client.connection import KafkaConnection, KafkaConnectionError
from broker.client.security import ClientSecurity
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, request_builder
from broker.protocol.versions import SERVED, ApiKey

# Highest versions the client asks for: the broker's own maxima (non-flexible hot APIs).
CLIENT_MAX_VERSION: dict[ApiKey, int] = {
    ApiKey(key): served.served_max
    for key, served in SERVED.items()
    if key not in (ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.DESCRIBE_CLUSTER)
}
# Versions below these lack fields we rely on (record batch v2, leader epochs, ...).
CLIENT_MIN_VERSION: dict[ApiKey, int] = {
    ApiKey.PRODUCE: 3,
    ApiKey.FETCH: 4,
    ApiKey.LIST_OFFSETS: 1,
    ApiKey.METADATA: 1,
}


DEFAULT_LANE = "default"
FETCH_LANE = "fetch"


class KafkaError(Exception):
    """A Kafka error code returned by a broker for some operation."""

    def __init__(self, code: int, context: str, message: str | None = None) -> None:
        self.code = ErrorCode(code)
        self.context = context
        detail = f": {message}" if message else ""
        super().__init__(f"{context}: {self.code.name} ({int(code)}){detail}")

    @property
    def retriable(self) -> bool:
        return bool(self.code.retriable)


def check(code: Any, context: str, message: str | None = None) -> None:
    """Raise KafkaError for a non-zero error code."""
    if int(code) != 0:
        raise KafkaError(int(code), context, message)


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    error: int
    internal: bool
    partitions: dict[int, PartitionInfo]


@dataclass
class ClusterView:
    brokers: dict[int, tuple[str, int]] = field(default_factory=dict)
    controller_id: int = -1
    topics: dict[str, TopicInfo] = field(default_factory=dict)


class KafkaClient:
    """`async with KafkaClient(bootstrap) as client:`; one connection per broker."""

    def __init__(
        self,
        bootstrap: list[tuple[str, int]],
        *,
        client_id: str = "regionlink",
        request_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        local_host: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        security: ClientSecurity | None = None,
    ) -> None:
        """`local_host` binds outgoing connections to one of this host's addresses;
        `ssl_context` makes them TLS (the broker's replica fetches to an SSL listener);
        `security` is a cluster's TLS/SASL settings (its TLS context unless `ssl_context`
        is given too)."""
        assert bootstrap, "a client needs at least one bootstrap address"
        self.bootstrap = list(bootstrap)
        self.client_id = client_id
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.local_host = local_host
        self.security = security
        self.ssl_context = (
            ssl_context if ssl_context is not None or security is None else security.ssl_context()
        )
        self.view = ClusterView()
        # Keyed by (address, lane): brokers answer a connection's requests in order, so
        # long-polling fetches get their own lane and never delay admin or group requests.
        self._connections: dict[tuple[tuple[str, int], str], KafkaConnection] = {}
        self._connect_locks: dict[tuple[tuple[str, int], str], anyio.Lock] = {}
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> KafkaClient:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        try:
            with anyio.CancelScope(shield=True):  # closing must finish even when cancelled
                for connection in list(self._connections.values()):
                    await connection.aclose()
        finally:
            self._task_group.cancel_scope.cancel()
            try:
                result = await self._task_group.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                # The task group is ours, not the caller's: an error raised in the body of
                # `async with client` reaches the caller as itself, not wrapped in a group.
                if exc is not None and list(group.exceptions) == [exc]:
                    raise exc from None
                raise
        return result

    # --- connections -------------------------------------------------------------

    async def connection_to(
        self, address: tuple[str, int], lane: str = DEFAULT_LANE
    ) -> KafkaConnection:
        key = (address, lane)
        existing = self._connections.get(key)
        if existing is not None and not existing.closed:
            return existing
        lock = self._connect_locks.setdefault(key, anyio.Lock())
        async with lock:
            existing = self._connections.get(key)
            if existing is not None and not existing.closed:
                return existing
            assert self._task_group is not None, "use KafkaClient as an async context manager"
            connection = await KafkaConnection.open(
                address,
                self.client_id,
                self._task_group,
                self.connect_timeout_s,
                self.local_host,
                self.ssl_context,
                self.security,
            )
            self._connections[key] = connection
            return connection

    async def connection(
        self, node_id: int | None = None, lane: str = DEFAULT_LANE
    ) -> KafkaConnection:
        """A connection to broker `node_id`, or to any reachable broker when None."""
        if node_id is not None:
            address = self.view.brokers.get(node_id)
            if address is None:
                await self.refresh_metadata()
                address = self.view.brokers.get(node_id)
            if address is None:
                raise KafkaConnectionError(f"broker {node_id} is not in the cluster metadata")
            return await self.connection_to(address, lane)
        for (_, connection_lane), connection in self._connections.items():
            if connection_lane == lane and not connection.closed:
                return connection
        candidates = list(self.view.brokers.values()) or list(self.bootstrap)
        random.shuffle(candidates)
        errors = []
        for address in candidates + [a for a in self.bootstrap if a not in candidates]:
            try:
                return await self.connection_to(address, lane)
            except KafkaConnectionError as exc:
                errors.append(str(exc))
        raise KafkaConnectionError("no broker reachable: " + "; ".join(errors))

    # --- requests ------------------------------------------------------------------

    async def call(
        self,
        api_key: ApiKey,
        build: Callable[[MessageBuilder, int], Any],
        node_id: int | None = None,
        timeout_s: float | None = None,
        lane: str = DEFAULT_LANE,
    ) -> Any:
        """Negotiate the version with the broker, build the request for it, send it."""
        connection = await self.connection(node_id, lane)
        version = connection.version_for(
            api_key, CLIENT_MAX_VERSION[api_key], CLIENT_MIN_VERSION.get(api_key, 0)
        )
        body = build(request_builder(api_key, version), version)
        return await connection.request(
            api_key, version, body, timeout_s if timeout_s is not None else self.request_timeout_s
        )

    async def refresh_metadata(self, topics: list[str] | None = None) -> ClusterView:
        """Fetch metadata for `topics` (None = all) and merge it into `self.view`."""

        def build(b: MessageBuilder, version: int) -> Any:
            wanted = (
                None
                if topics is None
                else tuple(b.make("MetadataRequestTopic", name=t) for t in topics)
            )
            return b.make(
                "MetadataRequest",
                topics=wanted,
                allow_auto_topic_creation=False,
                include_cluster_authorized_operations=False,
                include_topic_authorized_operations=False,
            )

        response = await self.call(ApiKey.METADATA, build)
        view = self.view
        view.brokers = {int(b.node_id): (b.host, int(b.port)) for b in response.brokers}
        view.controller_id = int(getattr(response, "controller_id", -1))
        if topics is None:
            view.topics = {}
        for topic in response.topics:
            partitions = {
                int(p.partition_index): PartitionInfo(
                    int(p.partition_index),
                    int(p.leader_id),
                    int(getattr(p, "leader_epoch", -1)),
                    tuple(int(r) for r in p.replica_nodes),
                    tuple(int(r) for r in p.isr_nodes),
                    int(p.error_code),
                )
                for p in topic.partitions
            }
            view.topics[topic.name] = TopicInfo(
                topic.name, int(topic.error_code), bool(topic.is_internal), partitions
            )
        return view

    async def leader_for(self, topic: str, partition: int, refresh: bool = False) -> int:
        """The leader's node id; raises KafkaError if the topic or partition is unknown."""
        info = None if refresh else self.view.topics.get(topic)
        if info is None or partition not in info.partitions:
            await self.refresh_metadata([topic])
            info = self.view.topics.get(topic)
        if info is None:
            raise KafkaError(int(ErrorCode.unknown_topic_or_partition), topic)
        check(info.error, f"metadata for {topic}")
        if partition not in info.partitions:
            raise KafkaError(int(ErrorCode.unknown_topic_or_partition), f"{topic}[{partition}]")
        leader = info.partitions[partition].leader
        if leader < 0:
            raise KafkaError(int(ErrorCode.leader_not_available), f"{topic}[{partition}]")
        return leader
