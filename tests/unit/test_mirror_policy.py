"""Replication policy: remote topic names, origin chains, loop prevention and filters."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.config import FlowConfig
from mirror.copy.policy import (
    GroupFilter,
    ReplicationPolicy,
    TopicFilter,
    group_filter_for,
    is_internal_topic,
    should_mirror_group,
    should_mirror_topic,
    topic_filter_for,
    would_cycle,
)

ALIASES = frozenset({"us", "eu", "ap", "us-east"})


def policy(
    source: str = "us", naming: Literal["prefix", "identity"] = "prefix", separator: str = "."
) -> ReplicationPolicy:
    flow = FlowConfig(source=source, target="eu", naming=naming, separator=separator)
    return ReplicationPolicy.for_flow(flow, ALIASES)


def test_prefix_naming() -> None:
    us = policy()
    assert us.remote_topic("orders") == "us.orders"
    assert us.is_remote_of("us.orders") == "orders"
    assert us.is_remote_of("us.eu.orders") == "eu.orders"
    assert us.is_remote_of("eu.orders") is None
    assert us.is_remote_of("us.") is None
    assert us.is_remote_of("usorders") is None


def test_identity_naming() -> None:
    us = policy(naming="identity")
    assert us.remote_topic("orders") == "orders"
    assert us.is_remote_of("orders") == "orders"


def test_custom_separator_has_no_regex_meaning() -> None:
    us = policy(separator="_")
    assert us.remote_topic("orders") == "us_orders"
    assert us.is_remote_of("us_orders") == "orders"
    assert us.origin_chain("eu_us_orders") == ["eu", "us"]
    assert us.origin_chain("eu.orders") == []


def test_origin_chain() -> None:
    us = policy()
    assert us.origin_chain("orders") == []
    assert us.origin_chain("eu.orders") == ["eu"]
    assert us.origin_chain("us.eu.orders") == ["us", "eu"]
    assert us.origin_chain("orders.v1") == []
    assert us.origin_chain("us-east.orders") == ["us-east"]
    assert us.origin_chain("eu.") == []
    assert us.original_topic("ap.eu.orders.v1") == "orders.v1"


@pytest.mark.parametrize(
    ("topic", "target", "cycle"),
    [
        ("eu.orders", "eu", True),
        ("us.eu.orders", "eu", True),
        ("orders.v1", "eu", False),
        ("orders", "eu", False),
        ("ap.orders", "eu", False),
        ("eu.heartbeats", "eu", True),
    ],
)
def test_would_cycle(topic: str, target: str, cycle: bool) -> None:
    assert would_cycle(topic, target, policy()) is cycle


def test_filters_full_match_and_exclude_wins() -> None:
    topics = TopicFilter(["orders-.*", "payments"], ["orders-tmp.*"])
    assert topics.matches("orders-eu") and topics.matches("payments")
    assert not topics.matches("payments-v2")  # full match, not search
    assert not topics.matches("my-orders-eu")
    assert not topics.matches("orders-tmp1")
    groups = GroupFilter([".*"], ["console-consumer-.*"])
    assert groups.matches("billing") and not groups.matches("console-consumer-42")


def test_filters_for_flow_use_defaults_and_are_cached() -> None:
    flow = FlowConfig(source="us", target="eu")
    assert topic_filter_for(flow) is topic_filter_for(FlowConfig(source="us", target="eu"))
    assert not topic_filter_for(flow).matches("__consumer_offsets")
    assert not topic_filter_for(flow).matches("orders.replica")
    assert not group_filter_for(flow).matches("regionlink-mirror")
    assert should_mirror_group("billing", flow)
    assert not should_mirror_group("connect-sink", flow)


def test_should_mirror_topic() -> None:
    flow = FlowConfig(source="us", target="eu", topics=["orders.*"], topics_exclude=["orders-x"])
    us = ReplicationPolicy.for_flow(flow, ALIASES)
    assert should_mirror_topic("orders", flow, us)
    assert should_mirror_topic("orders.v1", flow, us)
    assert not should_mirror_topic("orders-x", flow, us)
    assert not should_mirror_topic("payments", flow, us)
    # Came from eu, or through it: sending it there again would loop.
    assert not should_mirror_topic("eu.orders", FlowConfig(source="us", target="eu"), us)
    assert not should_mirror_topic("ap.eu.orders", FlowConfig(source="us", target="eu"), us)
    assert should_mirror_topic("ap.orders", FlowConfig(source="us", target="eu"), us)
    # Internal topics never move, whatever the filter says.
    everything = FlowConfig(source="us", target="eu", topics_exclude=[])
    for topic in ["__consumer_offsets", "mm2-offsets.eu", "eu.checkpoints.internal", "x-internal"]:
        assert is_internal_topic(topic)
        assert not should_mirror_topic(topic, everything, us)


def test_heartbeats_always_flow_unless_they_would_loop() -> None:
    flow = FlowConfig(source="us", target="eu", topics=["orders.*"])
    us = ReplicationPolicy.for_flow(flow, ALIASES)
    assert should_mirror_topic("heartbeats", flow, us)
    assert should_mirror_topic("ap.heartbeats", flow, us)
    assert not should_mirror_topic("eu.heartbeats", flow, us)
    assert not should_mirror_topic("heartbeats-old", flow, us)


aliases = st.sampled_from(sorted(ALIASES))
topics = st.from_regex(r"[a-z][a-z0-9_-]{0,15}(\.v[0-9])?", fullmatch=True).filter(
    lambda topic: topic.split(".")[0] not in ALIASES
)


@given(aliases, topics)
def test_remote_topic_inverts(source: str, topic: str) -> None:
    prefix = policy(source)
    assert prefix.is_remote_of(prefix.remote_topic(topic)) == topic
    identity = policy(source, naming="identity")
    assert identity.is_remote_of(identity.remote_topic(topic)) == topic


@given(st.lists(aliases, max_size=4), topics)
def test_origin_chain_reads_back_the_hops(hops: list[str], topic: str) -> None:
    """A topic mirrored through hops[-1], ..., hops[0] carries them all, outermost first."""
    name = topic
    for alias in reversed(hops):
        name = policy(alias).remote_topic(name)
    assert policy().origin_chain(name) == hops
    assert policy().original_topic(name) == topic
    for alias in ALIASES:
        assert would_cycle(name, alias, policy()) is (alias in hops)
