"""A single broker: owns topics, partitions, groups; decodes requests and dispatches them."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
from anyio.abc import TaskStatus

from broker import telemetry
from broker.clock import now_ms
from broker.config import BrokerConfig
from broker.handlers import HANDLERS
from broker.handlers.api_versions import unsupported_api_versions_response
from broker.log import LogConfig
from broker.offsets_topic import build_group_coordinator
from broker.partitions import Partition, PartitionManager
from broker.protocol.codec import decode_header, decode_request, encode_response_frame
from broker.protocol.errors import ProtocolError, UnsupportedVersion
from broker.protocol.framing import frame as framed
from broker.protocol.versions import ApiKey
from broker.server import ConnectionInfo, serve
from broker.topics import TopicInfo, TopicRegistry

log = logging.getLogger("regionlink.broker")

CLUSTER_ID_FILE = "cluster_id"


class Broker:
    """State shared by all connections of one broker process (single event loop, no locks)."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = _load_cluster_id(config)
        self.topics = TopicRegistry(config.data_dir / "topics.json")
        self.partitions = PartitionManager(config.data_dir)
        self.port = config.port
        for info in self.topics.all():
            self.open_topic(info)
        self.groups = build_group_coordinator(self)

    # -- topics ---------------------------------------------------------------------------
    def log_config(self, info: TopicInfo) -> LogConfig:
        return LogConfig.from_topic_configs(info.configs)

    def open_topic(self, info: TopicInfo) -> None:
        config = self.log_config(info)
        for index in range(info.partitions):
            self.partitions.open(info.name, index, config, now_ms=now_ms())

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: dict[str, str],
        *,
        internal: bool = False,
        validate_only: bool = False,
    ) -> TopicInfo | None:
        """Create and open a topic; raises TopicError or ValueError (bad config) first."""
        LogConfig.from_topic_configs(configs)  # reject bad configs before anything is written
        if validate_only:
            self.topics.check_create(name, partitions)
            return None
        info = self.topics.create(name, partitions, configs, internal=internal)
        self.open_topic(info)
        log.info("created topic %s with %d partitions", name, partitions)
        return info

    def delete_topic(self, name: str) -> None:
        self.topics.delete(name)
        self.partitions.delete_topic(name)
        self.groups.delete_offsets_for_topic(name)
        log.info("deleted topic %s", name)

    def add_partitions(self, name: str, count: int, *, validate_only: bool = False) -> None:
        if validate_only:
            self.topics.check_partition_count(name, count)
        else:
            self.open_topic(self.topics.set_partition_count(name, count))

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get(topic, index)

    # -- requests -------------------------------------------------------------------------
    async def dispatch(self, frame: bytes, info: ConnectionInfo) -> bytes | memoryview | None:
        """Handle one request frame; returns the framed response (size prefix included)."""
        try:
            request = decode_request(frame)
        except UnsupportedVersion as exc:
            header, _ = decode_header(frame)
            if exc.api_key == ApiKey.API_VERSIONS:
                return framed(unsupported_api_versions_response(header.correlation_id))
            raise
        handler = HANDLERS.get(request.header.api_key)
        if handler is None:
            raise ProtocolError(f"no handler for api_key {request.header.api_key}")
        body: Any = await handler(self, request, info)
        if body is None:
            return None  # acks=0 produce: no response
        header = request.header
        return encode_response_frame(
            header.api_key, header.api_version, header.correlation_id, body
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        telemetry.configure(self.config.trace_file)
        try:
            async with anyio.create_task_group() as tasks:
                self.port = await tasks.start(
                    serve,
                    self.config.host,
                    self.config.port,
                    self.dispatch,
                    self.config.max_frame_bytes,
                )
                tasks.start_soon(self._maintenance_loop)
                tasks.start_soon(self.groups.run)
                log.info(
                    "broker %d listening on %s:%d", self.config.node_id, self.config.host, self.port
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

    def close(self) -> None:
        self.partitions.close_all()
        log.info("broker %d closed its logs", self.config.node_id)


def _load_cluster_id(config: BrokerConfig) -> str:
    path = config.data_dir / CLUSTER_ID_FILE
    if not path.exists():
        path.write_text(uuid.uuid4().hex[:22])
    return path.read_text().strip()
