"""ACL sync's plan: which source topic ACLs a flow copies, under which remote names."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.security.acl import AclBinding, Operation, PatternType, Permission, ResourceType
from mirror.config import FlowConfig
from mirror.copy.acl_plan import plan_acl_sync, remote_acl
from mirror.copy.policy import ReplicationPolicy

ALLOW, DENY = Permission.ALLOW, Permission.DENY
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED


def policy(naming: Literal["prefix", "identity"] = "prefix") -> ReplicationPolicy:
    flow = FlowConfig(source="us-east", target="eu-west", naming=naming)
    return ReplicationPolicy.for_flow(flow, {"us-east", "eu-west"})


def topic(
    name: str,
    operation: Operation,
    permission: Permission = ALLOW,
    pattern: PatternType = LITERAL,
    principal: str = "User:app",
    host: str = "*",
) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, name, pattern, principal, host, operation, permission)


def test_read_side_is_copied_under_the_remote_name() -> None:
    source = [
        topic("orders", Operation.READ),
        topic("orders", Operation.DESCRIBE, host="10.0.0.7"),
        topic("orders", Operation.DESCRIBE_CONFIGS),
    ]
    assert plan_acl_sync(source, [], ["orders"], policy()) == sorted(
        [
            topic("us-east.orders", Operation.READ),
            topic("us-east.orders", Operation.DESCRIBE, host="10.0.0.7"),
            topic("us-east.orders", Operation.DESCRIBE_CONFIGS),
        ]
    )


def test_allow_all_becomes_read() -> None:
    assert remote_acl(topic("orders", Operation.ALL), policy()) == topic(
        "us-east.orders", Operation.READ
    )


@pytest.mark.parametrize(
    "operation",
    [
        Operation.WRITE,
        Operation.CREATE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.ALTER_CONFIGS,
        Operation.IDEMPOTENT_WRITE,
    ],
)
def test_allows_that_change_a_topic_are_not_copied(operation: Operation) -> None:
    assert remote_acl(topic("orders", operation), policy()) is None


@pytest.mark.parametrize("operation", [Operation.ALL, Operation.READ, Operation.WRITE])
def test_deny_is_copied_as_it_is(operation: Operation) -> None:
    denied = topic("orders", operation, DENY, principal="User:mallory")
    assert remote_acl(denied, policy()) == topic(
        "us-east.orders", operation, DENY, principal="User:mallory"
    )


def test_prefixed_maps_onto_the_remote_prefix_when_it_covers_a_mirrored_topic() -> None:
    grant = topic("ord", Operation.READ, pattern=PREFIXED)
    assert plan_acl_sync([grant], [], ["orders"], policy()) == [
        topic("us-east.ord", Operation.READ, pattern=PREFIXED)
    ]
    assert plan_acl_sync([grant], [], ["payments"], policy()) == []


def test_only_mirrored_topics_and_no_wildcard_or_other_resources() -> None:
    source = [
        topic("payments", Operation.READ),  # not mirrored by this flow
        topic("*", Operation.READ),  # the wildcard would name the target's own topics
        AclBinding(ResourceType.GROUP, "orders", LITERAL, "User:app", "*", Operation.READ, ALLOW),
    ]
    assert plan_acl_sync(source, [], ["orders"], policy()) == []


def test_identity_naming_keeps_names() -> None:
    assert remote_acl(topic("orders", Operation.READ), policy("identity")) == topic(
        "orders", Operation.READ
    )


def test_only_missing_bindings_are_planned() -> None:
    source = [topic("orders", Operation.READ), topic("orders", Operation.ALL)]  # both -> READ
    have = [topic("us-east.orders", Operation.READ)]
    assert plan_acl_sync(source, have, ["orders"], policy()) == []
    assert plan_acl_sync(source, [], ["orders"], policy()) == [
        topic("us-east.orders", Operation.READ)
    ]


OPERATIONS = [op for op in Operation if op not in (Operation.UNKNOWN, Operation.ANY)]


@given(
    st.lists(
        st.builds(
            topic,
            st.sampled_from(["orders", "ord", "o", "payments"]),
            st.sampled_from(OPERATIONS),
            st.sampled_from([ALLOW, DENY]),
            st.sampled_from([LITERAL, PREFIXED]),
            st.sampled_from(["User:app", "User:*"]),
        ),
        max_size=12,
    )
)
def test_a_plan_never_grants_a_change_and_reaching_it_leaves_nothing_to_do(
    source: list[AclBinding],
) -> None:
    planned = plan_acl_sync(source, [], ["orders"], policy())
    for binding in planned:
        assert binding.resource_name.startswith("us-east.")
        assert binding.permission is DENY or binding.operation in {
            Operation.READ,
            Operation.DESCRIBE,
            Operation.DESCRIBE_CONFIGS,
        }
    assert plan_acl_sync(source, planned, ["orders"], policy()) == []
