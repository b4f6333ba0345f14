"""Which security protocol each listener speaks, and the settings TLS and SASL need:
Kafka's names, so an operator's `server.properties` knowledge carries over.

* `listener.security.protocol.map` — `NAME:PROTOCOL,...`. Names compare case-insensitively
  (Kafka upper-cases listener names), so `CLIENT:SASL_SSL` covers the default listener,
  which regionlink calls `client`. A listener missing from the map is PLAINTEXT, unless it
  is named after a protocol (`SSL`, `SASL_SSL`, ...), as in Kafka's default map.
* `ssl.keystore.certificate.chain` / `ssl.keystore.key` / `ssl.truststore.certificates` —
  Kafka's PEM keystore settings — are paths to PEM files here (`TlsFiles`).
* `ssl.client.auth` — none, requested, required.
* `sasl.enabled.mechanisms` — PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. Kafka's default is
  GSSAPI, which we do not serve; ours is the two SCRAM mechanisms (PLAIN sends the
  password itself, so it must be asked for).
* `connection.failed.authentication.delay.ms` — how long a failed authentication waits
  before the connection closes (Kafka's default 100 ms).

Pure values: nothing here opens a file or a socket (broker/security/tls.py does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from broker.security.sasl import MECHANISMS
from broker.security.scram import ScramMechanism

DEFAULT_MECHANISMS = tuple(m.mechanism_name for m in ScramMechanism)


class SecurityProtocol(Enum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class ClientAuth(Enum):
    """Kafka's `ssl.client.auth`: whether a TLS client must show a certificate."""

    NONE = "none"
    REQUESTED = "requested"
    REQUIRED = "required"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener: its certificate chain and key, and the CA certificates
    that client certificates are checked against (needed unless client auth is none)."""

    certificate: Path
    key: Path
    ca: Path | None = None
    client_auth: ClientAuth = ClientAuth.NONE


def parse_protocol_map(text: str) -> dict[str, SecurityProtocol]:
    """`NAME:PROTOCOL,...` (Kafka's listener.security.protocol.map), names upper-cased;
    ValueError saying what is wrong."""
    mapping: dict[str, SecurityProtocol] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, protocol = entry.partition(":")
        if not sep or not name:
            raise ValueError(f"expected NAME:PROTOCOL, got {entry!r}")
        try:
            value = SecurityProtocol(protocol.upper())
        except ValueError:
            known = ", ".join(p.value for p in SecurityProtocol)
            raise ValueError(f"{protocol!r} is not a security protocol ({known})") from None
        if name.upper() in mapping:
            raise ValueError(f"listener {name!r} is mapped twice")
        mapping[name.upper()] = value
    return mapping


def parse_mechanisms(text: str) -> tuple[str, ...]:
    """`PLAIN,SCRAM-SHA-256,...` (Kafka's sasl.enabled.mechanisms); ValueError if unknown."""
    names = tuple(dict.fromkeys(n.strip().upper() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in MECHANISMS]
    if unknown or not names:
        raise ValueError(
            f"unknown SASL mechanisms {unknown}; enable some of {', '.join(MECHANISMS)}"
            if unknown
            else "no SASL mechanism given"
        )
    return names


@dataclass(frozen=True)
class SecurityConfig:
    """A broker's security settings, for all its listeners."""

    protocol_map: Mapping[str, SecurityProtocol] = field(
        default_factory=lambda: MappingProxyType({})
    )
    tls: TlsFiles | None = None
    sasl_mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS
    failed_authentication_delay_ms: int = 100
    # Per source host: this many failed authentications within the window, and the host's
    # next connections to a SASL listener are refused at once until the window has passed.
    max_failed_authentications: int = 10
    failed_authentication_window_ms: int = 60_000
    # Kafka's inter.broker.listener.name: the listener replicas fetch through (None: the
    # default listener). Replicas speak TLS (with the broker's own certificate as client
    # certificate) but not SASL yet, so a region whose client listener uses SASL names a
    # PLAINTEXT or SSL listener here.
    inter_broker_listener: str | None = None
    # Dial the region's controllers with mutual TLS, showing this broker's certificate and
    # checking theirs against the CA (broker/kraft/grpc_tls.py); ours, no Kafka name.
    controller_tls: bool = False

    def protocol_of(self, listener: str) -> SecurityProtocol:
        name = listener.upper()
        if name in self.protocol_map:
            return self.protocol_map[name]
        if name in SecurityProtocol.__members__:
            return SecurityProtocol[name]
        return SecurityProtocol.PLAINTEXT

    def check(self, listeners: Iterable[str], default_listener: str, *, clustered: bool) -> None:
        """ValueError unless the settings fit the broker's listeners: every mapped name is
        a listener, TLS listeners have a certificate, client certificates have a CA, and in
        a multi-broker region replicas can reach each other (no SASL on their listener)."""
        names = {n.upper() for n in listeners}
        unknown = sorted(set(self.protocol_map) - names)
        if unknown:
            raise ValueError(
                f"listener.security.protocol.map names {unknown}, which are not listeners "
                f"(listeners: {sorted(names)})"
            )
        tls = sorted(n for n in names if self.protocol_of(n).tls)
        if tls and self.tls is None:
            raise ValueError(f"listeners {tls} use TLS: give a certificate and key")
        if self.tls is not None and self.tls.client_auth != ClientAuth.NONE and not self.tls.ca:
            raise ValueError("ssl.client.auth needs the CA certificates (ssl.truststore)")
        replication = self.inter_broker_listener or default_listener
        if replication.upper() not in names:
            raise ValueError(f"inter.broker.listener.name {replication!r} is not a listener")
        if clustered and self.protocol_of(replication).tls and (not self.tls or not self.tls.ca):
            raise ValueError(
                f"replicas fetch through listener {replication!r} over TLS: they need the CA "
                "certificates (ssl.truststore) to check each other"
            )
        if clustered and self.protocol_of(replication).sasl:
            raise ValueError(
                f"replicas fetch through listener {replication!r}, which uses SASL: they do not "
                "authenticate with SASL yet; name a PLAINTEXT or SSL listener as "
                "inter.broker.listener.name"
            )
        if self.controller_tls and (self.tls is None or self.tls.ca is None):
            raise ValueError("controller TLS needs a certificate, a key and the CA certificates")
        if self.failed_authentication_delay_ms < 0 or self.max_failed_authentications < 1:
            raise ValueError("the failed-authentication delay and limit must be positive")
