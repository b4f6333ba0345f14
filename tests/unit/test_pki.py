"""The topology's CA: real TLS handshakes with what it issues, and Kafka's principal names."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest

from mirror.runtime.pki import CertificateFiles, ensure_ca, ensure_leaf, principal_of


def _handshake(server: CertificateFiles, ca: Path, client: CertificateFiles | None) -> list[str]:
    """A TLS handshake over loopback: the server requires a client certificate; the
    principal the server derived from it, if it accepted the client."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    server_context.load_cert_chain(server.cert, server.key)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=ca)
    if client is not None:
        client_context.load_cert_chain(client.cert, client.key)
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                seen.append(principal_of(tls.getpeercert()["subject"]))
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.recv(1)  # TLS 1.3: the server checks the client's certificate after
    finally:
        thread.join(5)
        listener.close()
    return seen


def test_a_broker_and_a_worker_shake_hands_and_the_worker_is_named_by_its_subject(
    tmp_path: Path,
) -> None:
    ca = ensure_ca(tmp_path)
    broker = ensure_leaf(ca, tmp_path, "broker-1")
    worker = ensure_leaf(ca, tmp_path, "worker")
    assert _handshake(broker, ca.cert, worker) == ["User:CN=worker,O=regionlink"]
    for files in (ca, broker, worker):
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert ensure_leaf(ca, tmp_path, "broker-1") == broker  # kept, not reissued
    assert ensure_ca(tmp_path).cert.read_bytes() == ca.cert.read_bytes()


@pytest.mark.parametrize("problem", ["expired", "other CA", "no certificate"])
def test_a_client_the_server_cannot_trust_is_refused(tmp_path: Path, problem: str) -> None:
    ca = ensure_ca(tmp_path / "ca")
    broker = ensure_leaf(ca, tmp_path / "ca", "broker-1")
    if problem == "expired":
        old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
        client: CertificateFiles | None = ensure_leaf(ca, tmp_path, "late", not_before=old, days=1)
    elif problem == "other CA":
        client = ensure_leaf(ensure_ca(tmp_path / "rogue"), tmp_path, "rogue-client")
    else:
        client = None
    with pytest.raises((ssl.SSLError, ConnectionResetError)):  # the server's alert, or its reset
        _handshake(broker, ca.cert, client)


def test_principal_names_escape_as_rfc_2253_does() -> None:
    subject = ((("organizationName", "Acme, Inc."),), (("commonName", "a+b"),))
    assert principal_of(subject) == "User:CN=a\\+b,O=Acme\\, Inc."
