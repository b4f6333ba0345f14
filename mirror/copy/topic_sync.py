"""Keep the flow's remote topics in step with the source: existence, partitions, configs."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from broker.client import KafkaClient, KafkaError
from broker.client.admin import (
    NewTopic,
    alter_topic_configs,
    create_partitions,
    create_topics,
    describe_topic_configs,
)
from broker.links import LINK_TOPIC_CONFIGS
from broker.protocol.errors import ErrorCode
from mirror.config import FlowConfig
from mirror.copy.policy import ReplicationPolicy, should_mirror_topic

log = logging.getLogger(__name__)

# As MM2's DefaultConfigPropertyFilter: settings that belong to the target cluster.
NOT_SYNCED_CONFIGS = frozenset(
    {
        "follower.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        "message.timestamp.difference.max.ms",
        "message.timestamp.type",
        "unclean.leader.election.enable",
        "min.insync.replicas",
        *LINK_TOPIC_CONFIGS,  # what a topic is in its own region, not to be copied
    }
)


@dataclass(frozen=True)
class MirroredTopic:
    source_topic: str
    target_topic: str
    partitions: int


async def discover(
    source: KafkaClient, flow: FlowConfig, policy: ReplicationPolicy
) -> list[MirroredTopic]:
    """Source topics this flow mirrors, with their partition counts."""
    view = await source.refresh_metadata()
    return [
        MirroredTopic(name, policy.remote_topic(name), len(info.partitions))
        for name, info in sorted(view.topics.items())
        if info.error == 0 and info.partitions and should_mirror_topic(name, flow, policy)
    ]


def _synced(configs: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in configs.items() if k not in NOT_SYNCED_CONFIGS}


async def ensure_remote_topics(
    source: KafkaClient,
    target: KafkaClient,
    flow: FlowConfig,
    topics: list[MirroredTopic],
    *,
    link_configs: Mapping[str, str] | None = None,
) -> None:
    """Create missing remote topics, grow partition counts, and copy topic configs.

    `link_configs` are added to new topics on a regionlink target: they make a topic a
    mirror topic (read-only for clients) or mark it a remote topic (see broker.links).
    """
    if not topics:
        return
    names = [t.target_topic for t in topics]
    await target.refresh_metadata(names)
    existing = {n: target.view.topics[n] for n in names if n in target.view.topics}
    existing = {n: info for n, info in existing.items() if info.error == 0}
    source_configs: dict[str, dict[str, str]] = {}
    missing = [t for t in topics if t.target_topic not in existing]
    if flow.sync_topic_configs or missing:
        source_configs = await describe_topic_configs(source, [t.source_topic for t in topics])
    if missing:
        rf = flow.replication_factor or -1
        marker = dict(link_configs or {})
        new = [
            NewTopic(
                t.target_topic,
                t.partitions,
                rf,
                _synced(source_configs.get(t.source_topic, {})) | marker,
            )
            for t in missing
        ]
        for name, (error, message) in (await create_topics(target, new)).items():
            if error not in (0, ErrorCode.topic_already_exists):
                raise KafkaError(error, f"creating remote topic {name}", message)
            log.info("created remote topic %s", name)
    grow = {
        t.target_topic: t.partitions
        for t in topics
        if t.target_topic in existing and len(existing[t.target_topic].partitions) < t.partitions
    }
    if grow:
        for name, (error, message) in (await create_partitions(target, grow)).items():
            if error:
                raise KafkaError(error, f"adding partitions to {name}", message)
            log.info("grew remote topic %s to %d partitions", name, grow[name])
    if flow.sync_topic_configs and existing:
        await _sync_configs(target, topics, existing, source_configs)


async def _sync_configs(
    target: KafkaClient,
    topics: list[MirroredTopic],
    existing: Collection[str],
    source_configs: dict[str, dict[str, str]],
) -> None:
    present = [t for t in topics if t.target_topic in existing]
    target_configs = await describe_topic_configs(target, [t.target_topic for t in present])
    changes: dict[str, dict[str, str]] = {}
    for t in present:
        wanted = _synced(source_configs.get(t.source_topic, {}))
        have = target_configs.get(t.target_topic, {})
        diff = {k: v for k, v in wanted.items() if have.get(k) != v}
        if diff:
            changes[t.target_topic] = diff
    if changes:
        await alter_topic_configs(target, changes)
        log.info("synced topic configs: %s", changes)
