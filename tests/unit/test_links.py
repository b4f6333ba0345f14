"""Who may write what when regions are linked (broker/links.py) and the topology epoch rules
(broker/topology.py), including the controller's decision on cluster configs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.kraft.controller import logic
from broker.kraft.metadata import CLUSTER_RESOURCE, MetadataImage, SetConfig
from broker.links import (
    MIRROR_SOURCE,
    REMOTE_SOURCE,
    check_topic_configs,
    client_write_refusal,
    exempt_from_standby_fence,
    link_write_refusal,
)
from broker.protocol.errors import ErrorCode
from broker.topology import EPOCH, PRIMARY, ROLE, Topology, checked_update, newest

STANDBY = Topology(3, "standby", "eu-west")
PRIMARY_AT_3 = Topology(3, "primary", "us-east")


@pytest.mark.parametrize(
    ("topic", "exempt"),
    [
        ("__consumer_offsets", True),
        ("heartbeats", True),
        ("us-east.checkpoints.internal", True),
        ("mm2-offset-syncs.eu-west.internal", True),
        ("connect-configs-internal", True),
        ("orders", False),
        ("heartbeats2", False),
        ("internal.orders", False),
        ("_single_underscore", False),
    ],
)
def test_internal_names_are_exempt_from_the_standby_fence(topic: str, exempt: bool) -> None:
    assert exempt_from_standby_fence(topic, {}) is exempt


def test_remote_topics_are_exempt_from_the_standby_fence() -> None:
    assert exempt_from_standby_fence("us-east.orders", {REMOTE_SOURCE: "us-east"})
    assert client_write_refusal("us-east.orders", {REMOTE_SOURCE: "us-east"}, STANDBY) is None


def test_standby_refuses_client_writes_with_the_spec_message() -> None:
    refusal = client_write_refusal("orders", {}, STANDBY)
    assert refusal is not None
    assert refusal.error_code == ErrorCode.policy_violation == 44
    assert refusal.message == (
        "this region is a standby at topology epoch 3 (primary: eu-west); "
        "write to the primary region"
    )


def test_mirror_topics_refuse_client_writes_in_any_role() -> None:
    for topology in (Topology(), PRIMARY_AT_3, STANDBY):
        refusal = client_write_refusal("x.internal", {MIRROR_SOURCE: "us-east"}, topology)
        assert refusal is not None and refusal.error_code == 44
    refusal = client_write_refusal("orders", {MIRROR_SOURCE: "us-east"}, PRIMARY_AT_3)
    assert refusal is not None
    assert refusal.message == (
        "orders is a read-only mirror of us-east (topology epoch 3); write to the primary region"
    )


@given(st.text(max_size=30), st.sampled_from(["", "primary"]))
def test_a_region_that_is_not_standby_refuses_nothing_but_mirrors(topic: str, role: str) -> None:
    assert client_write_refusal(topic, {}, Topology(7, role, "a")) is None


def test_link_writes_need_the_mirror_source_and_a_current_epoch() -> None:
    mirror = {MIRROR_SOURCE: "us-east"}
    assert link_write_refusal("orders", mirror, "us-east", 3, STANDBY) is None
    assert link_write_refusal("orders", mirror, "us-east", 4, STANDBY) is None  # newer: fine
    not_mirror = link_write_refusal("orders", {}, "us-east", 3, STANDBY)
    assert not_mirror is not None and not_mirror.error_code == 44
    wrong = link_write_refusal("orders", mirror, "eu-west", 3, STANDBY)
    assert wrong is not None and wrong.error_code == 44
    assert wrong.message == "orders mirrors us-east, not eu-west"
    stale = link_write_refusal("orders", mirror, "us-east", 2, STANDBY)
    assert stale is not None and stale.error_code == ErrorCode.stale_controller_epoch == 11
    assert stale.message == "topology epoch 2 is older than this region's 3"
    # The source is checked before the epoch, as the contract orders them.
    both = link_write_refusal("orders", mirror, "eu-west", 2, STANDBY)
    assert both is not None and both.error_code == 44


@pytest.mark.parametrize(
    "configs",
    [
        {MIRROR_SOURCE: ""},
        {REMOTE_SOURCE: "  "},
        {MIRROR_SOURCE: "a", REMOTE_SOURCE: "b"},
        {"regionlink.mirror.sauce": "a"},
    ],
)
def test_bad_link_topic_configs_are_refused(configs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        check_topic_configs(configs)


def test_topology_epoch_never_goes_back() -> None:
    current = {EPOCH: "4", ROLE: "primary"}
    with pytest.raises(ValueError, match="topology epoch 3 is older than this region's 4"):
        checked_update(current, {**current, EPOCH: "3"})
    with pytest.raises(ValueError, match="older"):
        checked_update(current, {ROLE: "standby"})  # deleting the epoch would lower it to 0
    assert checked_update(current, {**current, ROLE: "standby"}) == Topology(4, "standby", "")
    assert checked_update(current, {EPOCH: "5"}) == Topology(5, "", "")


@pytest.mark.parametrize(
    "configs", [{EPOCH: "x"}, {EPOCH: "-1"}, {ROLE: "leader"}, {"regionlink.region": "a"}]
)
def test_bad_cluster_configs_are_refused(configs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Topology.from_configs(configs)


def test_start_up_options_count_only_when_newer() -> None:
    persisted = Topology(4, "primary", "us-east")
    assert newest(persisted, None) == persisted
    assert newest(persisted, Topology(4, "standby", "eu-west")) == persisted
    assert newest(persisted, Topology(5, "standby", "eu-west")) == Topology(5, "standby", "eu-west")


def test_controller_decides_cluster_configs_on_the_committed_image() -> None:
    image = MetadataImage()
    records = logic.set_cluster_configs(image, {EPOCH: "4", ROLE: "standby", PRIMARY: "eu-west"})
    assert isinstance(records, list)
    assert sorted(records, key=lambda r: r.key) == [
        SetConfig(CLUSTER_RESOURCE, ROLE, "standby"),
        SetConfig(CLUSTER_RESOURCE, EPOCH, "4"),
        SetConfig(CLUSTER_RESOURCE, PRIMARY, "eu-west"),
    ]
    for record in records:
        image.apply(record)
    assert logic.set_cluster_configs(image, {EPOCH: "4", ROLE: "standby"}) == []  # idempotent
    assert logic.set_cluster_configs(image, {PRIMARY: None}) == [
        SetConfig(CLUSTER_RESOURCE, PRIMARY, None)
    ]
    stale = logic.set_cluster_configs(image, {EPOCH: "3"})
    assert stale == logic.Rejected(40, "topology epoch 3 is older than this region's 4")
    bad = logic.set_cluster_configs(image, {ROLE: "boss"})
    assert isinstance(bad, logic.Rejected) and bad.error_code == 40


def test_a_lapsed_lease_fences_like_a_standby_but_spares_internal_topics() -> None:
    from broker.lease import WriteLease, refusal_message

    lease = WriteLease(lease_s=2.0, last_reached_s=10.0)
    assert not lease.expired(12.0) and lease.expired(12.5)
    lease.reached(12.4)
    assert not lease.expired(14.0)
    message = refusal_message(lease, 15.0)
    primary = Topology(3, "primary", "us")
    refused = client_write_refusal("orders", {}, primary, message)
    assert refused is not None and refused.error_code == ErrorCode.policy_violation
    assert "write lease expired" in refused.message
    assert client_write_refusal("__consumer_offsets", {}, primary, message) is None
    assert client_write_refusal("orders", {}, primary, None) is None


def test_start_up_roles_supersede_a_region_without_one_at_the_same_epoch() -> None:
    from broker.topology import supersedes

    none, primary = Topology(0, "", ""), Topology(0, "primary", "us")
    assert supersedes(primary, none)
    assert not supersedes(Topology(0, "standby", "us"), primary)  # a role is kept
    assert supersedes(Topology(1, "standby", "eu"), primary)
    assert not supersedes(None, none)
