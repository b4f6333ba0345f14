"""A broker's membership of a multi-broker region, through the controller quorum.

Registers (a new broker epoch per start), heartbeats, follows the committed metadata log into
a local `MetadataImage`, and applies it: topics into the broker's registry, partition roles
into leaders and followers. As a leader it proposes ISR changes (shrink on lag, expand on
catch-up); the controller decides. Topic administration is forwarded to the controller and
answered once this broker's own image shows the result, so a client's next Metadata agrees.
"""

from __future__ import annotations

import logging
import math
import ssl
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from broker.client.client import KafkaClient
from broker.clock import now_ms
from broker.config import CLIENT_LISTENER
from broker.kraft.controller_client import (
    ControllerClient,
    ControllerError,
    TopicResult,
    TopicSpec,
)
from broker.kraft.grpc_tls import GrpcTls
from broker.kraft.metadata import (
    CLUSTER_RESOURCE,
    BrokerInfo,
    MetadataError,
    MetadataImage,
    effective_topic_configs,
)
from broker.log import LogConfig
from broker.protocol.errors import ErrorCode
from broker.replication import roles
from broker.replication.follower import ReplicaFetcher
from broker.security.listeners import SecurityConfig
from broker.security.store import SecurityRecord, StoreUnavailable
from broker.security.tls import client_context
from broker.topics import TopicError, TopicInfo
from broker.topology import supersedes

if TYPE_CHECKING:
    from broker.broker import Broker

log = logging.getLogger("regionlink.cluster")

METADATA_WAIT_MS = 1000
ISR_CHECK_INTERVAL_S = 0.2
APPLY_TIMEOUT_S = 10.0
RETRY_BACKOFF_S = 0.25
# A fetch stuck on a dead link is abandoned after this long and the leader dialled again.
REPLICA_REQUEST_TIMEOUT_S = 10.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class ClusterLink:
    def __init__(self, broker: Broker, quorum: Mapping[int, tuple[str, int]]) -> None:
        self.broker = broker
        self.local_id = broker.config.node_id
        self.controllers = ControllerClient(quorum, tls=_controller_tls(broker.config.security))
        self.image = MetadataImage()
        self.metadata_offset = 0
        self.broker_epoch = -1
        self.fenced = True
        self._changed = anyio.Event()
        # Replication leaves from the listener's own address, so that the network (and a
        # drill's packet filter) can tell one broker's replica traffic from another's. It
        # goes to the other brokers' inter-broker listener (Kafka's
        # inter.broker.listener.name; the default listener unless named), over TLS with
        # this broker's certificate when that listener is SSL.
        host = broker.config.host
        wanted = (broker.config.security.inter_broker_listener or CLIENT_LISTENER).upper()
        self.replica_listener = next(
            (n for n in broker.config.listener_names if n.upper() == wanted), CLIENT_LISTENER
        )
        self._client = KafkaClient(
            [broker.advertised_for(self.replica_listener)],
            client_id=f"replica-{self.local_id}",
            request_timeout_s=REPLICA_REQUEST_TIMEOUT_S,
            local_host=None if host in WILDCARD_HOSTS else host,
            ssl_context=_replica_tls(broker.config.security, self.replica_listener),
        )
        self.fetcher = ReplicaFetcher(broker, self._client)
        self._isr_in_flight: set[tuple[str, int]] = set()
        self._unfenced_once = anyio.Event()

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._client, anyio.create_task_group() as tasks:
            await self._register()
            tasks.start_soon(self._follow_metadata)
            tasks.start_soon(self._heartbeat_loop)
            tasks.start_soon(self._isr_loop)
            tasks.start_soon(self.fetcher.run)
            tasks.start_soon(self._persist_startup_topology)
            await self._unfenced_once.wait()  # "ready" means it can take partitions
            task_status.started()

    async def _register(self) -> None:
        """Register with the default listener's address and every named listener's, so that
        any broker can tell a client the addresses of the listener it came in on."""
        host, port = self.broker.config.advertised_host_port(self.broker.port)
        listeners = {
            named.name: f"{named.advertised[0]}:{named.advertised[1]}"
            for named in self.broker.config.listeners
        }
        incarnation = uuid.uuid4().hex
        while True:
            try:
                self.broker_epoch = await self.controllers.register_broker(
                    self.local_id, incarnation, host, port, listeners
                )
                log.info("broker %d registered, epoch %d", self.local_id, self.broker_epoch)
                return
            except ControllerError as exc:
                log.warning("registration of broker %d failed: %s", self.local_id, exc)
                await anyio.sleep(RETRY_BACKOFF_S)

    async def _heartbeat_loop(self) -> None:
        interval_s = self.broker.config.heartbeat_interval_ms / 1000
        while True:
            try:
                reply = await self.controllers.heartbeat(
                    self.local_id, self.broker_epoch, self.metadata_offset
                )
                if reply.fenced != self.fenced:
                    log.info("broker %d %s", self.local_id, "fenced" if reply.fenced else "active")
                self.fenced = reply.fenced
                if not reply.fenced:
                    self._unfenced_once.set()
            except ControllerError as exc:
                if exc.error_code == ErrorCode.stale_broker_epoch:
                    await self._register()
                else:
                    log.warning("heartbeat failed: %s", exc)
            await anyio.sleep(interval_s)

    async def controlled_shutdown(self, timeout_s: float) -> None:
        """Ask the controller to move leadership away before this broker stops."""
        with anyio.move_on_after(timeout_s):
            while True:
                try:
                    reply = await self.controllers.heartbeat(
                        self.local_id, self.broker_epoch, self.metadata_offset, want_shutdown=True
                    )
                    if reply.shutdown_ok:
                        log.info("controlled shutdown of broker %d done", self.local_id)
                        return
                except ControllerError as exc:
                    log.warning("controlled shutdown: %s", exc)
                await anyio.sleep(0.1)

    async def aclose(self) -> None:
        await self.controllers.aclose()

    # -- metadata -------------------------------------------------------------------------
    async def _follow_metadata(self) -> None:
        while True:
            try:
                update = await self.controllers.fetch_metadata(
                    self.metadata_offset, wait_ms=METADATA_WAIT_MS
                )
            except ControllerError as exc:
                log.debug("metadata fetch failed: %s", exc)
                await anyio.sleep(RETRY_BACKOFF_S)
                continue
            if update.snapshot is not None:
                self.image = update.snapshot
            for record in update.records:
                try:
                    self.image.apply(record)
                except MetadataError as exc:  # the controller applied it; we must not differ
                    log.error("metadata record %r not applied: %s", record, exc)
            changed = update.snapshot is not None or bool(update.records)
            self.metadata_offset = max(self.metadata_offset, update.next_offset)
            if changed:
                self._apply_image()
                self._changed.set()
                self._changed = anyio.Event()

    def _apply_image(self) -> None:
        broker, image, now = self.broker, self.image, now_ms()
        cluster_configs = dict(image.configs(CLUSTER_RESOURCE))
        if cluster_configs != broker.topics.cluster_configs:
            try:
                broker.topics.set_cluster_configs(cluster_configs)
            except ValueError as exc:  # the controller checked them; we must not differ
                log.error("cluster configs %s not applied: %s", cluster_configs, exc)
        for b in image.brokers.values():
            address = _address(b, self.replica_listener)
            if address is not None:
                self._client.view.brokers[b.broker_id] = address
        live = {t.name: t for t in image.topics.values()}
        for info in broker.topics.all():
            topic = live.get(info.name)
            if topic is None or topic.topic_id != info.topic_id:
                broker.forget_topic(info.name)
        for topic in live.values():
            partitions = image.partitions(topic.topic_id)
            configs = effective_topic_configs(image, topic)
            config = LogConfig.from_topic_configs(configs)
            previous = broker.topics.get(topic.name)
            internal = topic.name.startswith("__")
            broker.topics.put(
                TopicInfo(topic.name, topic.topic_id, len(partitions), configs, internal)
            )
            if previous is not None and previous.configs != configs:
                broker.partitions.reconfigure(topic.name, config)
            for index, placement in partitions.items():
                if self.local_id not in placement.replicas:
                    continue
                partition = broker.partitions.open(topic.name, index, config, now_ms=now)
                partition.min_insync_replicas = config.min_insync_replicas
                roles.apply_partition_info(partition, placement, self.local_id, self.fetcher, now)
        broker.on_roles_changed()

    def is_live(self, broker_id: int) -> bool:
        info = self.image.broker(broker_id)
        return info is not None and not info.fenced

    def live_brokers(self, listener: str = CLIENT_LISTENER) -> list[tuple[int, tuple[str, int]]]:
        """Unfenced brokers at their addresses for clients that came in on `listener` (just
        this one while none is unfenced).

        A live broker without that listener is left out, as Kafka does, rather than given at
        its default address: a client that came in on a named listener (through a WAN link's
        proxy) is in another network, where that address does not route or, all on one
        machine, routes around the link and the faults a drill puts on it. The client sees
        that broker's partitions without a reachable leader and asks again: a broker started
        without the listener shows as unavailable instead of silently bypassing the link."""
        live = []
        for info in self.image.brokers.values():
            address = _address(info, listener)
            if not info.fenced and address is not None:
                live.append((info.broker_id, address))
        own = (self.local_id, self.broker.advertised_for(listener))
        return sorted(live) or [own]

    async def wait_for(
        self, condition: Callable[[], bool], timeout_s: float = APPLY_TIMEOUT_S
    ) -> bool:
        """Wait until `condition()` holds on the applied image (after a controller change)."""
        with anyio.move_on_after(timeout_s):
            while not condition():
                await self._changed.wait()
            return True
        return False

    # -- ISR ------------------------------------------------------------------------------
    async def _isr_loop(self) -> None:
        lag_max_ms = self.broker.config.replica_lag_time_max_ms
        async with anyio.create_task_group() as tasks:
            while True:
                await anyio.sleep(ISR_CHECK_INTERVAL_S)
                now = now_ms()
                for partition in self.broker.partitions.all():
                    leader = partition.leader
                    key = (partition.topic, partition.index)
                    if leader is None or key in self._isr_in_flight:
                        continue
                    isr = leader.isr_after_shrink(now, lag_max_ms) or leader.isr_after_expand()
                    if isr is not None:
                        self._isr_in_flight.add(key)
                        tasks.start_soon(self._alter_isr, key, isr)

    async def _alter_isr(self, key: tuple[str, int], isr: tuple[int, ...]) -> None:
        try:
            partition = self.broker.partition(*key)
            topic = self.broker.topics.get(key[0])
            leader = partition.leader if partition else None
            if partition is None or topic is None or leader is None:
                return
            log.info("%s-%d: ISR %s -> %s", key[0], key[1], leader.isr, isr)
            try:
                info = await self.controllers.alter_partition(
                    self.local_id,
                    self.broker_epoch,
                    topic.topic_id,
                    key[1],
                    leader.leader_epoch,
                    leader.partition_epoch,
                    isr,
                )
            except ControllerError as exc:
                log.warning("%s-%d: ISR change refused: %s", key[0], key[1], exc)
                await anyio.sleep(RETRY_BACKOFF_S)
                return
            if partition.leader is leader and info.leader_epoch == leader.leader_epoch:
                roles.apply_partition_info(partition, info, self.local_id, self.fetcher, now_ms())
        finally:
            self._isr_in_flight.discard(key)

    # -- administration (forwarded to the controller) -------------------------------------
    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str],
        *,
        validate_only: bool = False,
    ) -> None:
        spec = TopicSpec(name, partitions, replication_factor, configs)
        with _as_topic_error():
            _raise_for(await self.controllers.create_topics([spec], validate_only=validate_only))
        if not validate_only:
            await self.wait_for(lambda: name in self.broker.topics)

    async def delete_topic(self, name: str) -> None:
        with _as_topic_error():
            _raise_for(await self.controllers.delete_topics([name]))
        await self.wait_for(lambda: name not in self.broker.topics)

    async def add_partitions(self, name: str, count: int, *, validate_only: bool) -> None:
        with _as_topic_error():
            result = await self.controllers.create_partitions(
                name, count, validate_only=validate_only
            )
        _raise_for([result])
        if not validate_only:
            await self.wait_for(lambda: _partition_count(self.broker, name) >= count)

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        with _as_topic_error():
            _raise_for([await self.controllers.set_topic_configs(name, configs)])
        await self.wait_for(lambda: _has_configs(self.broker, name, configs))

    async def set_cluster_configs(self, changes: Mapping[str, str | None]) -> None:
        with _as_topic_error():
            await self.controllers.set_cluster_configs(changes)
        await self.wait_for(
            lambda: all(self.broker.topics.cluster_configs.get(k) == v for k, v in changes.items())
        )

    async def _persist_startup_topology(self) -> None:
        """Start-up options newer than the region's topology go to the controller (the broker
        enforces them meanwhile: Broker.topology). Only once this broker's image holds all
        that was committed before it registered, so an equal epoch is never overwritten."""
        startup = self.broker.config.startup_topology
        if startup is None:
            return
        await self.wait_for(lambda: self.metadata_offset >= self.broker_epoch, timeout_s=math.inf)
        while supersedes(startup, self.broker.topics.topology):
            try:
                await self.controllers.set_cluster_configs(startup.configs())
            except ControllerError as exc:
                if exc.error_code == ErrorCode.invalid_config:  # the region knows a newer epoch
                    return
                log.warning("start-up topology not persisted yet: %s", exc)
                await anyio.sleep(RETRY_BACKOFF_S)
                continue
            if await self.wait_for(lambda: not supersedes(startup, self.broker.topics.topology)):
                log.info(
                    "topology epoch %d, role %r from start-up options", startup.epoch, startup.role
                )

    async def alter_security(self, records: Sequence[SecurityRecord]) -> None:
        """Commit ACL / SCRAM records through the controllers (all or none), then wait
        until this broker's image holds them, so the client's next request sees them.
        MetadataError if refused; StoreUnavailable if the outcome is unknown."""
        try:
            offset = await self.controllers.alter_security(records)
        except ControllerError as exc:
            if exc.error_code == ErrorCode.invalid_request:
                raise MetadataError(exc.message) from exc
            raise StoreUnavailable(exc.error_code, exc.message) from exc
        if offset and not await self.wait_for(lambda: self.metadata_offset >= offset):
            raise StoreUnavailable(
                int(ErrorCode.request_timed_out),
                f"committed at {offset}, not yet in broker {self.local_id}'s metadata",
            )

    async def allocate_producer_ids(self) -> tuple[int, int]:
        with _as_topic_error():
            return await self.controllers.allocate_producer_ids(self.local_id, self.broker_epoch)


@contextmanager
def _as_topic_error() -> Iterator[None]:
    """Controller refusals reach Kafka clients as the same error codes."""
    try:
        yield
    except ControllerError as exc:
        raise TopicError(exc.error_code, exc.message) from exc


def _raise_for(results: Sequence[TopicResult]) -> None:
    for result in results:
        if result.error_code != ErrorCode.none:
            raise TopicError(result.error_code, result.message or f"error {result.error_code}")


def _partition_count(broker: Broker, name: str) -> int:
    info = broker.topics.get(name)
    return info.partitions if info else 0


def _has_configs(broker: Broker, name: str, configs: Mapping[str, str]) -> bool:
    info = broker.topics.get(name)
    return info is not None and all(info.configs.get(k) == v for k, v in configs.items())


def _address(info: BrokerInfo, listener: str) -> tuple[str, int] | None:
    """A registered broker's address for `listener`; None if it has no such listener."""
    if listener == CLIENT_LISTENER:
        return info.host, info.port
    return info.listener_address(listener)


def _controller_tls(security: SecurityConfig) -> GrpcTls | None:
    """Mutual TLS to the controllers with this broker's certificate, when asked for."""
    tls = security.tls
    if not security.controller_tls or tls is None or tls.ca is None:
        return None
    return GrpcTls(tls.certificate, tls.key, tls.ca)


def _replica_tls(security: SecurityConfig, listener: str) -> ssl.SSLContext | None:
    """The TLS context replica fetches dial `listener` with, if it speaks TLS: the
    region's CA, and this broker's certificate as the client certificate."""
    tls = security.tls
    if not security.protocol_of(listener).tls or tls is None or tls.ca is None:
        return None
    return client_context(tls.ca, tls.certificate, tls.key)
