"""Which topics and groups a flow mirrors, what remote topics are called, and loop prevention.

Follows MirrorMaker 2's DefaultReplicationPolicy: with ``prefix`` naming, topic ``orders``
from cluster ``us`` becomes ``us.orders`` on the target, so a topic's leading
``alias<sep>`` segments record the clusters it came through and a flow can refuse to send
a topic back to a cluster it already passed through. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from broker.links import HEARTBEATS_TOPIC
from mirror.config import FlowConfig

# MM2's liveness topic: always mirrored (subject to loops), so every hop can be traced.


@dataclass(frozen=True)
class ReplicationPolicy:
    """Topic naming for one flow, seen from its source cluster."""

    source_alias: str
    naming: Literal["prefix", "identity"]
    separator: str
    known_aliases: frozenset[str]
    _longest_first: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Longest alias first, so "us-east" wins over "us" when both are known.
        ordered = tuple(sorted(self.known_aliases, key=len, reverse=True))
        object.__setattr__(self, "_longest_first", ordered)

    @classmethod
    def for_flow(cls, flow: FlowConfig, known_aliases: Iterable[str]) -> ReplicationPolicy:
        return cls(flow.source, flow.naming, flow.separator, frozenset(known_aliases))

    def remote_topic(self, topic: str) -> str:
        """The name ``topic`` gets on the target cluster."""
        if self.naming == "identity":
            return topic
        return f"{self.source_alias}{self.separator}{topic}"

    def is_remote_of(self, target_topic: str) -> str | None:
        """The source topic that `remote_topic` maps to ``target_topic``, if any."""
        if self.naming == "identity":
            return target_topic
        prefix = f"{self.source_alias}{self.separator}"
        if target_topic.startswith(prefix) and len(target_topic) > len(prefix):
            return target_topic[len(prefix) :]
        return None

    def origin_chain(self, topic: str) -> list[str]:
        """Aliases from ``topic``'s leading ``alias<sep>`` segments, outermost first.

        ``us.eu.orders`` -> ``["us", "eu"]``; ``orders.v1`` -> ``[]`` unless ``orders`` is a
        cluster alias. Only known aliases count, so dotted topic names are not misread.
        """
        chain: list[str] = []
        rest = topic
        while True:
            alias = self._leading_alias(rest)
            if alias is None:
                return chain
            chain.append(alias)
            rest = rest[len(alias) + len(self.separator) :]

    def original_topic(self, topic: str) -> str:
        """``topic`` without its origin prefixes: ``us.eu.orders`` -> ``orders``."""
        rest = topic
        while (alias := self._leading_alias(rest)) is not None:
            rest = rest[len(alias) + len(self.separator) :]
        return rest

    def _leading_alias(self, topic: str) -> str | None:
        for alias in self._longest_first:
            prefix = alias + self.separator
            if topic.startswith(prefix) and len(topic) > len(prefix):
                return alias
        return None


def would_cycle(topic: str, target_alias: str, policy: ReplicationPolicy) -> bool:
    """True if ``topic`` originated at, or already passed through, ``target_alias``."""
    return target_alias in policy.origin_chain(topic)


def is_heartbeats_topic(topic: str, policy: ReplicationPolicy) -> bool:
    """``heartbeats`` or a mirrored copy of it such as ``eu.heartbeats``."""
    return policy.original_topic(topic) == HEARTBEATS_TOPIC


def is_internal_topic(topic: str) -> bool:
    """Kafka's, Connect's and mirrors' own bookkeeping topics: never mirrored."""
    return topic.startswith(("__", ".", "mm2-")) or topic.endswith((".internal", "-internal"))


class _NameFilter:
    """Include/exclude full-match regexes, compiled once; exclude wins."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str]) -> None:
        self.include = tuple(re.compile(pattern) for pattern in include)
        self.exclude = tuple(re.compile(pattern) for pattern in exclude)

    def matches(self, name: str) -> bool:
        if any(pattern.fullmatch(name) for pattern in self.exclude):
            return False
        return any(pattern.fullmatch(name) for pattern in self.include)


class TopicFilter(_NameFilter):
    """A flow's ``topics`` / ``topics_exclude``."""


class GroupFilter(_NameFilter):
    """A flow's ``groups`` / ``groups_exclude``."""


@lru_cache(maxsize=256)
def _topic_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> TopicFilter:
    return TopicFilter(include, exclude)


@lru_cache(maxsize=256)
def _group_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> GroupFilter:
    return GroupFilter(include, exclude)


def topic_filter_for(flow: FlowConfig) -> TopicFilter:
    return _topic_filter(tuple(flow.topics), tuple(flow.topics_exclude))


def group_filter_for(flow: FlowConfig) -> GroupFilter:
    return _group_filter(tuple(flow.groups), tuple(flow.groups_exclude))


def should_mirror_topic(topic: str, flow: FlowConfig, policy: ReplicationPolicy) -> bool:
    """MM2's rule: (matches the filter or is heartbeats) and not internal and no loop."""
    if is_internal_topic(topic) or would_cycle(topic, flow.target, policy):
        return False
    return is_heartbeats_topic(topic, policy) or topic_filter_for(flow).matches(topic)


def should_mirror_group(group: str, flow: FlowConfig) -> bool:
    return group_filter_for(flow).matches(group)
