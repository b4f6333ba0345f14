"""ACLs with unmodified clients: managed with confluent-kafka's and kafka-python's admin
clients, enforced on confluent-kafka and kcat, kept across a restart.

The unauthenticated principal, User:ANONYMOUS, is what these plaintext clients act as: a
super user while the ACLs are set up, then an ordinary principal after a restart without
--super-users, when only the ACLs decide — so the restart also shows they were kept.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
)
from kafka.admin import ACLResourcePatternType as KafkaPatternType
from kafka.admin import ResourceType as KafkaResourceType

from tests.integration.conftest import BrokerProcess
from tests.integration.security_harness import allow, consume_in_group

ANONYMOUS = "User:ANONYMOUS"
TIMEOUT_S = 15


def _allow(kind: ResourceType, name: str, op: AclOperation, prefixed: bool = False) -> AclBinding:
    pattern = ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL
    return allow(kind, name, ANONYMOUS, op, pattern)


EVERY_ACL = AclBindingFilter(
    ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
    AclOperation.ANY, AclPermissionType.ANY,
)  # fmt: skip


def _produce(bootstrap: str, topic: str, count: int = 3) -> list[int]:
    """Produce `count` records; the error code of each delivery (0 = acknowledged)."""
    errors: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10_000})
    for i in range(count):
        producer.produce(
            topic,
            value=b"v%d" % i,
            on_delivery=lambda err, _msg: errors.append(err.code() if err else 0),
        )
    producer.flush(TIMEOUT_S)
    return errors


def _fetch_error(bootstrap: str, topic: str, group: str) -> int:
    """Read a partition by assignment (the group, which librdkafka still looks up, must be
    allowed); the first error code, or 0."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            failure = msg.error()
            if failure is None:
                return 0
            if failure.code() != KafkaError._PARTITION_EOF:
                return int(failure.code())
        return 0
    finally:
        consumer.close()


def _kcat(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    assert path, "kcat is required (apt-get install -y kcat)"
    return subprocess.run(
        [path, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
    )


def test_acls_decide_what_an_ordinary_principal_may_do_after_a_restart(
    broker_factory: type[BrokerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "broker"
    setup = broker_factory(data_dir, extra_args=("--authorizer", "--super-users", ANONYMOUS))
    setup.start()
    bootstrap = setup.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = ("readable", "writable", "hidden")
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        future.result(TIMEOUT_S)
    assert _produce(bootstrap, "readable", 6) == [0] * 6
    for group in ("billing", "audit"):  # groups that exist, for ListGroups to show or hide
        assert consume_in_group(
            {"bootstrap.servers": bootstrap}, "readable", group, 3, TIMEOUT_S
        ) == (3, 0)  # commits offset 3

    wanted = [
        _allow(ResourceType.TOPIC, "readable", AclOperation.READ),
        _allow(ResourceType.TOPIC, "writ", AclOperation.WRITE, prefixed=True),
        _allow(ResourceType.GROUP, "billing", AclOperation.READ),
    ]
    for future in admin.create_acls(wanted).values():
        assert future.result(TIMEOUT_S) is None
    # kafka-python manages the same ACLs: one more, and it reads all back.
    kafka_admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    denied_host = ACL(
        ANONYMOUS, "10.9.9.9", ACLOperation.ALL, ACLPermissionType.DENY,
        ResourcePattern(KafkaResourceType.TOPIC, "readable", KafkaPatternType.LITERAL),
    )  # fmt: skip
    assert kafka_admin.create_acls([denied_host])["failed"] == []
    every = ACLFilter(
        None, None, ACLOperation.ANY, ACLPermissionType.ANY,
        ResourcePatternFilter(KafkaResourceType.ANY, None, KafkaPatternType.ANY),
    )  # fmt: skip
    described, error = kafka_admin.describe_acls(every)
    kafka_admin.close()
    assert error.errno == 0 and len(described) == 4
    assert set(admin.describe_acls(EVERY_ACL).result(TIMEOUT_S)) >= set(wanted)
    store = data_dir / "security.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    setup.stop()
    restarted = broker_factory(data_dir, port=setup.port, extra_args=("--authorizer",))
    restarted.start()

    # WRITE on "writ*" only: producing to "readable" is refused, to "writable" allowed.
    assert _produce(bootstrap, "writable") == [0, 0, 0]
    assert set(_produce(bootstrap, "readable")) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    # READ on "readable" and the group "billing": consume the rest and commit; else refused.
    assert consume_in_group(
        {"bootstrap.servers": bootstrap}, "readable", "billing", 3, TIMEOUT_S
    ) == (3, 0)
    assert consume_in_group(
        {"bootstrap.servers": bootstrap}, "readable", "audit", 3, TIMEOUT_S
    ) == (
        0,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    )
    assert _fetch_error(bootstrap, "writable", "billing") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Without DESCRIBE, a topic is not listed, and naming it is refused.
    listed = admin.list_topics(timeout=TIMEOUT_S)
    assert set(listed.topics) == {"readable", "writable"}
    named = admin.list_topics("hidden", timeout=TIMEOUT_S).topics["hidden"]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # ListGroups shows only the groups it may describe.
    groups = admin.list_consumer_groups().result(TIMEOUT_S)
    assert [g.group_id for g in groups.valid] == ["billing"]
    # Managing ACLs needs ALTER (or DESCRIBE) on the cluster, which it lacks.
    refusals = admin.create_acls([_allow(ResourceType.TOPIC, "hidden", AclOperation.READ)])
    for result in refusals.values():
        try:
            result.result(TIMEOUT_S)
            raise AssertionError("CreateAcls without ALTER on the cluster succeeded")
        except KafkaException as exc:
            assert exc.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # kcat (librdkafka 2.0.2) sees the same refusals.
    refused = _kcat("-b", bootstrap, "-P", "-t", "readable", stdin="x\n")
    assert refused.returncode != 0 and "Topic authorization failed" in refused.stderr
    assert _kcat("-b", bootstrap, "-P", "-t", "writable", stdin="y\n").returncode == 0
    fetched = _kcat("-b", bootstrap, "-C", "-t", "writable", "-o", "beginning", "-e")
    assert "Topic authorization failed" in fetched.stderr
    read = _kcat("-b", bootstrap, "-C", "-t", "readable", "-o", "beginning", "-e")
    assert read.returncode == 0 and read.stdout.split() == [f"v{i}" for i in range(6)]
    assert "hidden" not in _kcat("-b", bootstrap, "-L").stdout


def test_without_an_authorizer_acl_requests_answer_security_disabled(
    broker: BrokerProcess,
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = _allow(ResourceType.TOPIC, "t", AclOperation.READ)
    try:
        admin.create_acls([binding])[binding].result(TIMEOUT_S)
        raise AssertionError("CreateAcls succeeded without an authorizer")
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.SECURITY_DISABLED
    assert _produce(broker.bootstrap, "anything") == [0, 0, 0]  # and everything is allowed
