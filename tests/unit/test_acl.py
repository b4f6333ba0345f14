"""The authorizer's decisions, after Kafka's StandardAuthorizer, and the filters' selections."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.security.acl import (
    AclBinding,
    AclError,
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
    Request,
    ResourceType,
)

TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY


def acl(
    name: str,
    op: Operation,
    permission: Permission = ALLOW,
    principal: str = "User:alice",
    pattern: PatternType = LITERAL,
    host: str = "*",
    kind: ResourceType = TOPIC,
) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, host, op, permission).validate()


def may(authorizer: Authorizer, op: Operation, name: str, principal: str = "User:alice",
        host: str = "10.0.0.1", kind: ResourceType = TOPIC) -> bool:  # fmt: skip
    return authorizer.authorize(Request(principal, host, op, kind, name))


def test_allow_deny_and_what_read_implies() -> None:
    authorizer = Authorizer([acl("orders", Operation.READ), acl("orders", Operation.WRITE, DENY)])
    assert may(authorizer, Operation.READ, "orders")
    assert may(authorizer, Operation.DESCRIBE, "orders")  # READ implies DESCRIBE
    assert not may(authorizer, Operation.WRITE, "orders")  # the deny
    assert not may(authorizer, Operation.DELETE, "orders")  # nothing allows it
    assert not may(authorizer, Operation.READ, "orders", principal="User:bob")


def test_deny_wins_even_over_all_and_wildcards() -> None:
    authorizer = Authorizer(
        [
            acl("*", Operation.ALL, principal="User:*"),
            acl("pay", Operation.READ, DENY, pattern=PREFIXED, host="10.0.0.9"),
        ]
    )
    assert may(authorizer, Operation.READ, "payments")
    assert not may(authorizer, Operation.READ, "payments", host="10.0.0.9")
    assert may(authorizer, Operation.WRITE, "payments", host="10.0.0.9")


def test_no_acl_for_the_resource_follows_the_setting_and_super_users_pass() -> None:
    bindings = [acl("orders", Operation.READ)]
    strict = Authorizer(bindings, super_users=["User:admin"])
    lenient = Authorizer(bindings, allow_if_no_acl=True)
    assert not may(strict, Operation.READ, "other")
    assert may(lenient, Operation.READ, "other")
    assert not may(lenient, Operation.READ, "orders", principal="User:bob")  # named: no fallback
    assert may(strict, Operation.DELETE, "orders", principal="User:admin")


def test_describe_configs_is_implied_by_alter_configs_only() -> None:
    authorizer = Authorizer([acl("orders", Operation.ALTER_CONFIGS)])
    assert may(authorizer, Operation.DESCRIBE_CONFIGS, "orders")
    assert not may(authorizer, Operation.DESCRIBE, "orders")


def test_groups_and_topics_are_separate_resources() -> None:
    authorizer = Authorizer([acl("billing", Operation.READ, kind=GROUP)])
    assert may(authorizer, Operation.READ, "billing", kind=GROUP)
    assert not may(authorizer, Operation.READ, "billing", kind=TOPIC)


@pytest.mark.parametrize(
    "binding",
    [
        AclBinding(ResourceType.ANY, "x", LITERAL, "User:a", "*", Operation.READ, ALLOW),
        AclBinding(TOPIC, "x", PatternType.MATCH, "User:a", "*", Operation.READ, ALLOW),
        AclBinding(TOPIC, "x", LITERAL, "User:a", "*", Operation.ANY, ALLOW),
        AclBinding(TOPIC, "x", LITERAL, "User:a", "*", Operation.READ, Permission.ANY),
        AclBinding(TOPIC, "", LITERAL, "User:a", "*", Operation.READ, ALLOW),
        AclBinding(TOPIC, "x", LITERAL, "alice", "*", Operation.READ, ALLOW),
        AclBinding(ResourceType.CLUSTER, "x", LITERAL, "User:a", "*", Operation.ALTER, ALLOW),
    ],
)
def test_bindings_kafka_would_refuse(binding: AclBinding) -> None:
    with pytest.raises(AclError):
        binding.validate()


def test_filters_select_as_kafka_does() -> None:
    bindings = [
        acl("orders", Operation.READ),
        acl("ord", Operation.WRITE, pattern=PREFIXED),
        acl("*", Operation.DESCRIBE, principal="User:bob"),
        acl("orders", Operation.READ, kind=GROUP),
    ]

    def chosen(selection: AclFilter) -> list[AclBinding]:
        return [b for b in bindings if selection.matches(b)]

    assert chosen(AclFilter()) == bindings
    assert chosen(AclFilter(TOPIC, "orders")) == [bindings[0]]  # ANY pattern: exact name
    assert chosen(AclFilter(TOPIC, "orders", PatternType.MATCH)) == bindings[:3]
    assert chosen(AclFilter(pattern_type=PREFIXED)) == [bindings[1]]
    assert chosen(AclFilter(principal="User:bob")) == [bindings[2]]
    assert chosen(AclFilter(operation=Operation.READ, resource_type=GROUP)) == [bindings[3]]


names = st.sampled_from(["orders", "ord", "payments", "*"])
ops = st.sampled_from([o for o in Operation if o not in (Operation.UNKNOWN, Operation.ANY)])
bindings_strategy = st.lists(
    st.builds(
        AclBinding,
        st.just(TOPIC),
        names,
        st.sampled_from([LITERAL, PREFIXED]),
        st.sampled_from(["User:alice", "User:bob", "User:*"]),
        st.sampled_from(["*", "10.0.0.1"]),
        ops,
        st.sampled_from([ALLOW, DENY]),
    ),
    max_size=6,
)


@given(bindings_strategy, ops, st.sampled_from(["orders", "payments", "x"]))
def test_adding_a_deny_never_grants_and_adding_an_allow_never_refuses(
    bindings: list[AclBinding], op: Operation, name: str
) -> None:
    before = may(Authorizer(bindings), op, name)
    deny = AclBinding(TOPIC, name, LITERAL, "User:alice", "*", op, DENY)
    allow = AclBinding(TOPIC, name, LITERAL, "User:alice", "*", op, ALLOW)
    assert not may(Authorizer([*bindings, deny]), op, name)
    assert may(Authorizer([*bindings, allow]), op, name) >= before


def test_authorize_any_as_kafkas_authorize_by_resource_type() -> None:
    """InitProducerId's "WRITE on any topic": an ALLOW counts unless a DENY covers all it names."""
    write = Operation.WRITE

    def any_write(*bindings: AclBinding, super_users: tuple[str, ...] = ()) -> bool:
        authorizer = Authorizer(bindings, super_users)
        return authorizer.authorize_any("User:alice", "10.0.0.1", write, TOPIC)

    assert not any_write()
    assert any_write(acl("orders", write))
    assert any_write(acl("ord", Operation.ALL, pattern=PREFIXED))
    assert any_write(acl("*", write, principal="User:*"))
    assert not any_write(acl("orders", Operation.READ))  # READ does not count
    assert not any_write(acl("orders", write, principal="User:bob"))
    assert not any_write(acl("orders", write), acl("orders", write, DENY))
    assert not any_write(acl("orders", write), acl("or", write, DENY, pattern=PREFIXED))
    assert not any_write(
        acl("ord", write, pattern=PREFIXED), acl("o", write, DENY, pattern=PREFIXED)
    )
    assert any_write(acl("ord", write, pattern=PREFIXED), acl("orders", write, DENY))
    assert not any_write(acl("orders", write), acl("*", Operation.ALL, DENY))
    assert any_write(acl("orders", write, DENY), super_users=("User:alice",))
    assert Authorizer([], allow_if_no_acl=True).authorize_any("User:a", "h", write, TOPIC)
