"""A mirror worker between two secured regions: SASL_SSL with SCRAM-SHA-512 on both, the
authorizer on, the worker's own user (not a super user) granted what a link needs.

The worker's configuration names its password by file (`sasl.password.file`) and by
environment variable (`sasl.password.env`), one per cluster; the run's files — configs,
logs, the brokers' data — must not hold it, nor may `worker status`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from broker.client import KafkaClient, KafkaConnectionError
from broker.client.security import ClientSecurity
from tests.integration.conftest import BrokerProcess, free_port
from tests.integration.mirror_harness import WorkerProcess, worker_factory  # noqa: F401
from tests.integration.security_harness import (
    Pki,
    create_acls,
    create_users,
    files_holding,
    read_values,
)

pytestmark = pytest.mark.integration

ADMIN = "User:CN=admin,O=regionlink"  # the admin's client certificate (a super user)
WORKER = "mirror-worker"
PASSWORD = "worker-Secret-512-xyz"
RECORDS = 300

# What a Produce-mode (MM2-compatible) link needs, and no more than that: topics and groups
# (reading, creating remote and internal topics, syncing their configs, its membership
# group), the cluster's description, and idempotent writes.
TOPIC_OPS = (AclOperation.ALL,)
GROUP_OPS = (AclOperation.ALL,)
CLUSTER_OPS = (AclOperation.DESCRIBE, AclOperation.CREATE, AclOperation.IDEMPOTENT_WRITE)


def _grants(principal: str) -> list[AclBinding]:
    def allow(kind: ResourceType, name: str, op: AclOperation) -> AclBinding:
        return AclBinding(
            kind, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW
        )

    return (
        [allow(ResourceType.TOPIC, "*", op) for op in TOPIC_OPS]
        + [allow(ResourceType.GROUP, "*", op) for op in GROUP_OPS]
        + [allow(ResourceType.BROKER, "kafka-cluster", op) for op in CLUSTER_OPS]
    )


class SecuredRegion:
    """One broker: CLIENT is SASL_SSL, INTERNAL is SSL with the admin's certificate."""

    def __init__(self, root: Path, pki: Pki) -> None:
        self.pki = pki
        self.internal_port = free_port()
        self.process = BrokerProcess(
            root,
            extra_args=(
                *pki.broker_args(internal=self.internal_port),
                "--authorizer",
                "--super-users",
                ADMIN,
                "--maintenance-interval-s",
                "0.5",
            ),
        )

    def admin(self) -> dict[str, str]:
        return self.pki.ssl_client(f"127.0.0.1:{self.internal_port}", self.pki.admin)

    def start_for_worker(self) -> SecuredRegion:
        self.process.start()
        create_users(self.admin(), {WORKER: ("SCRAM-SHA-512", PASSWORD, 4096)})
        admin = AdminClient(self.admin())
        create_acls(admin, _grants(f"User:{WORKER}"))
        return self


def _cluster_toml(alias: str, region: SecuredRegion, password_key: str, where: str) -> str:
    return "\n".join(
        [
            f"[clusters.{alias}]",
            f'bootstrap = "{region.process.bootstrap}"',
            'security.protocol = "SASL_SSL"',
            'sasl.mechanism = "SCRAM-SHA-512"',
            f'sasl.username = "{WORKER}"',
            f'{password_key} = "{where}"',
            f'ssl.ca.location = "{region.pki.ca.cert}"',
            "",
        ]
    )


async def _our_client_logins(region: SecuredRegion) -> dict[str, str]:
    """How our client fares logging in as the worker with each mechanism, and with a
    wrong password (refused: a KafkaConnectionError naming the user, not the password)."""
    tries = {
        "PLAIN": ("PLAIN", PASSWORD),
        "SCRAM-SHA-512": ("SCRAM-SHA-512", PASSWORD),
        "SCRAM-SHA-256": ("SCRAM-SHA-256", PASSWORD),
        "wrong password": ("SCRAM-SHA-512", "not-" + PASSWORD),
    }
    outcomes = {}
    for name, (mechanism, password) in tries.items():
        security = ClientSecurity("SASL_SSL", mechanism, WORKER, password, ca=region.pki.ca.cert)
        bootstrap = [("127.0.0.1", region.process.port)]
        try:
            async with KafkaClient(bootstrap, security=security, connect_timeout_s=5) as client:
                await client.refresh_metadata(["orders"])
                outcomes[name] = "ok"
        except KafkaConnectionError as exc:
            assert password not in str(exc) and WORKER in str(exc), str(exc)
            outcomes[name] = "refused"
    return outcomes


def test_worker_mirrors_between_secured_regions(
    tmp_path: Path,
    worker_factory: Callable[..., WorkerProcess],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pki = Pki.create(tmp_path / "pki")
    us = SecuredRegion(tmp_path / "us", pki).start_for_worker()
    eu = SecuredRegion(tmp_path / "eu", pki).start_for_worker()
    try:
        admin = AdminClient(us.admin())  # must outlive its futures
        admin.create_topics([NewTopic("orders", 2, 1)])["orders"].result(10)
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir(mode=0o700)
        password_file = secrets_dir / "worker.password"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o600)
        monkeypatch.setenv("RL_WORKER_PASSWORD", PASSWORD)  # inherited by the worker
        config = tmp_path / "worker.toml"
        config.write_text(
            _cluster_toml("us", us, "sasl.password.file", str(password_file))
            + _cluster_toml("eu", eu, "sasl.password.env", "RL_WORKER_PASSWORD")
            + '[[flows]]\nsource = "us"\ntarget = "eu"\n'
        )
        worker = worker_factory(config, "secure")

        producer = Producer({**us.admin(), "acks": "all", "linger.ms": 5})
        for i in range(RECORDS):
            producer.produce("orders", key=b"k%d" % i, value=b"v%d" % i)
        assert producer.flush(20) == 0
        copied = read_values(eu.admin(), "us.orders", RECORDS, timeout_s=40)
        assert sorted(copied) == sorted(b"v%d" % i for i in range(RECORDS))

        status = worker.status()
        assert PASSWORD not in json.dumps(status)
        assert anyio.run(_our_client_logins, us) == {
            "PLAIN": "ok",
            "SCRAM-SHA-512": "ok",
            "SCRAM-SHA-256": "refused",  # the worker has a SCRAM-SHA-512 credential only
            "wrong password": "refused",
        }

        assert "AUTHORIZATION_FAILED" not in worker.log_text(), worker.log_text()[-3000:]
        worker.stop()
    finally:
        us.process.kill()
        eu.process.kill()
    for region in (us, eu):
        log = region.process.log_path.read_text()
        assert "internal error" not in log, log[-3000:]
    leaks = [f for f in files_holding(tmp_path, [PASSWORD]) if "secrets" not in f]
    assert leaks == []
