"""The replicator process: runs every enabled flow of a config file.

Per flow: a source and a target client, group membership on the target (to share
partitions with other workers of the flow), topic discovery and remote-topic sync, one
copier per owned partition, and on the member with index 0 the flow-wide duties:
heartbeats, checkpoints and group offset sync.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup
from opentelemetry.metrics import Histogram

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.data import TopicPartition
from broker.links import HEARTBEATS_TOPIC, MIRROR_SOURCE, REMOTE_SOURCE
from mirror.config import FlowConfig, MirrorConfig
from mirror.copy.acl_sync import sync_topic_acls
from mirror.copy.copier import CopierBase, CopySettings, PartitionCopier
from mirror.copy.fetcher import FetcherPool, FetchSettings
from mirror.copy.latency import ReplicationLatency
from mirror.copy.link_copier import LinkCopier
from mirror.copy.policy import ReplicationPolicy
from mirror.copy.topic_sync import MirroredTopic, discover, ensure_remote_topics
from mirror.internal import COMPACTED, InternalTopic, offset_syncs_topic
from mirror.offsets.checkpoints import Checkpointer, end_offsets
from mirror.offsets.mm2_formats import Heartbeat
from mirror.offsets.source_ends import SourceEnds
from mirror.offsets.store import OffsetMapStore
from mirror.offsets.syncs import OffsetSyncEmitter
from mirror.status import FlowStatus, PartitionState, PartitionStatus, WorkerStatus
from mirror.worker.membership import Assignment, Membership

log = logging.getLogger(__name__)

REVOKE_GRACE_S = 5.0
PAUSED_LAG_INTERVAL_S = 1.0
"""How often a paused flow asks the source for its ends to keep its lag figures true."""


def worker_group_id(flow: FlowConfig) -> str:
    """The target-side group the flow's workers join (excluded from group mirroring)."""
    return f"regionlink-mirror-{flow.source}-{flow.target}"


@dataclass
class _Running:
    copier: CopierBase
    scope: anyio.CancelScope
    done: anyio.Event


class FlowRunner:
    def __init__(
        self,
        config: MirrorConfig,
        flow: FlowConfig,
        status: FlowStatus,
        worker_id: str,
        instance_id: str | None = None,
        latency: Histogram | None = None,
    ) -> None:
        self.config = config
        self.flow = flow
        self.status = status
        self.latency = ReplicationLatency(latency, status.name) if latency is not None else None
        self.worker_id = worker_id
        self.instance_id = instance_id
        self.policy = ReplicationPolicy.for_flow(flow, config.aliases)
        self.link_mode = config.writes_mirror_topics(flow)
        self.topics: list[MirroredTopic] = []
        self.assignment: Assignment | None = None
        self._running: dict[TopicPartition, _Running] = {}
        self._reconcile_lock = anyio.Lock()
        self._task_group: TaskGroup | None = None
        self.paused = False
        self._acl_error = ""

    def _client(self, alias: str) -> KafkaClient:
        cluster = self.config.clusters[alias]
        return KafkaClient(
            cluster.bootstrap_servers,
            client_id=f"regionlink-{self.worker_id}",
            request_timeout_s=cluster.request_timeout_s,
            security=cluster.client_security(),
        )

    async def run(self) -> None:
        async with (
            self._client(self.flow.source) as source,
            self._client(self.flow.target) as target,
        ):
            self.source, self.target = source, target
            # Mirror topics keep source offsets: no offset map, no MM2 offset syncs.
            self.store = None if self.link_mode else OffsetMapStore(target, self.flow.source)
            self.syncs = None if self.link_mode else self._sync_emitter(source, target)
            self.fetchers = FetcherPool(source, FetchSettings())
            membership = Membership(
                target,
                worker_group_id(self.flow),
                self._on_assignment,
                instance_id=self.instance_id,
            )
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._keep_topics)
                tg.start_soon(membership.run)
                tg.start_soon(self._flow_duties)
                tg.start_soon(self._watch_paused_lag)
                if self.syncs is not None:
                    tg.start_soon(self.syncs.run)
                tg.start_soon(self.fetchers.run)

    def _sync_emitter(self, source: KafkaClient, target: KafkaClient) -> OffsetSyncEmitter:
        if self.flow.offset_syncs_location == "source":
            return OffsetSyncEmitter(
                source, offset_syncs_topic(self.flow.target), self.flow.offset_lag_max
            )
        return OffsetSyncEmitter(
            target, offset_syncs_topic(self.flow.source), self.flow.offset_lag_max
        )

    # --- topics and partitions -------------------------------------------------------

    async def _keep_topics(self) -> None:
        while True:
            try:
                topics = await discover(self.source, self.flow, self.policy)
                if self.link_mode:  # each region's heartbeats are its own (written here)
                    topics = [t for t in topics if t.source_topic != HEARTBEATS_TOPIC]
                await ensure_remote_topics(
                    self.source, self.target, self.flow, topics, link_configs=self._link_configs()
                )
                self.topics = topics
                self.status.topics = [t.source_topic for t in topics]
                self.status.state = "paused" if self.paused else "running"
                self.status.last_error = ""
                await self._reconcile()
            except (KafkaError, KafkaConnectionError) as exc:
                self.status.state = "error"
                self.status.last_error = str(exc)
                log.warning("flow %s: topic sync failed: %s", self.flow.name, exc)
            else:
                await self._sync_acls()
            await anyio.sleep(self.flow.refresh_topics_interval_s)

    async def _sync_acls(self) -> None:
        """Member 0 copies topic ACLs (one writer, so members do not race), after topic
        sync made the remote topics. A refusal is logged once per distinct error and does
        not stop the flow: the data keeps moving while an operator grants what is missing."""
        if not self.flow.sync_topic_acls or self.assignment is None or self.assignment.index:
            return
        mirrored = [t.source_topic for t in self.topics]
        try:
            await sync_topic_acls(self.source, self.target, mirrored, self.policy)
            self._acl_error = ""
        except (KafkaError, KafkaConnectionError) as exc:
            if str(exc) != self._acl_error:
                log.warning("flow %s: topic ACL sync failed: %s", self.flow.name, exc)
            self._acl_error = str(exc)

    def _link_configs(self) -> dict[str, str]:
        """What new remote topics are on a regionlink target (nothing on other clusters)."""
        if self.link_mode:
            return {MIRROR_SOURCE: self.flow.source}
        if self.config.clusters[self.flow.target].kind == "regionlink":
            return {REMOTE_SOURCE: self.flow.source}
        return {}

    async def set_paused(self, paused: bool) -> None:
        """A paused flow stops its copiers (after their current batch) and keeps its group."""
        self.paused = paused
        self.status.state = "paused" if paused else "running"
        await self._reconcile()

    async def _on_assignment(self, assignment: Assignment | None) -> None:
        self.assignment = assignment
        self.status.member_index = assignment.index if assignment else -1
        self.status.member_count = assignment.count if assignment else 0
        await self._reconcile()

    def _wanted(self) -> dict[TopicPartition, MirroredTopic]:
        return {} if self.paused else self._owned()

    def _owned(self) -> dict[TopicPartition, MirroredTopic]:
        if self.assignment is None:
            return {}
        return {
            (t.source_topic, p): t
            for t in self.topics
            for p in range(t.partitions)
            if self.assignment.owns(t.source_topic, p)
        }

    async def _reconcile(self) -> None:
        """Start copiers for newly owned partitions, stop those no longer owned."""
        async with self._reconcile_lock:
            wanted = self._wanted()
            for tp in [tp for tp in self._running if tp not in wanted]:
                await self._stop_copier(tp)
            for tp, topic in wanted.items():
                if tp not in self._running:
                    self._start_copier(tp, topic)

    def _start_copier(self, tp: TopicPartition, topic: MirroredTopic) -> None:
        assert self._task_group is not None
        status = self.status.partitions.get(tp)
        if status is None:
            status = self.status.partitions[tp] = PartitionStatus(tp[0], tp[1], topic.target_topic)
        settings = CopySettings(start_from=self.flow.start_from, latency=self.latency)
        fetcher = self.fetchers.for_partition(tp)
        copier: CopierBase
        if self.store is None:
            copier = LinkCopier(
                self.source,
                self.target,
                status,
                settings,
                fetcher,
                source_region=self.flow.source,
                link_epoch=self.flow.link_epoch,
            )
        else:
            copier = PartitionCopier(
                self.source, self.target, self.store, status, settings, fetcher, self.syncs
            )
        running = _Running(copier, anyio.CancelScope(), anyio.Event())
        self._running[tp] = running

        async def run() -> None:
            try:
                with running.scope:
                    await copier.run()
            finally:
                running.done.set()

        self._task_group.start_soon(run)

    async def _stop_copier(self, tp: TopicPartition) -> None:
        running = self._running.pop(tp)
        running.copier.stop()
        with anyio.move_on_after(REVOKE_GRACE_S):
            await running.done.wait()
        running.scope.cancel()
        await running.done.wait()
        if self.paused and self.assignment is not None and tp in self._owned():
            self.status.partitions[tp].pause()
        else:
            self.status.partitions.pop(tp, None)

    async def _watch_paused_lag(self) -> None:
        """While the flow is paused its copiers are stopped and report nothing, yet the lag
        they would see keeps growing: ask the source for its ends instead (the lag an
        operator watches during a drill's paused mirror, or before a forced failover)."""
        while True:
            await anyio.sleep(PAUSED_LAG_INTERVAL_S)
            paused = {
                tp: status
                for tp, status in self.status.partitions.items()
                if status.state == PartitionState.PAUSED
            }
            if not paused:
                continue
            try:
                ends = await end_offsets(self.source, list(paused))
            except (KafkaError, KafkaConnectionError) as exc:
                log.debug("flow %s: paused lag: %s", self.flow.name, exc)
                continue
            observed_ms = int(time.time() * 1000)
            for tp, end in ends.items():
                if tp in paused and paused[tp].state == PartitionState.PAUSED:
                    paused[tp].observe_paused(end, observed_ms)

    # --- flow-wide duties (member 0) -----------------------------------------------------

    def _all_partitions(self) -> list[TopicPartition]:
        """Every partition the flow mirrors (owned by any member, paused or not)."""
        return [(t.source_topic, p) for t in self.topics for p in range(t.partitions)]

    async def _flow_duties(self) -> None:
        checkpointer = Checkpointer(self.source, self.target, self.flow, self.store)
        heartbeats = InternalTopic(self.target, HEARTBEATS_TOPIC, COMPACTED)
        source_ends = SourceEnds(self.target, self.flow.source)
        next_checkpoint_s = next_heartbeat_s = 0.0
        while True:
            await anyio.sleep(0.2)
            if self.assignment is None or self.assignment.index != 0:
                continue
            now_s = time.monotonic()
            try:
                if now_s >= next_heartbeat_s:
                    next_heartbeat_s = now_s + self.flow.emit_heartbeats_interval_s
                    beat = Heartbeat(self.flow.source, self.flow.target, int(time.time() * 1000))
                    await heartbeats.write([beat.encode()])
                    await source_ends.observe(self.source, self._all_partitions())
                if now_s >= next_checkpoint_s and self.topics:
                    next_checkpoint_s = now_s + self.flow.emit_checkpoints_interval_s
                    result = await checkpointer.run_once(self.topics)
                    self.status.groups_checkpointed = len({t.group for t in result.translations})
                    self.status.groups_synced = result.groups_synced
                    self.status.last_checkpoint_ms = int(time.time() * 1000)
            except (KafkaError, KafkaConnectionError) as exc:
                log.warning("flow %s: checkpoint/heartbeat failed: %s", self.flow.name, exc)
                self.status.last_error = str(exc)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def worker_names(config: MirrorConfig, worker_id: str | None) -> tuple[str, str | None]:
    """(the worker's id, its static group instance id): a worker named by the option or the
    config is a static group member, one without a name goes by host and pid."""
    instance_id = worker_id or config.worker.worker_id
    return instance_id or default_worker_id(), instance_id


class Worker:
    """Every enabled flow of one config file, with pause/resume per flow. `latency`, if
    given, records each flow's end-to-end replication latency."""

    def __init__(
        self,
        config: MirrorConfig,
        worker_id: str | None = None,
        latency: Histogram | None = None,
    ) -> None:
        self.config = config
        # A named worker is a static group member: when it restarts (same name) it takes
        # its partitions back at once instead of waiting for its old session to expire.
        worker_id, instance_id = worker_names(config, worker_id)
        self.status = WorkerStatus(worker_id, int(time.time() * 1000))
        self.runners: dict[tuple[str, str], FlowRunner] = {}
        for flow in config.flows:
            if flow.enabled:
                flow_status = self.status.flows[flow.name] = FlowStatus(flow.source, flow.target)
                runner = FlowRunner(config, flow, flow_status, worker_id, instance_id, latency)
                self.runners[(flow.source, flow.target)] = runner

    async def run(self) -> None:
        """Run until cancelled; then give up partitions cleanly."""
        async with anyio.create_task_group() as tg:
            for runner in self.runners.values():
                tg.start_soon(runner.run)

    async def pause(self, source: str, target: str) -> str | None:
        return await self._set_paused(source, target, True)

    async def resume(self, source: str, target: str) -> str | None:
        return await self._set_paused(source, target, False)

    async def _set_paused(self, source: str, target: str, paused: bool) -> str | None:
        runner = self.runners.get((source, target))
        if runner is None:
            return f"this worker runs no flow {source}->{target}"
        await runner.set_paused(paused)
        return None
