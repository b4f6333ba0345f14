"""Who may write a topic when regions are linked: the rules, once, as pure functions.

A *mirror topic* (topic config `regionlink.mirror.source = <alias>`) holds a copy of another
region's topic at the same offsets; only that region's link appends to it (LinkAppend), so a
client's Produce is refused. A *standby* region (topology role "standby") refuses client
writes to every topic a failover would move, but not to the topics that keep the region and
its links running: internal ones, and remote topics the mirror writes with plain Produce
(`regionlink.remote.source`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.log.config import LINK_CONFIG_PREFIX
from broker.protocol.errors import ErrorCode
from broker.topology import Topology, stale_epoch_message

MIRROR_SOURCE = "regionlink.mirror.source"
REMOTE_SOURCE = "regionlink.remote.source"
LINK_TOPIC_CONFIGS = frozenset({MIRROR_SOURCE, REMOTE_SOURCE})
HEARTBEATS_TOPIC = "heartbeats"


@dataclass(frozen=True, slots=True)
class Refusal:
    error_code: int
    message: str


def check_topic_configs(configs: Mapping[str, str]) -> None:
    """ValueError unless the link configs among `configs` make sense (the log's configs are
    LogConfig's to check)."""
    for key in configs:
        if key.startswith(LINK_CONFIG_PREFIX) and key not in LINK_TOPIC_CONFIGS:
            raise ValueError(f"unknown topic config {key!r}")
    for key in LINK_TOPIC_CONFIGS & set(configs):
        if not configs[key].strip():
            raise ValueError(f"{key} must name a region")
    if MIRROR_SOURCE in configs and REMOTE_SOURCE in configs:
        raise ValueError(f"a topic cannot have both {MIRROR_SOURCE} and {REMOTE_SOURCE}")


def is_internal(topic: str) -> bool:
    """A topic of the regions' and links' own bookkeeping (group offsets, heartbeats,
    checkpoints, offset syncs, source ends), not an application's."""
    return (
        topic.startswith("__")
        or topic.endswith((".internal", "-internal"))
        or topic == HEARTBEATS_TOPIC
    )


def exempt_from_standby_fence(topic: str, configs: Mapping[str, str]) -> bool:
    """Internal topics and remote topics stay writable on a standby: the links and groups
    need them."""
    return is_internal(topic) or REMOTE_SOURCE in configs


def client_write_refusal(
    topic: str, configs: Mapping[str, str], topology: Topology, lease_lapsed: str | None = None
) -> Refusal | None:
    """Why a client's Produce to `topic` is refused, or None. `lease_lapsed`: why this
    primary's write lease lapsed (broker/lease.py), which fences it like a standby."""
    source = configs.get(MIRROR_SOURCE)
    if source:
        return Refusal(
            ErrorCode.policy_violation,
            f"{topic} is a read-only mirror of {source} (topology epoch {topology.epoch}); "
            "write to the primary region",
        )
    if lease_lapsed and not exempt_from_standby_fence(topic, configs):
        return Refusal(ErrorCode.policy_violation, lease_lapsed)
    if topology.is_standby and not exempt_from_standby_fence(topic, configs):
        return Refusal(
            ErrorCode.policy_violation,
            f"this region is a standby at topology epoch {topology.epoch} "
            f"(primary: {topology.primary}); write to the primary region",
        )
    return None


def client_commit_refusal(
    topic: str, configs: Mapping[str, str], topology: Topology
) -> Refusal | None:
    """Why a group's offset commit for `topic` is refused, or None: on a region that is not
    the primary, for its own topics. A switchover copies group offsets to the new primary
    once the old one is fenced; a commit the old one took after that would be left behind,
    and the group would resume before it (re-reading). Consumers of mirror topics (read
    replicas of a standby) and the links' own commits are not affected."""
    if not topology.is_standby or MIRROR_SOURCE in configs:
        return None
    if exempt_from_standby_fence(topic, configs):
        return None
    return Refusal(
        ErrorCode.policy_violation,
        f"this region is a standby at topology epoch {topology.epoch} "
        f"(primary: {topology.primary}); commit offsets in the primary region",
    )


def link_write_refusal(
    topic: str,
    configs: Mapping[str, str],
    source_region: str,
    link_epoch: int,
    topology: Topology,
) -> Refusal | None:
    """Why a link write (LinkAppend, LinkTruncate) from `source_region` at topology epoch
    `link_epoch` is refused, or None: only the source region's current link writes a mirror."""
    source = configs.get(MIRROR_SOURCE)
    if not source:
        return Refusal(ErrorCode.policy_violation, f"{topic} is not a mirror topic")
    if source != source_region:
        return Refusal(ErrorCode.policy_violation, f"{topic} mirrors {source}, not {source_region}")
    if link_epoch < topology.epoch:
        return Refusal(
            ErrorCode.stale_controller_epoch, stale_epoch_message(link_epoch, topology.epoch)
        )
    return None
