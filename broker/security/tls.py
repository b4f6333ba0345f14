"""TLS for listeners and for the broker's own connections, with Python's `ssl`.

Contexts are built once per process from PEM files (broker/security/listeners.py) and
shared by every connection. TLS 1.2 and 1.3 only, as Kafka's `ssl.enabled.protocols`
default; OpenSSL's default ciphers. A client certificate names the connection's principal
the way Kafka does (mirror/runtime/pki.py's `principal_of` is the same rule, for files).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.security.listeners import ClientAuth, TlsFiles

_VERIFY = {
    ClientAuth.NONE: ssl.CERT_NONE,
    ClientAuth.REQUESTED: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRED: ssl.CERT_REQUIRED,
}
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
}


class TlsConfigError(ValueError):
    """A certificate, key or CA file cannot be used (missing, unreadable, mismatched)."""


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The context a TLS listener accepts with; TlsConfigError naming the bad file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, files.certificate, files.key)
    if files.ca is not None:
        _load_ca(context, files.ca)
    context.verify_mode = _VERIFY[files.client_auth]
    return context


def client_context(
    ca: Path, certificate: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """The context a broker dials other brokers with (replica fetches): the server must
    hold a certificate from `ca` for the address dialled; our certificate, when given,
    names us to a listener that asks for one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_ca(context, ca)
    if certificate is not None and key is not None:
        _load_chain(context, certificate, key)
    return context


def principal_of(peer_subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """Kafka's principal for a client certificate, from `getpeercert()["subject"]`: the
    subject in RFC 2253 order (most specific first), e.g. `User:CN=worker,O=regionlink`,
    so ACLs written for Kafka carry over."""
    parts = [
        f"{_SHORT_NAMES.get(key, key)}={_escape(value)}"
        for rdn in reversed(peer_subject)
        for key, value in rdn
    ]
    return "User:" + ",".join(parts)


def principal_of_certificate(peer: dict[str, Any] | None) -> str | None:
    """The principal of a verified client certificate (`SSLObject.getpeercert()`), or None
    when the client showed none."""
    if not peer or "subject" not in peer:
        return None
    return principal_of(peer["subject"])


def _escape(value: str) -> str:
    """RFC 2253 escaping of an attribute value."""
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    return out[:-1] + "\\ " if out.endswith(" ") else out


def _load_chain(context: ssl.SSLContext, certificate: Path, key: Path) -> None:
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"certificate {certificate} with key {key}: {exc}") from exc


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"CA certificates {ca}: {exc}") from exc
