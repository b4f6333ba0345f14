"""A single broker: owns topics, partitions, groups; decodes requests and dispatches them."""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from broker import links
from broker.clock import now_ms
from broker.config import CLIENT_LISTENER, BrokerConfig
from broker.groups import GroupCoordinator
from broker.groups.coordinator import TICK_INTERVAL_S
from broker.handlers import HANDLERS
from broker.handlers.api_versions import unsupported_api_versions_response
from broker.lease import WriteLease, keep_lease, refusal_message
from broker.log import LogConfig
from broker.metrics.traffic import Traffic
from broker.offsets_topic import OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIGS, build_group_coordinator
from broker.partitions import Partition, PartitionManager
from broker.pipeline import Later, Response
from broker.protocol.codec import (
    Frame,
    HandWritten,
    decode_header,
    decode_request,
    encode_response_frame,
)
from broker.protocol.errors import ErrorCode, ProtocolError, UnsupportedVersion
from broker.protocol.framing import frame as framed
from broker.protocol.versions import ApiKey
from broker.replication import roles
from broker.replication.waits import replicated
from broker.security.authz import Access
from broker.security.connection import listener_securities
from broker.security.guard import Guard
from broker.security.store import LocalSecurityStore, SecurityStore
from broker.security.tls import client_context
from broker.server import ConnectionInfo, serve
from broker.topics import TopicError, TopicInfo, TopicRegistry
from broker.topology import (
    PRIMARY_ROLE,
    Topology,
    checked_update,
    newest,
    supersedes,
    with_changes,
)

if TYPE_CHECKING:
    from broker.replication.cluster import ClusterLink

log = logging.getLogger("regionlink.broker")

CLUSTER_ID_FILE = "cluster_id"
SINGLE_NODE_REPLICATION_FACTORS = (-1, 1)
GROUP_COMMIT_TIMEOUT_S = 5.0


class Broker:
    """State shared by all connections of one broker process (single event loop, no locks)."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = _load_cluster_id(config)
        self.partitions = PartitionManager(config.data_dir)
        self.traffic = Traffic()  # what it appended and served, for its metrics
        self.port = config.port
        self.groups: GroupCoordinator | None = None
        self._groups_epoch = -1
        self.cluster: ClusterLink | None = None
        self._producer_ids = (0, 0)  # a block from the controller: (next, end)
        self.lease = (
            WriteLease(config.lease_s, time.monotonic()) if config.lease_s is not None else None
        )
        if config.controllers:
            from broker.replication.cluster import ClusterLink  # gRPC only when clustered
            from broker.security.cluster_store import ClusterSecurityStore

            self.topics = TopicRegistry(None)  # kept by the metadata log
            self.cluster = ClusterLink(self, config.controllers)
            self.security: SecurityStore = ClusterSecurityStore(self.cluster)
        else:
            self.topics = TopicRegistry(config.data_dir / "topics.json")
            self.security = LocalSecurityStore(config.data_dir)
            self._apply_startup_topology()
            for info in self.topics.all():
                self.open_topic(info)
            self.groups = build_group_coordinator(self)
        self.guard = Guard(config.authorizer, self.security)
        # TLS and SASL per listener; bad PEM files fail the start (TlsConfigError).
        self.listener_security = listener_securities(
            config.security, config.listener_names, self.security.scram_credential
        )

    def access(self, info: ConnectionInfo) -> Access | None:
        """What the connection's principal may do; None with no authorizer (all of it)."""
        return self.guard.access(info.principal, info.peer_host)

    # -- topology -------------------------------------------------------------------------
    @property
    def topology(self) -> Topology:
        """The region's topology epoch and role, as client writes and links are checked."""
        return newest(self.topics.topology, self.config.startup_topology)

    def _lease_tls(self) -> ssl.SSLContext | None:
        """The TLS context lease probes dial the standby with, if asked to (--lease-tls)."""
        tls = self.config.security.tls
        if not self.config.lease_tls or tls is None or tls.ca is None:
            return None
        return client_context(tls.ca, tls.certificate, tls.key)

    def lease_refusal(self) -> str | None:
        """Why a primary refuses client writes on its own (its write lease lapsed), or None."""
        if self.lease is None or self.topology.role != PRIMARY_ROLE:
            return None
        now_s = time.monotonic()
        return refusal_message(self.lease, now_s) if self.lease.expired(now_s) else None

    def _apply_startup_topology(self) -> None:
        """A single node persists newer start-up options before it serves anyone."""
        startup = self.config.startup_topology
        if startup is None or not supersedes(startup, self.topics.topology):
            return
        self.topics.set_cluster_configs(startup.configs())
        log.info("topology epoch %d, role %r from start-up options", startup.epoch, startup.role)

    async def set_cluster_configs(
        self, changes: dict[str, str | None], *, validate_only: bool = False
    ) -> None:
        """Set (None: delete) cluster-level configs; ValueError or TopicError if refused."""
        current = self.topics.cluster_configs
        updated = with_changes(current, changes)
        checked_update(current, updated)
        if validate_only:
            return
        if self.cluster is not None:  # the controller checks again, on its committed image
            await self.cluster.set_cluster_configs(changes)
            return
        self.topics.set_cluster_configs(updated)
        log.info("cluster configs now %s", updated)

    # -- topics ---------------------------------------------------------------------------
    def log_config(self, info: TopicInfo) -> LogConfig:
        return LogConfig.from_topic_configs(info.configs)

    def open_topic(self, info: TopicInfo) -> None:
        config = self.log_config(info)
        for index in range(info.partitions):
            self.partitions.open(info.name, index, config, now_ms=now_ms())

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: dict[str, str],
        *,
        replication_factor: int = -1,
        internal: bool = False,
        validate_only: bool = False,
    ) -> None:
        """Create a topic (through the controller in a multi-broker region).

        Raises TopicError (with the Kafka error code) or ValueError (a bad config) first.
        """
        LogConfig.from_topic_configs(configs)  # reject bad configs before anything is written
        links.check_topic_configs(configs)
        if self.cluster is not None:
            await self.cluster.create_topic(
                name, partitions, replication_factor, configs, validate_only=validate_only
            )
            return
        if replication_factor not in SINGLE_NODE_REPLICATION_FACTORS:
            raise TopicError(
                ErrorCode.invalid_replication_factor,
                f"replication factor {replication_factor} is more than the 1 broker available",
            )
        if validate_only:
            self.topics.check_create(name, partitions)
            return
        info = self.topics.create(name, partitions, configs, internal=internal)
        self.open_topic(info)
        log.info("created topic %s with %d partitions", name, partitions)

    async def delete_topic(self, name: str) -> None:
        if self.cluster is not None:
            await self.cluster.delete_topic(name)
            return
        self.topics.delete(name)
        self.forget_topic(name)
        log.info("deleted topic %s", name)

    def forget_topic(self, name: str) -> None:
        """Drop a deleted topic's partitions, data and committed offsets from this broker."""
        self.topics.remove(name)
        fetcher = self.cluster.fetcher if self.cluster is not None else None
        for partition in self.partitions.all():
            if partition.topic == name:
                roles.stop_replica(partition, fetcher)
        self.partitions.delete_topic(name)
        if self.groups is not None:
            self.groups.delete_offsets_for_topic(name)

    async def add_partitions(self, name: str, count: int, *, validate_only: bool = False) -> None:
        if self.cluster is not None:
            await self.cluster.add_partitions(name, count, validate_only=validate_only)
        elif validate_only:
            self.topics.check_partition_count(name, count)
        else:
            self.open_topic(self.topics.set_partition_count(name, count))

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        config = LogConfig.from_topic_configs(configs)
        links.check_topic_configs(configs)
        if self.cluster is not None:
            await self.cluster.set_topic_configs(name, configs)
            return
        self.topics.set_configs(name, configs)
        self.partitions.reconfigure(name, config)

    async def allocate_producer_id(self) -> int:
        """A producer id no other broker of the region hands out (blocks from the controller)."""
        if self.cluster is None:
            return self.topics.allocate_producer_id()
        next_id, end = self._producer_ids
        if next_id >= end:
            first, count = await self.cluster.allocate_producer_ids()
            next_id, end = first, first + count
        self._producer_ids = (next_id + 1, end)
        return next_id

    def missing_partition_error(self, topic: str, index: int) -> int:
        """The error for a partition this broker does not host: elsewhere, or nowhere."""
        info = self.topics.get(topic)
        if info is not None and 0 <= index < info.partitions:
            return ErrorCode.not_leader_or_follower
        return ErrorCode.unknown_topic_or_partition

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get(topic, index)

    # -- groups ---------------------------------------------------------------------------
    def advertised_for(self, listener: str) -> tuple[str, int]:
        """The address clients that came in on `listener` should use to reach this broker."""
        for named in self.config.listeners:
            if named.name == listener:
                return named.advertised
        return self.config.advertised_host_port(self.port)

    async def group_coordinator_address(
        self, listener: str = CLIENT_LISTENER
    ) -> tuple[int, tuple[str, int]] | None:
        """(node id, address) of the group coordinator: the leader of `__consumer_offsets`."""
        if self.cluster is None:
            return self.config.node_id, self.advertised_for(listener)
        if OFFSETS_TOPIC not in self.topics:
            try:
                await self.create_topic(OFFSETS_TOPIC, 1, OFFSETS_TOPIC_CONFIGS, internal=True)
            except TopicError as exc:
                if exc.error_code != ErrorCode.topic_already_exists:
                    log.warning("cannot create %s: %s", OFFSETS_TOPIC, exc.message)
                    return None
        info = self.topics.get(OFFSETS_TOPIC)
        placement = self.cluster.image.partition(info.topic_id, 0) if info else None
        if placement is None or placement.leader < 0:
            return None
        for node, address in self.cluster.live_brokers(listener):
            if node == placement.leader:
                return node, address
        return None

    async def group_log_replicated(self) -> int:
        """Wait until the ISR holds everything the coordinator wrote; the Kafka error or 0."""
        partition = self.partitions.get(OFFSETS_TOPIC, 0)
        if partition is None:
            return ErrorCode.not_coordinator
        with anyio.move_on_after(GROUP_COMMIT_TIMEOUT_S):
            error = await replicated(
                partition, partition.log.log_end_offset, partition.leader_epoch
            )
            return ErrorCode.not_coordinator if error == ErrorCode.not_leader_or_follower else error
        return ErrorCode.request_timed_out

    # -- replication ----------------------------------------------------------------------
    def follower_fetched(self, partition: Partition, replica_id: int, fetch_offset: int) -> None:
        roles.follower_fetched(partition, replica_id, fetch_offset, now_ms())

    def on_roles_changed(self) -> None:
        """Group coordination follows the leadership of `__consumer_offsets`."""
        partition = self.partitions.get(OFFSETS_TOPIC, 0)
        if partition is None or partition.leader is None:
            if self.groups is not None:
                log.info("no longer the group coordinator")
            self.groups = None
        elif self.groups is None or self._groups_epoch != partition.leader_epoch:
            self.groups = build_group_coordinator(self)
            self._groups_epoch = partition.leader_epoch
            log.info("group coordinator at leader epoch %d", partition.leader_epoch)

    # -- requests -------------------------------------------------------------------------
    async def dispatch(self, frame: bytes | bytearray, info: ConnectionInfo) -> Response:
        """Handle one request frame; returns the framed response (size prefix included), or
        `Later` that gives it (a produce request waiting for the ISR)."""
        try:
            request = decode_request(frame)
        except UnsupportedVersion as exc:
            header, _ = decode_header(frame)
            if exc.api_key == ApiKey.API_VERSIONS:
                return [framed(unsupported_api_versions_response(header.correlation_id))]
            raise
        handler = HANDLERS.get(request.header.api_key)
        if handler is None:
            raise ProtocolError(f"no handler for api_key {request.header.api_key}")
        body: Any = await handler(self, request, info)
        header = request.header
        if isinstance(body, Later):
            later: Later[Any] = body

            async def frame_later() -> Frame:
                return encode_response_frame(
                    header.api_key, header.api_version, header.correlation_id, await later.finish()
                )

            return Later(frame_later)
        if body is None:
            return None  # acks=0 produce: no response
        if isinstance(body, HandWritten):
            return body.frame(header.correlation_id)
        return encode_response_frame(
            header.api_key, header.api_version, header.correlation_id, body
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tasks:
                self.port = await tasks.start(
                    partial(serve, security=self.listener_security[CLIENT_LISTENER]),
                    self.config.host,
                    self.config.port,
                    self.dispatch,
                    self.config.max_frame_bytes,
                )
                for named in self.config.listeners:
                    await tasks.start(
                        partial(
                            serve, name=named.name, security=self.listener_security[named.name]
                        ),
                        named.host,
                        named.port,
                        self.dispatch,
                        self.config.max_frame_bytes,
                    )
                tasks.start_soon(self._maintenance_loop)
                tasks.start_soon(self._groups_loop)
                if self.lease is not None and self.config.lease_peers:
                    tasks.start_soon(
                        keep_lease, self.lease, list(self.config.lease_peers), self._lease_tls()
                    )
                if self.cluster is not None:
                    await tasks.start(self.cluster.run)
                log.info(
                    "broker %d listening on %s:%d (%s)",
                    self.config.node_id,
                    self.config.host,
                    self.port,
                    self.listener_security[CLIENT_LISTENER].protocol.value,
                )
                task_status.started(self.port)
        finally:
            self.close()

    async def _maintenance_loop(self) -> None:
        """Retention and compaction, a partition at a time, off the request path."""
        while True:
            await anyio.sleep(self.config.maintenance_interval_s)
            for partition in self.partitions.all():
                partition.log.apply_retention(now_ms())
                partition.log.compact(now_ms())
                await anyio.sleep(0)

    async def _groups_loop(self) -> None:
        """Session expiry and rebalance timers of whichever coordinator is current."""
        while True:
            await anyio.sleep(TICK_INTERVAL_S)
            if self.groups is not None:
                self.groups.tick()

    async def prepare_shutdown(self) -> None:
        """Before stopping: hand partition leadership to other brokers (controlled shutdown)."""
        if self.cluster is not None:
            await self.cluster.controlled_shutdown(self.config.controlled_shutdown_timeout_s)

    def close(self) -> None:
        self.partitions.close_all()
        log.info("broker %d closed its logs", self.config.node_id)


def _load_cluster_id(config: BrokerConfig) -> str:
    """A single node makes up its id once; a region's brokers derive theirs from the quorum."""
    if config.controllers:
        quorum = ",".join(f"{n}@{h}:{p}" for n, (h, p) in sorted(config.controllers.items()))
        return hashlib.sha256(quorum.encode()).hexdigest()[:22]
    path = config.data_dir / CLUSTER_ID_FILE
    if not path.exists():
        path.write_text(uuid.uuid4().hex[:22])
    return path.read_text().strip()
