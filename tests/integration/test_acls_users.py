"""ACLs for authenticated users: alice and bob log in with SCRAM over SASL_SSL and the ACLs
an admin (a super user, by its client certificate) set decide what each may do — with
confluent-kafka and kcat. Kafka's refusals: no WRITE, no produce (TOPIC_AUTHORIZATION_FAILED);
no READ on the topic, no consume; no READ on the group, no commit (GROUP_AUTHORIZATION_FAILED);
no DESCRIBE, the topic is not seen; ListGroups shows only what may be described.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.integration.conftest import BrokerProcess, free_port
from tests.integration.security_harness import Pki, consume_in_group, create_acls, create_users

pytestmark = pytest.mark.integration

ADMIN = "User:CN=admin,O=regionlink"  # the admin's client certificate
USERS = {
    "alice": ("SCRAM-SHA-512", "alice-Acl-512", 4096),
    "bob": ("SCRAM-SHA-256", "bob-Acl-256", 4096),
}
TIMEOUT_S = 15
Config = dict[str, str | int | float | bool]  # librdkafka settings


@dataclass
class Secured:
    process: BrokerProcess
    pki: Pki
    internal: str

    def admin(self) -> Config:
        return {**self.pki.ssl_client(self.internal, self.pki.admin)}

    def user(self, name: str) -> Config:
        mechanism, password, _ = USERS[name]
        return {**self.pki.sasl_client(self.process.bootstrap, mechanism, name, password)}


def _allow(user: str, kind: ResourceType, name: str, op: AclOperation) -> AclBinding:
    return AclBinding(
        kind, name, ResourcePatternType.LITERAL, f"User:{user}", "*", op, AclPermissionType.ALLOW
    )


@pytest.fixture
def secured(broker_factory: type[BrokerProcess], tmp_path: Path) -> Iterator[Secured]:
    pki = Pki.create(tmp_path / "pki")
    internal = free_port()
    process = broker_factory(
        tmp_path / "broker",
        extra_args=(*pki.broker_args(internal=internal), "--authorizer", "--super-users", ADMIN),
    ).start()
    secured = Secured(process, pki, f"127.0.0.1:{internal}")
    create_users(pki.ssl_client(secured.internal, pki.admin), USERS)
    admin = AdminClient(secured.admin())
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in ("orders", "payments")]).values():
        future.result(TIMEOUT_S)
    acls = [
        _allow("alice", ResourceType.TOPIC, "orders", AclOperation.READ),
        _allow("alice", ResourceType.GROUP, "billing", AclOperation.READ),
        _allow("bob", ResourceType.TOPIC, "orders", AclOperation.WRITE),
        _allow("bob", ResourceType.GROUP, "billing", AclOperation.READ),
    ]
    create_acls(admin, acls, TIMEOUT_S)
    yield secured


def _produce(config: Config, topic: str, count: int = 3) -> list[int]:
    errors: list[int] = []
    producer = Producer({**config, "message.timeout.ms": 10_000})
    for i in range(count):
        producer.produce(
            topic, value=b"v%d" % i, on_delivery=lambda e, _m: errors.append(e.code() if e else 0)
        )
    producer.flush(TIMEOUT_S)
    return errors


def _commit_error(config: Config, group: str, topic: str) -> int:
    """Commit an offset for `topic` in `group` without joining it; the error code or 0."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        return 0
    except KafkaException as exc:
        return int(exc.args[0].code())
    finally:
        consumer.close()


def test_each_user_may_do_what_its_acls_allow(secured: Secured) -> None:
    alice, bob = secured.user("alice"), secured.user("bob")
    assert set(_produce(alice, "orders")) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    assert _produce(bob, "orders") == [0, 0, 0]
    assert consume_in_group(bob, "orders", "billing", 3, TIMEOUT_S) == (
        0,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    )
    assert consume_in_group(alice, "orders", "billing", 3, TIMEOUT_S) == (3, 0)
    assert _commit_error(alice, "billing", "orders") == 0
    # Without READ on a group, alice cannot even find or join it.
    assert consume_in_group(alice, "orders", "reports", 3, TIMEOUT_S) == (
        0,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    )
    assert _commit_error(bob, "billing", "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Metadata: alice sees "orders" (READ implies DESCRIBE), never "payments".
    alice_admin = AdminClient(alice)
    assert set(alice_admin.list_topics(timeout=TIMEOUT_S).topics) == {"orders"}
    hidden = alice_admin.list_topics("payments", timeout=TIMEOUT_S).topics["payments"]
    assert hidden.error is not None
    assert hidden.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # ListGroups: the admin sees both groups, alice only the one she may describe.
    assert _commit_error(secured.admin(), "reports", "orders") == 0
    super_admin = AdminClient(secured.admin())
    listed = super_admin.list_consumer_groups().result(TIMEOUT_S)
    assert {g.group_id for g in listed.valid} == {"billing", "reports"}, listed.errors
    listed = alice_admin.list_consumer_groups().result(TIMEOUT_S)
    assert [g.group_id for g in listed.valid] == ["billing"]

    # kcat (librdkafka 2.0.2) as alice: the same refusal, the same reads.
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is required (apt-get install -y kcat)"
    _, password, _ = USERS["alice"]
    login = [
        "-b", secured.process.bootstrap, "-X", "security.protocol=SASL_SSL",
        "-X", f"ssl.ca.location={secured.pki.ca.cert}", "-X", "sasl.mechanism=SCRAM-SHA-512",
        "-X", "sasl.username=alice", "-X", f"sasl.password={password}",
    ]  # fmt: skip
    refused = subprocess.run(
        [kcat, "-P", *login, "-t", "orders"], input="x\n", capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "Topic authorization failed" in refused.stderr
    read = subprocess.run(
        [kcat, "-C", *login, "-t", "orders", "-o", "beginning", "-e"], capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip
    assert read.returncode == 0 and read.stdout.split() == ["v0", "v1", "v2"]
