"""Topic registry of a single-node region: names, partition counts, config overrides, and
the region's cluster-level configs (its topology epoch and role, broker/topology.py).

Persisted as one JSON file replaced atomically, so a crash leaves either the old or
the new registry. The KRaft metadata image takes this role in multi-broker regions.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from broker.protocol.errors import ErrorCode
from broker.topology import Topology

_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class TopicError(Exception):
    """A topic operation was refused; `error_code` is the Kafka error to answer with."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass
class TopicInfo:
    name: str
    topic_id: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    internal: bool = False


def validate_topic_name(name: str) -> None:
    if name in (".", "..") or not _LEGAL_NAME.match(name):
        raise TopicError(
            ErrorCode.invalid_topic_exception,
            f"invalid topic name {name!r}: use 1-249 of [a-zA-Z0-9._-]",
        )


class TopicRegistry:
    """Topics by name; persisted at `path`, or (path None) a view kept by the metadata log."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._topics: dict[str, TopicInfo] = {}
        self.next_producer_id = 1000
        self._cluster_configs: dict[str, str] = {}
        self.topology = Topology()
        if path is not None and path.exists():
            state = json.loads(path.read_text())
            self._topics = {t["name"]: TopicInfo(**t) for t in state["topics"]}
            self.next_producer_id = state.get("next_producer_id", 1000)
            self._cluster_configs = state.get("cluster_configs", {})
            self.topology = Topology.from_configs(self._cluster_configs)

    def save(self) -> None:
        if self._path is None:
            return
        state = {
            "topics": [asdict(t) for t in self._topics.values()],
            "next_producer_id": self.next_producer_id,
            "cluster_configs": self._cluster_configs,
        }
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump(state, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path)

    def __contains__(self, name: str) -> bool:
        return name in self._topics

    def get(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def all(self) -> list[TopicInfo]:
        return list(self._topics.values())

    def put(self, info: TopicInfo) -> None:
        """Set a topic as the controller's metadata describes it (multi-broker regions)."""
        self._topics[info.name] = info

    def remove(self, name: str) -> None:
        self._topics.pop(name, None)

    def check_create(self, name: str, partitions: int) -> None:
        """Raise TopicError unless `create` would succeed (CreateTopics validate_only uses it)."""
        validate_topic_name(name)
        if name in self._topics:
            raise TopicError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
        if partitions < 1:
            raise TopicError(ErrorCode.invalid_partitions, f"invalid partition count {partitions}")

    def create(
        self, name: str, partitions: int, configs: dict[str, str], *, internal: bool = False
    ) -> TopicInfo:
        self.check_create(name, partitions)
        info = TopicInfo(name, str(uuid.uuid4()), partitions, dict(configs), internal)
        self._topics[name] = info
        self.save()
        return info

    def delete(self, name: str) -> TopicInfo:
        info = self._topics.pop(name, None)
        if info is None:
            raise TopicError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        self.save()
        return info

    def check_partition_count(self, name: str, count: int) -> TopicInfo:
        """Raise TopicError unless the topic exists and `count` grows it."""
        info = self._require(name)
        if count <= info.partitions:
            raise TopicError(
                ErrorCode.invalid_partitions,
                f"topic {name!r} has {info.partitions} partitions, asked {count}",
            )
        return info

    def set_partition_count(self, name: str, count: int) -> TopicInfo:
        info = self.check_partition_count(name, count)
        info.partitions = count
        self.save()
        return info

    def set_configs(self, name: str, configs: dict[str, str]) -> None:
        self._require(name).configs = dict(configs)
        self.save()

    @property
    def cluster_configs(self) -> dict[str, str]:
        """The cluster-level configs set on this region (defaults not included)."""
        return dict(self._cluster_configs)

    def set_cluster_configs(self, configs: dict[str, str]) -> None:
        """Replace the cluster-level configs (already checked: broker.topology.checked_update)."""
        topology = Topology.from_configs(configs)
        self._cluster_configs = dict(configs)
        self.topology = topology
        self.save()

    def allocate_producer_id(self) -> int:
        producer_id = self.next_producer_id
        self.next_producer_id += 1
        self.save()
        return producer_id

    def _require(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise TopicError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        return info
