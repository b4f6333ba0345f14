"""ACLs in a three-broker region: changed through any broker, held by the controller quorum,
kept across a SIGKILL of the controller leader, and enforced by every broker once the
brokers restart with no super user — replication included, through an ACL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from tests.integration.region_harness import Region
from tests.integration.security_harness import create_acls

ANONYMOUS = "User:ANONYMOUS"
TIMEOUT_S = 20
EVERY_ACL = AclBindingFilter(
    ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
    AclOperation.ANY, AclPermissionType.ANY,
)  # fmt: skip


def _allow(kind: ResourceType, name: str, op: AclOperation) -> AclBinding:
    return AclBinding(
        kind, name, ResourcePatternType.LITERAL, ANONYMOUS, "*", op, AclPermissionType.ALLOW
    )


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    region = Region(tmp_path, broker_args=("--authorizer", "--super-users", ANONYMOUS))
    try:
        yield region.start()
    finally:
        region.kill_all()


def _acls_on(bootstrap: str) -> set[AclBinding]:
    """The ACLs as one broker describes them (admin requests go to the broker dialled)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        return set(admin.describe_acls(EVERY_ACL).result(5))
    except KafkaException:
        return set()


def _holds(bootstrap: str, expected: set[AclBinding]) -> Callable[[], bool]:
    return lambda: _acls_on(bootstrap) == expected


def _create(region: Region, bindings: list[AclBinding]) -> None:
    admin = region.admin()  # kept referenced until the futures complete
    create_acls(admin, bindings, TIMEOUT_S)


def _produce(bootstrap: str, topic: str) -> int:
    """One acks=all record; its delivery error code (0 = acknowledged by the ISR)."""
    errors: list[int] = []
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 15_000}
    )
    producer.produce(
        topic, b"v", on_delivery=lambda err, _m: errors.append(err.code() if err else 0)
    )
    producer.flush(TIMEOUT_S)
    return errors[0]


def test_acls_survive_a_controller_leader_sigkill_and_bind_every_broker(region: Region) -> None:
    region.create_topic("orders")
    region.create_topic("audit")
    first = [
        # What the brokers' own principal (anonymous here) needs to replicate.
        _allow(ResourceType.BROKER, "kafka-cluster", AclOperation.CLUSTER_ACTION),
        _allow(ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
        _allow(ResourceType.TOPIC, "orders", AclOperation.WRITE),
    ]
    _create(region, first)
    for broker in region.brokers.values():  # every broker's image holds them
        region.wait_until(_holds(broker.bootstrap, set(first)), "ACLs on every broker")

    leader = region.controller_leader()
    region.controllers[leader].kill()
    region.wait_until(lambda: region.controller_leader() != leader, "a new controller leader")
    later = _allow(ResourceType.TOPIC, "orders", AclOperation.READ)
    _create(region, [later])  # through the new leader
    everything = {*first, later}
    for broker in region.brokers.values():
        region.wait_until(_holds(broker.bootstrap, everything), "ACLs kept")

    # Every broker restarts with no super user: the quorum's ACLs alone decide, and
    # replication (acks=all over the ISR) goes on through the CLUSTER_ACTION ACL.
    region.controllers[leader].start()
    for broker in region.brokers.values():
        broker.stop()
        broker.extra_args = tuple(
            a for a in broker.extra_args if a not in ("--super-users", ANONYMOUS)
        )
        broker.start()
    region.wait_until(lambda: len(region.live_brokers()) == 3, "brokers back")
    assert _produce(region.bootstrap, "orders") == 0
    assert _produce(region.bootstrap, "audit") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    for broker in region.brokers.values():
        assert _acls_on(broker.bootstrap) == everything
