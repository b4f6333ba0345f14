"""ACL sync across a flow between two secured regions (authorizer on, SASL_SSL, SCRAM).

An application user `app` may read `orders` at the source; after the flow's ACL sync it may
read `us.orders` at the target with a real confluent-kafka consumer (SASL), and was refused
before. The source's ALLOW WRITE is not copied; a PREFIXED grant lands on the remote prefix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.integration.mirror_harness import WorkerProcess, worker_factory  # noqa: F401
from tests.integration.security_harness import (
    Pki,
    allow,
    consume_in_group,
    create_acls,
    create_users,
    read_values,
)
from tests.integration.test_mirror_secure import WORKER, SecuredRegion, _cluster_toml

pytestmark = pytest.mark.integration

APP = "app"
APP_PASSWORD = "app-Secret-512-abc"
RECORDS = 50
GROUP = "app-readers"


def _remote_topic_acls(admin: AdminClient) -> set[tuple[str, str, str, str]]:
    """(pattern type, name, operation, permission) of the target's ACLs on `us.` topics."""
    every = AclBindingFilter(
        ResourceType.TOPIC,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    found = admin.describe_acls(every).result(timeout=10)
    return {
        (b.resource_pattern_type.name, b.name, b.operation.name, b.permission_type.name)
        for b in found
        if b.name.startswith("us.") and b.principal == f"User:{APP}"
    }


def test_flow_copies_read_acls_onto_remote_topics(
    tmp_path: Path,
    worker_factory: Callable[..., WorkerProcess],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pki = Pki.create(tmp_path / "pki")
    us = SecuredRegion(tmp_path / "us", pki).start_for_worker()
    eu = SecuredRegion(tmp_path / "eu", pki).start_for_worker()
    try:
        us_admin, eu_admin = AdminClient(us.admin()), AdminClient(eu.admin())
        # ACL sync writes ACLs on the target: the worker needs ALTER on its cluster.
        cluster = ResourceType.BROKER, "kafka-cluster"
        create_acls(eu_admin, [allow(*cluster, f"User:{WORKER}", AclOperation.ALTER)])
        for region in (us, eu):
            create_users(region.admin(), {APP: ("SCRAM-SHA-512", APP_PASSWORD, 4096)})
        # Consumer groups are the target's own (not synced): `app` gets its group there.
        create_acls(eu_admin, [allow(ResourceType.GROUP, GROUP, f"User:{APP}", AclOperation.READ)])
        us_admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(10)
        producer = Producer({**us.admin(), "acks": "all"})
        for i in range(RECORDS):
            producer.produce("orders", value=b"v%d" % i)
        assert producer.flush(20) == 0

        monkeypatch.setenv("RL_WORKER_PASSWORD", "worker-Secret-512-xyz")
        config = tmp_path / "worker.toml"
        config.write_text(
            _cluster_toml("us", us, "sasl.password.env", "RL_WORKER_PASSWORD")
            + _cluster_toml("eu", eu, "sasl.password.env", "RL_WORKER_PASSWORD")
            + '[[flows]]\nsource = "us"\ntarget = "eu"\nrefresh_topics_interval_s = 1.0\n'
        )
        worker = worker_factory(config, "acl-sync")
        app_at_eu = pki.sasl_client(eu.process.bootstrap, "SCRAM-SHA-512", APP, APP_PASSWORD)
        assert len(read_values(eu.admin(), "us.orders", RECORDS, timeout_s=40)) == RECORDS
        assert consume_in_group(app_at_eu, "us.orders", GROUP, RECORDS, 10) == (
            0,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
        )

        create_acls(
            us_admin,
            [
                allow(ResourceType.TOPIC, "orders", f"User:{APP}", AclOperation.READ),
                allow(ResourceType.TOPIC, "orders", f"User:{APP}", AclOperation.WRITE),
                allow(
                    ResourceType.TOPIC,
                    "ord",
                    f"User:{APP}",
                    AclOperation.DESCRIBE,
                    ResourcePatternType.PREFIXED,
                ),
            ],
        )
        wanted = {
            ("LITERAL", "us.orders", "READ", "ALLOW"),
            ("PREFIXED", "us.ord", "DESCRIBE", "ALLOW"),
        }
        deadline = time.monotonic() + 30
        while _remote_topic_acls(eu_admin) != wanted and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _remote_topic_acls(eu_admin) == wanted  # no ALLOW WRITE

        assert consume_in_group(app_at_eu, "us.orders", GROUP, RECORDS, 30) == (RECORDS, 0)
        assert "AUTHORIZATION_FAILED" not in worker.log_text(), worker.log_text()[-3000:]
        worker.stop()
    finally:
        us.process.kill()
        eu.process.kill()
