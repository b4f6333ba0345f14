"""`[security] tls = true, sasl = "SCRAM-SHA-512"`: `regionlink up` on
topologies/two-regions-secure.toml makes a CA, certificates and SCRAM users in the state dir
(0600), runs every broker listener SASL_SSL, and its worker mirrors as its own user. A
confluent-kafka client configured with exactly what `regionlink endpoint --json` prints
produces on the primary and reads the copy on the standby; the authorizer is on, so a user
the admin creates may not produce until granted, and a READ granted on the primary reaches the
standby's copy (ACL sync); a plaintext client gets nothing;
a switchover runs the reverse flow as its own user; no password is in
`regionlink status --json`, any log, the span store or any other file of
the state dir but its own password files."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from broker.kraft.controller_client import ControllerClient, ControllerError
from broker.lease import probe
from mirror.config import parse_host_port
from mirror.runtime.secure import TopologySecurity
from mirror.runtime.topology import load_topology
from tests.integration.security_harness import (
    allow,
    create_acls,
    create_users,
    files_holding,
    read_values,
)
from tests.integration.test_runtime import TOPOLOGIES, regionlink, state_dir  # noqa: F401

pytestmark = pytest.mark.integration
TOPOLOGY = TOPOLOGIES / "two-regions-secure.toml"
RECORDS = 200
APP_PASSWORD = "app-Secret-512-abc"


def _endpoint(state: Path, region: str) -> dict[str, str]:
    done = regionlink("endpoint", "--state-dir", str(state), "--region", region, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["client"])


def _wait_running(state: Path, flow: tuple[str, str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = regionlink("status", "--state-dir", str(state), "--json")
        flows = {(f["source"], f["target"]): f["state"] for f in json.loads(done.stdout)["flows"]}
        if flows.get(flow) == "running":
            return
        time.sleep(0.5)
    raise AssertionError(f"flow {flow} not running: {flows}")


def _allow(config: dict[str, str], kind: ResourceType, name: str, op: AclOperation) -> None:
    """ALLOW `op` on a LITERAL resource for `app`, created with the client settings `config`."""
    create_acls(AdminClient(config), [allow(kind, name, "User:app", op)])


def _wait_acl(config: dict[str, str], topic: str, timeout_s: float = 30) -> None:
    """Until the cluster holds an ACL on `topic` (LITERAL), for `app`."""
    wanted = AclBindingFilter(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        "User:app",
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while not admin.describe_acls(wanted).result(timeout=10):
        assert time.monotonic() < deadline, f"no ACL on {topic}"
        time.sleep(0.5)


def _produce_one(config: dict[str, str], topic: str) -> int | None:
    """The error code of producing one record with the client settings `config`, or None."""
    outcome: list[int | None] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        outcome.append(None if error is None else error.code())

    producer = Producer({**config, "message.timeout.ms": 10_000})
    producer.produce(topic, value=b"x", on_delivery=delivered)
    producer.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def test_secured_topology_end_to_end(state_dir: Path) -> None:  # noqa: F811
    started = regionlink("up", str(TOPOLOGY), "--state-dir", str(state_dir), "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["supervisor"]["status"] == "healthy"
    us, eu = _endpoint(state_dir, "us-east"), _endpoint(state_dir, "eu-west")
    assert us["security.protocol"] == "SASL_SSL" and us["sasl.mechanism"] == "SCRAM-SHA-512"
    assert us["sasl.username"] == "admin" and Path(us["ssl.ca.location"]).is_file()

    admin = AdminClient(us)  # must outlive its futures
    admin.create_topics([NewTopic("orders", 2, 1)])["orders"].result(15)
    producer = Producer({**us, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce("orders", key=b"k%d" % i, value=b"v%d" % i)
    assert producer.flush(20) == 0
    copied = read_values(eu, "us-east.orders", RECORDS, timeout_s=45)
    assert sorted(copied) == sorted(b"v%d" % i for i in range(RECORDS))

    # The authorizer is on: a user the admin creates may do nothing until granted, while
    # the admin (a super user) may.
    create_users(us, {"app": ("SCRAM-SHA-512", APP_PASSWORD, 4096)})
    app = {**us, "sasl.username": "app", "sasl.password": APP_PASSWORD}
    assert _produce_one(app, "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _produce_one(us, "orders") is None
    # ACL sync is on in a secured topology: READ on orders at the primary lets `app` read
    # the copy on the standby (its group there is the standby's own to grant).
    create_users(eu, {"app": ("SCRAM-SHA-512", APP_PASSWORD, 4096)})
    _allow(us, ResourceType.TOPIC, "orders", AclOperation.READ)
    _allow(eu, ResourceType.GROUP, "check", AclOperation.READ)
    app_at_eu = {**eu, "sasl.username": "app", "sasl.password": APP_PASSWORD}
    _wait_acl(eu, "us-east.orders")  # a consumer refused once waits for its metadata refresh
    assert len(read_values(app_at_eu, "us-east.orders", RECORDS, timeout_s=30)) == RECORDS

    plaintext = AdminClient({"bootstrap.servers": us["bootstrap.servers"]})
    with pytest.raises(KafkaException):
        plaintext.list_topics(timeout=3)

    # The failover tools log in as admin, and the reverse flow's workers as their own user.
    switched = regionlink("switchover", "--to", "eu-west", "--state-dir", str(state_dir), "--json")
    assert switched.returncode == 0, switched.stderr
    assert json.loads(switched.stdout)["outcome"] == "done"
    _wait_running(state_dir, ("eu-west", "us-east"))

    secrets_dir = state_dir / "security"
    private = [p for p in secrets_dir.rglob("*") if p.is_file()]
    assert {p.name for p in private} >= {"admin.password", "worker-us-east-eu-west.password"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private), private
    passwords = [p.read_text().strip() for p in (secrets_dir / "users").iterdir()]
    status: dict[str, Any] = json.loads(
        regionlink("status", "--state-dir", str(state_dir), "--json").stdout
    )
    assert not any(password in json.dumps(status) for password in passwords)

    down = regionlink("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert (state_dir / "spans.db").exists() and list((state_dir / "logs").iterdir())
    leaks = [f for f in files_holding(state_dir, passwords) if "/security/users/" not in f]
    assert leaks == []


SECURE_RF3 = """\
name = "secure-rf3"
[regions.us-east]
brokers = 3
controllers = 3
[security]
tls = true
sasl = "SCRAM-SHA-256"
"""


def test_secured_region_with_controllers(state_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """Replicas fetch over the INTERNAL mutual-TLS listener (the ISR stays full), and the
    controllers' gRPC takes no plaintext client."""
    topology = tmp_path / "secure-rf3.toml"
    topology.write_text(SECURE_RF3)
    started = regionlink("up", str(topology), "--state-dir", str(state_dir), "--json")
    assert started.returncode == 0, started.stderr
    up = json.loads(started.stdout)
    security = TopologySecurity(state_dir.resolve(), load_topology(topology).security)
    client = {
        "bootstrap.servers": up["regions"]["us-east"]["bootstrap"],
        **security.client().librdkafka(),
    }
    admin = AdminClient(client)  # must outlive its futures
    admin.create_topics([NewTopic("orders", 3, 3)])["orders"].result(20)
    producer = Producer({**client, "acks": "all"})
    for i in range(RECORDS):
        producer.produce("orders", value=b"v%d" % i)
    assert producer.flush(20) == 0
    partitions = admin.list_topics(timeout=10).topics["orders"].partitions.values()
    assert all(sorted(p.isrs) == [1, 2, 3] for p in partitions), partitions

    quorum = {
        int(p["name"].rsplit("-", 1)[1]): parse_host_port(p["address"])
        for p in up["processes"]
        if p["kind"] == "controller"
    }
    assert len(quorum) == 3

    async def plaintext_register() -> str:
        controllers = ControllerClient(quorum, timeout_s=2.0)
        try:
            await controllers.register_broker(9, "intruder", "127.0.0.1", 1)
            return "registered"
        except ControllerError as exc:
            return str(exc)
        finally:
            await controllers.aclose()

    assert "UNAVAILABLE" in anyio.run(plaintext_register)


def test_write_lease_is_probed_over_tls(state_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """active-passive.toml (a 5 s write lease) secured: the primary's lease probes reach the
    standby's SASL_SSL listener over TLS, so it still takes writes after twice the lease —
    and a plaintext probe of that listener gets no answer."""
    topology = tmp_path / "active-passive-secure.toml"
    text = (TOPOLOGIES / "active-passive.toml").read_text()
    topology.write_text(text + '\n[security]\ntls = true\nsasl = "SCRAM-SHA-512"\n')
    started = regionlink("up", str(topology), "--state-dir", str(state_dir), "--json")
    assert started.returncode == 0, started.stderr
    us, eu = _endpoint(state_dir, "us-east"), _endpoint(state_dir, "eu-west")
    time.sleep(2 * 5 + 1)  # past the lease: only answered probes keep the primary writable
    admin = AdminClient(us)  # must outlive its futures
    admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(15)
    errors: list[str] = []
    producer = Producer({**us, "acks": "all", "message.timeout.ms": 10_000})
    producer.produce(
        "orders",
        value=b"after the lease",
        on_delivery=lambda e, _m: errors.append(str(e) if e else ""),
    )
    assert producer.flush(15) == 0 and errors == [""], errors

    host, port = parse_host_port(eu["bootstrap.servers"])

    async def plaintext_probe() -> str:
        try:
            with anyio.fail_after(5):
                await probe(host, port)
        except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            return f"no answer: {type(exc).__name__}"
        return "answered"

    assert anyio.run(plaintext_probe).startswith("no answer")
