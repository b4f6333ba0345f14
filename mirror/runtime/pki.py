"""A topology's own certificate authority: what `[security] tls = true` needs, made locally.

`regionlink up` creates, once per state dir, a CA and a certificate per process that
serves TLS (brokers, controllers) plus client certificates for the processes that connect
(workers, the orchestrator), all as PEM files readable by the owner only (0600). Files that
exist are kept, so a restart keeps its identities; rotating means issuing new files and
restarting process by process (docs/security.md).

Kafka names a client that presents a certificate by the certificate's subject, in RFC 2253
form (`User:CN=worker,O=regionlink`); `principal_of` (broker/security/tls.py, where the
broker uses it) does the same from what Python's ssl module reports.

Uses the `cryptography` package; ECDSA P-256 keys (fast handshakes, small certificates).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.security.tls import principal_of

__all__ = ["CertificateFiles", "ensure_ca", "ensure_leaf", "principal_of"]

ORGANIZATION = "regionlink"
CA_DAYS = 3650
LEAF_DAYS = 825
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path
    key: Path


def ensure_ca(directory: Path, name: str = "regionlink-ca") -> CertificateFiles:
    """The CA in `directory`, created if missing."""
    files = CertificateFiles(directory / f"{name}.pem", directory / f"{name}.key")
    if files.cert.exists() and files.key.exists():
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(files, cert, key)
    return files


def ensure_leaf(
    authority: CertificateFiles,
    directory: Path,
    common_name: str,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    *,
    not_before: datetime.datetime | None = None,
    days: int = LEAF_DAYS,
) -> CertificateFiles:
    """A certificate for `common_name`, good as server (for `hosts`) and client, signed by
    `authority`; kept if it exists. `not_before`/`days` let tests make expired ones."""
    files = CertificateFiles(directory / f"{common_name}.pem", directory / f"{common_name}.key")
    if files.cert.exists() and files.key.exists():
        return files
    ca_cert = x509.load_pem_x509_certificate(authority.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(authority.key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(files, cert, key)
    return files


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(
    files: CertificateFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for path, data in (
        (files.key, key_bytes),
        (files.cert, cert.public_bytes(serialization.Encoding.PEM)),
    ):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
