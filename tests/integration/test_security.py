"""TLS and SASL on a real broker with real clients (confluent-kafka, kafka-python, kcat).

One broker serves the module: its CLIENT listener is SASL_SSL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512), its INTERNAL listener SSL with client certificates required — where the
admin (User:CN=admin) creates the users with AlterUserScramCredentials. Refusals (wrong
password, unknown user, expired or foreign certificate, plaintext or garbage on a TLS port,
requests before SASL authentication) close only that connection: nothing is served, and the
broker keeps serving everyone else. No password is left in any file the run wrote.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from broker.protocol.codec import RequestHeader, encode_request
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import frame
from broker.protocol.messages import request_builder
from broker.protocol.versions import ApiKey
from tests.integration.conftest import BrokerProcess, free_port
from tests.integration.rawclient import RawClient
from tests.integration.security_harness import Pki, create_users, files_holding

pytestmark = pytest.mark.integration

RECORDS = 200
USERS = {  # name -> (mechanism, password, iterations)
    "alice": ("SCRAM-SHA-512", "alice-Secret-512", 8192),
    "bob": ("SCRAM-SHA-256", "bob-Secret-256", 4096),
}
SECRETS = [password for _, password, _ in USERS.values()]


class SecureBroker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = Pki.create(root / "pki")
        self.internal_port = free_port()
        self.process = BrokerProcess(
            root / "broker",
            extra_args=(
                *self.pki.broker_args(internal=self.internal_port),
                "--max-failed-authentications",
                "1000",  # the refusal tests fail on purpose; the limiter has its own test
            ),
        )

    @property
    def client(self) -> str:
        return self.process.bootstrap

    @property
    def internal(self) -> str:
        return f"127.0.0.1:{self.internal_port}"

    def admin_config(self) -> dict[str, str]:
        return self.pki.ssl_client(self.internal, self.pki.admin)

    def sasl(self, mechanism: str, user: str, password: str) -> dict[str, str]:
        return self.pki.sasl_client(self.client, mechanism, user, password)

    def log(self) -> str:
        return self.process.log_path.read_text()


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = SecureBroker(tmp_path_factory.mktemp("secure"))
    broker.process.start()
    try:
        create_users(broker.admin_config(), USERS)
        admin = AdminClient(broker.admin_config())
        for future in admin.create_topics([NewTopic("orders", 2, 1)]).values():
            future.result(timeout=10)
        yield broker
    finally:
        broker.process.kill()
    log_text = broker.log()
    assert "internal error" not in log_text, log_text[-3000:]
    assert files_holding(broker.root, SECRETS) == []


def produce(config: dict[str, str], topic: str, count: int, tag: str) -> int:
    """Produce `count` records; how many were acknowledged (all or an error is raised)."""
    errors: list[KafkaError] = []
    producer = Producer({**config, "acks": "all", "linger.ms": 5, "error_cb": errors.append})
    delivered = []
    for i in range(count):
        producer.produce(
            topic, key=f"{tag}-{i}".encode(), value=f"{tag}-value-{i}".encode(),
            on_delivery=lambda err, msg: delivered.append(err),
        )  # fmt: skip
    remaining = producer.flush(20)
    assert remaining == 0 and not any(delivered), (remaining, errors[:3], delivered[:3])
    return len(delivered)


def consume_tagged(config: dict[str, str], topic: str, tag: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            **config,
            "group.id": f"g-{tag}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 20
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            if msg.key().startswith(f"{tag}-".encode()):
                values.append(msg.value())
    finally:
        consumer.close()
    return values


# ----------------------------------------------------------------------------- TLS


def test_mutual_tls_produce_and_consume_with_confluent_kafka(secure: SecureBroker) -> None:
    config = secure.admin_config()
    assert produce(config, "orders", RECORDS, "tls") == RECORDS
    values = consume_tagged(config, "orders", "tls", RECORDS)
    assert sorted(values) == sorted(f"tls-value-{i}".encode() for i in range(RECORDS))


def test_mutual_tls_with_kafka_python(secure: SecureBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    tls = {
        "bootstrap_servers": secure.internal,
        "security_protocol": "SSL",
        "ssl_cafile": str(secure.pki.ca.cert),
        "ssl_certfile": str(secure.pki.admin.cert),
        "ssl_keyfile": str(secure.pki.admin.key),
    }
    producer = KafkaProducer(acks="all", **tls)
    futures = [producer.send("kp-tls", key=b"k%d" % i, value=b"v%d" % i) for i in range(50)]
    producer.flush(timeout=20)
    assert [f.get(timeout=10).offset for f in futures] == list(range(50))
    producer.close()
    consumer = KafkaConsumer(
        "kp-tls", group_id="kp-tls", auto_offset_reset="earliest", consumer_timeout_ms=5000, **tls
    )
    assert [m.value for m in consumer] == [b"v%d" % i for i in range(50)]
    consumer.close()


def kcat(secure: SecureBroker, *args: str, stdin: bytes | None = None) -> str:
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    assert binary, "kcat is required (apt-get install -y kcat)"
    out = subprocess.run([binary, *args], input=stdin, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return out.stdout.decode()


def test_kcat_over_mutual_tls_and_over_sasl_scram(secure: SecureBroker) -> None:
    pki = secure.pki
    tls = [
        "-b", secure.internal, "-X", "security.protocol=SSL",
        "-X", f"ssl.ca.location={pki.ca.cert}",
        "-X", f"ssl.certificate.location={pki.admin.cert}",
        "-X", f"ssl.key.location={pki.admin.key}",
    ]  # fmt: skip
    lines = "".join(f"key{i}:line {i}\n" for i in range(50)).encode()
    kcat(secure, "-P", *tls, "-t", "kcat-secure", "-K:", stdin=lines)
    _, password, _ = USERS["alice"]
    sasl = [
        "-b", secure.client, "-X", "security.protocol=SASL_SSL",
        "-X", f"ssl.ca.location={pki.ca.cert}", "-X", "sasl.mechanism=SCRAM-SHA-512",
        "-X", "sasl.username=alice", "-X", f"sasl.password={password}",
    ]  # fmt: skip
    out = kcat(secure, "-C", *sasl, "-t", "kcat-secure", "-e", "-o", "beginning", "-f", "%k=%s\n")
    assert out.splitlines() == [f"key{i}=line {i}" for i in range(50)]


# ----------------------------------------------------------------------------- SASL


@pytest.mark.parametrize(
    ("mechanism", "user"),
    [("SCRAM-SHA-512", "alice"), ("SCRAM-SHA-256", "bob"), ("PLAIN", "alice"), ("PLAIN", "bob")],
)
def test_sasl_ssl_produce_and_consume(secure: SecureBroker, mechanism: str, user: str) -> None:
    config = secure.sasl(mechanism, user, USERS[user][1])
    tag = f"{mechanism}-{user}"
    assert produce(config, "orders", RECORDS, tag) == RECORDS
    assert len(consume_tagged(config, "orders", tag, RECORDS)) == RECORDS


def test_kafka_python_with_scram_sha_256(secure: SecureBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    sasl = {
        "bootstrap_servers": secure.client,
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(secure.pki.ca.cert),
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "bob",
        "sasl_plain_password": USERS["bob"][1],
    }
    producer = KafkaProducer(acks="all", **sasl)
    futures = [producer.send("kp-sasl", value=b"v%d" % i) for i in range(50)]
    producer.flush(timeout=20)
    assert [f.get(timeout=10).offset for f in futures] == list(range(50))
    producer.close()
    consumer = KafkaConsumer(
        "kp-sasl",
        group_id="kp-sasl",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **sasl,
    )
    assert len(list(consumer)) == 50
    consumer.close()


def test_the_admin_describes_users_without_their_secrets(secure: SecureBroker) -> None:
    admin = AdminClient(secure.admin_config())
    described = admin.describe_user_scram_credentials().result(timeout=10)  # every user
    assert set(described) >= {"alice", "bob"}
    infos = {c.mechanism.name: c.iterations for c in described["alice"].scram_credential_infos}
    assert infos == {"SCRAM_SHA_512": 8192}
    with pytest.raises(Exception, match="RESOURCE_NOT_FOUND"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(timeout=10)


def _refused(config: dict[str, str]) -> list[str]:
    """Produce one record with `config` for a few seconds: the client errors it saw (it
    must see some, and deliver nothing)."""
    errors: list[str] = []
    producer = Producer(
        {**config, "message.timeout.ms": 3000, "error_cb": lambda e: errors.append(str(e))}
    )
    delivered: list[object] = []
    producer.produce("orders", b"must-not-land", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(6)
    assert delivered and delivered[0] is not None, "the record must not be delivered"
    return errors


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "not-alices-password"), ("mallory", "any-password")]
)
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_a_wrong_password_or_unknown_user_is_refused(
    secure: SecureBroker, mechanism: str, user: str, password: str
) -> None:
    errors = _refused(secure.sasl(mechanism, user, password))
    assert any("Authentication failed" in e or "SASL" in e for e in errors), errors
    assert "failed authentication from" in secure.log()
    assert password not in secure.log()
    # and the broker keeps serving the others
    assert produce(secure.sasl("SCRAM-SHA-512", "alice", USERS["alice"][1]), "orders", 1, "after")


@pytest.mark.parametrize("certificate", ["expired", "stranger", "none"])
def test_client_certificates_are_required_on_the_ssl_listener(
    secure: SecureBroker, certificate: str
) -> None:
    files = {"expired": secure.pki.expired, "stranger": secure.pki.stranger, "none": None}
    errors = _refused(secure.pki.ssl_client(secure.internal, files[certificate]))
    assert errors
    assert "TLS handshake failed" in secure.log()
    assert produce(secure.admin_config(), "orders", 1, "after-cert") == 1


def _api_versions_frame(version: int = 3) -> bytes:
    body = request_builder(ApiKey.API_VERSIONS, version).make(
        "ApiVersionsRequest", client_software_name="raw", client_software_version="1"
    )
    return frame(encode_request(RequestHeader(ApiKey.API_VERSIONS, version, 1, "raw"), body))


def _metadata_frame() -> bytes:
    body = request_builder(ApiKey.METADATA, 8).make(
        "MetadataRequest",
        topics=None,
        allow_auto_topic_creation=False,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )
    return frame(encode_request(RequestHeader(ApiKey.METADATA, 8, 2, "raw"), body))


def _read_all(sock: socket.socket) -> bytes:
    """Everything the broker sends until it closes the connection (bounded in time)."""
    sock.settimeout(15)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize(
    "sent",
    [_api_versions_frame(), b"\x16\x03\x01\x02\x00" + b"\xff" * 200, b"GET / HTTP/1.1\r\n\r\n"],
    ids=["plaintext-kafka", "garbage-handshake", "http"],
)
def test_plaintext_or_garbage_on_a_tls_port_is_refused(secure: SecureBroker, sent: bytes) -> None:
    for port in (secure.process.port, secure.internal_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(sent)
            reply = _read_all(sock)
        assert b"ApiVersions" not in reply and len(reply) < 100  # a TLS alert at most
    assert produce(secure.admin_config(), "orders", 1, "after-garbage") == 1


def _tls_socket(secure: SecureBroker) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=secure.pki.ca.cert)
    raw = socket.create_connection(("127.0.0.1", secure.process.port), timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize(
    "sent",
    [_metadata_frame(), frame(b"\x00\x11\xff\xff garbage"), b"\x00\x00\x00\x08" + b"\x01" * 8],
    ids=["metadata-before-auth", "garbage-handshake-frame", "garbage-frame"],
)
def test_nothing_is_served_before_sasl_authentication(secure: SecureBroker, sent: bytes) -> None:
    with _tls_socket(secure) as tls:
        tls.sendall(_api_versions_frame())  # allowed before authentication
        size = struct.unpack(">i", tls.recv(4))[0]
        assert size > 0
        while size > 0:
            size -= len(tls.recv(size))
        tls.sendall(sent)
        assert _read_all(tls) == b"", "closed with nothing served"
    assert produce(secure.sasl("SCRAM-SHA-256", "bob", USERS["bob"][1]), "orders", 1, "x") == 1


def test_the_sasl_apis_on_a_listener_without_sasl_answer_illegal_sasl_state(
    secure: SecureBroker,
) -> None:
    context = ssl.create_default_context(cafile=secure.pki.ca.cert)
    context.load_cert_chain(secure.pki.admin.cert, secure.pki.admin.key)
    with RawClient(secure.internal, ssl_context=context) as client:
        answer = client.request(ApiKey.SASL_HANDSHAKE, 1, "SaslHandshakeRequest", mechanism="PLAIN")
        assert answer.error_code == ErrorCode.illegal_sasl_state


# ----------------------------------------------------------------- SASL_PLAINTEXT, raw


@pytest.fixture
def sasl_plaintext(broker_factory: type[BrokerProcess], tmp_path: Path) -> BrokerProcess:
    """A SASL_PLAINTEXT broker refusing a host after 3 failures; users made on its
    PLAINTEXT INTERNAL listener."""
    internal = free_port()
    broker = broker_factory(
        tmp_path / "sasl-plaintext",
        extra_args=(
            "--listener", f"INTERNAL=127.0.0.1:{internal},127.0.0.1:{internal}",
            "--listener-security-protocol-map", "CLIENT:SASL_PLAINTEXT",
            "--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512",
            "--max-failed-authentications", "3",
        ),
    ).start()  # fmt: skip
    create_users({"bootstrap.servers": f"127.0.0.1:{internal}"}, {"carol": USERS["alice"]})
    return broker


def _plain(client: RawClient, user: str, password: str, *, version: int = 1) -> int:
    """SaslHandshake + SaslAuthenticate with PLAIN; the error code (0: authenticated)."""
    shake = client.request(
        ApiKey.SASL_HANDSHAKE, version, "SaslHandshakeRequest", mechanism="PLAIN"
    )
    assert shake.error_code == ErrorCode.none and "PLAIN" in shake.mechanisms
    token = f"\0{user}\0{password}".encode()
    if version == 0:  # the token goes bare; a bare (empty) answer, or the connection closes
        client.send_raw(frame(token))
        answer = client.receive_frame()
        return ErrorCode.none if answer == b"" else ErrorCode.sasl_authentication_failed
    done = client.request(ApiKey.SASL_AUTHENTICATE, 1, "SaslAuthenticateRequest", auth_bytes=token)
    return int(done.error_code)


def _metadata_served(client: RawClient) -> bool:
    response = client.request(
        ApiKey.METADATA,
        8,
        "MetadataRequest",
        topics=None,
        allow_auto_topic_creation=False,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )
    return bool(response.brokers)


@pytest.mark.parametrize("version", [0, 1])
def test_sasl_handshake_v0_and_v1(sasl_plaintext: BrokerProcess, version: int) -> None:
    with RawClient(sasl_plaintext.bootstrap) as client:
        assert _plain(client, "carol", USERS["alice"][1], version=version) == ErrorCode.none
        assert _metadata_served(client)


def test_an_unsupported_mechanism_is_answered_then_closed(sasl_plaintext: BrokerProcess) -> None:
    """As Kafka: UNSUPPORTED_SASL_MECHANISM (33) with the enabled mechanisms, then close."""
    with RawClient(sasl_plaintext.bootstrap) as client:
        shake = client.request(
            ApiKey.SASL_HANDSHAKE, 1, "SaslHandshakeRequest", mechanism="SCRAM-SHA-256"
        )
        assert shake.error_code == ErrorCode.unsupported_sasl_mechanism
        assert tuple(shake.mechanisms) == ("PLAIN", "SCRAM-SHA-512")
        assert client.receive_frame() is None  # closed
    with RawClient(sasl_plaintext.bootstrap) as client:  # the broker serves others
        assert _plain(client, "carol", USERS["alice"][1]) == ErrorCode.none
        assert _metadata_served(client)


def test_a_host_failing_too_often_is_refused_until_its_window_passes(
    sasl_plaintext: BrokerProcess,
) -> None:
    for _ in range(3):
        with RawClient(sasl_plaintext.bootstrap) as client:
            started = time.monotonic()
            assert _plain(client, "carol", "guess") == ErrorCode.sasl_authentication_failed
            assert client.receive_frame() is None  # closed
            assert time.monotonic() - started >= 0.09  # after the failure delay
    with RawClient(sasl_plaintext.bootstrap) as client:  # refused at once, unserved
        client.send_raw(_api_versions_frame())
        assert client.receive_frame() is None
    with RawClient(sasl_plaintext.bootstrap, source_host="127.0.0.2") as client:  # others are fine
        assert _plain(client, "carol", USERS["alice"][1]) == ErrorCode.none
        assert _metadata_served(client)
    log_text = sasl_plaintext.log_path.read_text()
    assert "failed to authenticate 3 times" in log_text and "guess" not in log_text
