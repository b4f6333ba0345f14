"""How our client secures a connection: TLS and SASL settings by librdkafka's names.

The mirror's cluster tables and the topology's generated settings speak librdkafka's keys
(`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`,
`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`), so one dict configures
confluent-kafka and our own client alike. The password is kept out of `repr` so that a
settings object in a log line or a traceback does not carry it.

`authenticate` runs SaslHandshake v1 + SaslAuthenticate (KIP-152) on a fresh connection:
PLAIN (RFC 4616) or SCRAM-SHA-256/512 with broker/security/scram.py's `ScramClient`,
checking the server's signature as librdkafka does, so a broker that does not hold the
user's credential cannot pretend to.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.protocol.versions import ApiKey
from broker.security.scram import ScramClient, ScramError, ScramMechanism
from broker.security.tls import client_context

if TYPE_CHECKING:
    from broker.client.connection import KafkaConnection

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KEYS = (
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
)


class SaslAuthenticationError(Exception):
    """The broker refused our credentials, or the exchange went wrong."""


@dataclass(frozen=True)
class ClientSecurity:
    """One cluster's security settings; PLAINTEXT (the default) means none."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"security.protocol {self.protocol!r} is not one of {PROTOCOLS}")
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                raise ValueError(f"sasl.mechanism {self.mechanism!r} is not one of {MECHANISMS}")
            if not self.username or self.password is None:
                raise ValueError(f"{self.protocol} needs sasl.username and sasl.password")
        if (self.certificate is None) != (self.key is None):
            raise ValueError("ssl.certificate.location and ssl.key.location go together")

    @classmethod
    def from_librdkafka(cls, settings: Mapping[str, str]) -> ClientSecurity:
        """From librdkafka's keys (others, such as bootstrap.servers, are ignored)."""

        def path(key: str) -> Path | None:
            value = settings.get(key)
            return Path(value) if value else None

        return cls(
            protocol=settings.get("security.protocol", "PLAINTEXT").upper(),
            mechanism=settings.get("sasl.mechanism"),
            username=settings.get("sasl.username"),
            password=settings.get("sasl.password"),
            ca=path("ssl.ca.location"),
            certificate=path("ssl.certificate.location"),
            key=path("ssl.key.location"),
        )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context to dial with (None for a plaintext protocol): the broker's
        certificate must come from `ca` (the system's CAs when none is given)."""
        if not self.tls:
            return None
        if self.ca is not None:
            return client_context(self.ca, self.certificate, self.key)
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certificate is not None and self.key is not None:
            context.load_cert_chain(self.certificate, self.key)
        return context

    def librdkafka(self) -> dict[str, str]:
        """The same settings as librdkafka takes them (the password included)."""
        out = {"security.protocol": self.protocol}
        values: dict[str, Any] = {
            "sasl.mechanism": self.mechanism if self.sasl else None,
            "sasl.username": self.username if self.sasl else None,
            "sasl.password": self.password if self.sasl else None,
            "ssl.ca.location": self.ca,
            "ssl.certificate.location": self.certificate,
            "ssl.key.location": self.key,
        }
        out.update({key: str(value) for key, value in values.items() if value is not None})
        return out


async def authenticate(
    connection: KafkaConnection, security: ClientSecurity, timeout_s: float
) -> None:
    """SaslHandshake v1 then SaslAuthenticate rounds; SaslAuthenticationError if refused."""
    from broker.protocol.messages import request_builder

    assert security.mechanism is not None and security.username is not None
    assert security.password is not None
    handshake = request_builder(ApiKey.SASL_HANDSHAKE, 1).make(
        "SaslHandshakeRequest", mechanism=security.mechanism
    )
    response = await connection.request(ApiKey.SASL_HANDSHAKE, 1, handshake, timeout_s)
    if int(response.error_code) != 0:
        offered = ", ".join(response.mechanisms)
        raise SaslAuthenticationError(
            f"{connection.peer} does not offer {security.mechanism} (it offers: {offered})"
        )
    version = connection.version_for(ApiKey.SASL_AUTHENTICATE, 1)

    async def round_trip(token: bytes) -> bytes:
        body = request_builder(ApiKey.SASL_AUTHENTICATE, version).make(
            "SaslAuthenticateRequest", auth_bytes=token
        )
        answer = await connection.request(ApiKey.SASL_AUTHENTICATE, version, body, timeout_s)
        if int(answer.error_code) != 0:
            raise SaslAuthenticationError(
                f"{connection.peer} refused {security.mechanism} for user "
                f"{security.username!r}: {answer.error_message or int(answer.error_code)}"
            )
        return bytes(answer.auth_bytes)

    if security.mechanism == "PLAIN":
        await round_trip(f"\0{security.username}\0{security.password}".encode())
        return
    mechanism = ScramMechanism.named(security.mechanism)
    assert mechanism is not None
    scram = ScramClient(mechanism, security.username, security.password, secrets.token_hex(16))
    try:
        server_first = await round_trip(scram.first())
        server_final = await round_trip(scram.final(server_first))
        scram.verify(server_final)
    except (ScramError, KeyError, ValueError) as exc:
        raise SaslAuthenticationError(f"{connection.peer}: SCRAM exchange failed: {exc}") from exc
