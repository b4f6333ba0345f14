"""SCRAM users in a region of three brokers and three controllers: kept in the replicated
metadata (AlterSecurity through the controller quorum), so a user created through one
broker logs in on another, and users survive — and can still be created after — a SIGKILL
of the controller leader. Replicas fetch from each other over mutual TLS (the INTERNAL
listener, Kafka's inter.broker.listener.name)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import free_port
from tests.integration.region_harness import Region
from tests.integration.security_harness import Pki, create_users, files_holding

pytestmark = pytest.mark.integration

FIRST = {"alice": ("SCRAM-SHA-512", "alice-Region-Secret", 4096)}
AFTER_KILL = {"bob": ("SCRAM-SHA-256", "bob-Region-Secret", 4096)}


class SecureRegion:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = Pki.create(root / "pki")
        self.region = Region(root)
        self.internal: dict[int, str] = {}
        for n, broker in self.region.brokers.items():
            port = free_port()
            self.internal[n] = f"{broker.host}:{port}"
            broker.extra_args += (
                *self.pki.broker_args(internal=port, host=broker.host),
                "--inter-broker-listener-name",
                "INTERNAL",
            )

    def start(self) -> None:
        for controller in self.region.controllers.values():
            controller.start()
        for broker in self.region.brokers.values():
            broker.start()  # "ready" once the controllers have unfenced it

    def admin(self, n: int) -> dict[str, str]:
        return self.pki.ssl_client(self.internal[n], self.pki.admin)

    def client(self, n: int, users: dict[str, tuple[str, str, int]], user: str) -> dict[str, str]:
        mechanism, password, _ = users[user]
        return self.pki.sasl_client(self.region.brokers[n].bootstrap, mechanism, user, password)


@pytest.fixture
def secure_region(tmp_path: Path) -> Iterator[SecureRegion]:
    region = SecureRegion(tmp_path)
    try:
        region.start()
        yield region
    finally:
        region.region.kill_all()
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert "internal error" not in logs, logs[-3000:]
    secrets = [password for _, password, _ in [*FIRST.values(), *AFTER_KILL.values()]]
    assert files_holding(tmp_path, secrets) == []


def round_trip(config: dict[str, str], topic: str, tag: str, count: int = 100) -> None:
    """Produce `count` records (acks=all: the ISR replicated them) and read them back."""
    producer = Producer({**config, "acks": "all"})
    failures: list[object] = []
    for i in range(count):
        producer.produce(topic, key=tag.encode(), value=b"%d" % i, on_delivery=lambda e, m: (
            failures.append(e) if e else None
        ))  # fmt: skip
    assert producer.flush(30) == 0 and not failures, failures[:3]
    consumer = Consumer({**config, "group.id": f"g-{tag}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 30
    try:
        while seen < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.key() == tag.encode():
                seen += 1
    finally:
        consumer.close()
    assert seen == count


def test_users_are_region_wide_and_survive_a_controller_leader_sigkill(
    secure_region: SecureRegion,
) -> None:
    sr = secure_region
    create_users(sr.admin(1), FIRST)  # through broker 1
    admin = AdminClient(sr.admin(2))
    topic = NewTopic("payments", num_partitions=1, replication_factor=3)
    admin.create_topics([topic])["payments"].result(timeout=20)
    round_trip(sr.client(2, FIRST, "alice"), "payments", "before")  # logs in on broker 2

    leader = sr.region.controller_leader()
    sr.region.controllers[leader].kill()
    create_users(sr.admin(3), AFTER_KILL)  # the new controller leader commits it
    round_trip(sr.client(1, AFTER_KILL, "bob"), "payments", "bob-after")
    round_trip(sr.client(3, FIRST, "alice"), "payments", "alice-after")
    admin = AdminClient(sr.admin(1))  # referenced until its future is done
    described = admin.describe_user_scram_credentials().result(timeout=10)
    assert set(described) == {"alice", "bob"}
