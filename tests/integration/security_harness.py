"""Secured brokers for the security tests: a CA with certificates for brokers and clients
(mirror/runtime/pki.py), broker arguments by Kafka's names, client settings by
librdkafka's, users created through AlterUserScramCredentials, ACLs through CreateAcls,
a reader with those settings, and a check that no secret was left in any file a test run wrote."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from mirror.runtime.pki import CertificateFiles, ensure_ca, ensure_leaf

MECHANISMS = {
    "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
    "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
}
HOSTS = ("127.0.0.1", "localhost", *(f"127.0.1.{n}" for n in range(1, 6)))


@dataclass(frozen=True)
class Pki:
    ca: CertificateFiles
    broker: CertificateFiles  # the brokers' server (and replica client) certificate
    admin: CertificateFiles  # a client certificate: User:CN=admin,O=regionlink
    expired: CertificateFiles  # from our CA, expired yesterday
    stranger: CertificateFiles  # CN=admin as well, from another CA

    @classmethod
    def create(cls, root: Path) -> Pki:
        ca = ensure_ca(root)
        expired_start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
        other = ensure_ca(root / "other-ca")
        return cls(
            ca=ca,
            broker=ensure_leaf(ca, root, "broker", HOSTS),
            admin=ensure_leaf(ca, root, "admin"),
            expired=ensure_leaf(ca, root / "expired", "admin", not_before=expired_start, days=2),
            stranger=ensure_leaf(other, root / "other-ca", "admin"),
        )

    def broker_args(
        self, *, internal: int, host: str = "127.0.0.1", client_protocol: str = "SASL_SSL"
    ) -> tuple[str, ...]:
        """The default (CLIENT) listener speaks `client_protocol`; an INTERNAL listener on
        `host`:`internal` is SSL with client certificates required (admins, replicas)."""
        return (
            "--listener",
            f"INTERNAL={host}:{internal},{host}:{internal}",
            "--listener-security-protocol-map",
            f"CLIENT:{client_protocol},INTERNAL:SSL",
            "--ssl-certificate",
            str(self.broker.cert),
            "--ssl-key",
            str(self.broker.key),
            "--ssl-ca",
            str(self.ca.cert),
            "--ssl-client-auth",
            "required",
            "--sasl-enabled-mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        )

    def ssl_client(self, bootstrap: str, certificate: CertificateFiles | None) -> dict[str, str]:
        """librdkafka settings for an SSL listener, with `certificate` as client certificate."""
        config = {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": str(self.ca.cert),
        }
        if certificate is not None:
            config["ssl.certificate.location"] = str(certificate.cert)
            config["ssl.key.location"] = str(certificate.key)
        return config

    def sasl_client(
        self, bootstrap: str, mechanism: str, user: str, password: str, protocol: str = "SASL_SSL"
    ) -> dict[str, str]:
        config = {
            "bootstrap.servers": bootstrap,
            "security.protocol": protocol,
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        }
        if protocol == "SASL_SSL":
            config["ssl.ca.location"] = str(self.ca.cert)
        return config


def create_users(admin_config: dict[str, str], users: dict[str, tuple[str, str, int]]) -> None:
    """name -> (SCRAM mechanism, password, iterations), through AlterUserScramCredentials."""
    admin = AdminClient(admin_config)
    upsertions = [
        UserScramCredentialUpsertion(
            name, ScramCredentialInfo(MECHANISMS[mechanism], iterations), password.encode()
        )
        for name, (mechanism, password, iterations) in users.items()
    ]
    for future in admin.alter_user_scram_credentials(upsertions).values():
        assert future.result(timeout=20) is None


def allow(
    kind: ResourceType,
    name: str,
    principal: str,
    op: AclOperation,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> AclBinding:
    """An ALLOW binding for `principal` from any host."""
    return AclBinding(kind, name, pattern, principal, "*", op, AclPermissionType.ALLOW)


def create_acls(admin: AdminClient, bindings: list[AclBinding], timeout_s: float = 10) -> None:
    """CreateAcls, waiting for every binding's result (an error raises)."""
    for future in admin.create_acls(bindings).values():
        future.result(timeout=timeout_s)


def files_holding(root: Path, secrets: list[str]) -> list[str]:
    """Every file under `root` holding one of `secrets` (as text or bytes): none, we hope."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s!r}" for s in secrets if s.encode() in data]
    return found


def read_values(config: dict[str, str], topic: str, count: int, timeout_s: float) -> list[bytes]:
    """Up to `count` values of `topic`, from the start, read with the client settings
    `config` (a fresh group, nothing committed) within `timeout_s`."""
    consumer = Consumer(
        {
            **config,
            "group.id": "check",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value() or b"")
    finally:
        consumer.close()
    return values


def consume_in_group(
    config: Mapping[str, str | int | float | bool],
    topic: str,
    group: str,
    count: int,
    timeout_s: float,
) -> tuple[int, int]:
    """Subscribe in `group` with the client settings `config`, read up to `count` records
    and commit them: (records read, first error code or 0) — what an ACL let through."""
    consumer = Consumer(
        {**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    read, error = 0, 0
    deadline = time.monotonic() + timeout_s
    try:
        while read < count and not error and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if failure := msg.error():
                error = failure.code()
            else:
                read += 1
        if read:
            consumer.commit(asynchronous=False)
    except KafkaException as exc:
        error = exc.args[0].code()
    finally:
        consumer.close()
    return read, error
