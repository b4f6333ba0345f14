"""`regionlink broker`'s TLS and SASL options, named after Kafka's broker settings, and the
`SecurityConfig` they make (broker/security/listeners.py; docs/security.md).

Kafka keeps certificates in keystores; regionlink takes PEM files, as Kafka's PEM keystore
settings do: `--ssl-certificate` is `ssl.keystore.certificate.chain`, `--ssl-key`
`ssl.keystore.key`, `--ssl-ca` `ssl.truststore.certificates` — paths here, not the PEM text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.kraft.grpc_tls import GrpcTls
from broker.security.listeners import (
    DEFAULT_MECHANISMS,
    ClientAuth,
    SecurityConfig,
    TlsFiles,
    parse_mechanisms,
    parse_protocol_map,
)
from broker.security.tls import server_context
from mirror.errors import CliError

if TYPE_CHECKING:
    from broker.config import BrokerConfig

ProtocolMap = Annotated[
    str | None,
    typer.Option(
        help="Each listener's security protocol, NAME:PROTOCOL,... with PLAINTEXT, SSL, "
        "SASL_PLAINTEXT or SASL_SSL (Kafka's listener.security.protocol.map). The --listen "
        "listener is named CLIENT, the others as --listener names them; names ignore case. "
        "Unmapped listeners are PLAINTEXT.",
    ),
]
SslCertificate = Annotated[
    Path | None,
    typer.Option(
        help="PEM certificate chain the TLS listeners present (Kafka's "
        "ssl.keystore.certificate.chain, as a file)."
    ),
]
SslKey = Annotated[
    Path | None,
    typer.Option(help="PEM private key of --ssl-certificate, unencrypted (ssl.keystore.key)."),
]
SslCa = Annotated[
    Path | None,
    typer.Option(
        help="PEM CA certificates that client certificates are checked against, and replicas "
        "check each other with (ssl.truststore.certificates). Several CAs may be concatenated, "
        "e.g. old and new during a rotation."
    ),
]
SslClientAuth = Annotated[
    ClientAuth,
    typer.Option(
        case_sensitive=False,
        help="Whether TLS clients must show a certificate signed by --ssl-ca "
        "(Kafka's ssl.client.auth). Its subject names the principal: User:CN=...,O=....",
    ),
]
SaslMechanisms = Annotated[
    str,
    typer.Option(
        help="SASL mechanisms the SASL listeners offer: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 "
        "(Kafka's sasl.enabled.mechanisms). Users are SCRAM credentials managed with "
        "AlterUserScramCredentials; PLAIN checks the password against them."
    ),
]
FailedAuthenticationDelayMs = Annotated[
    int,
    typer.Option(
        help="Wait this long before closing a connection whose authentication failed "
        "(Kafka's connection.failed.authentication.delay.ms)."
    ),
]
MaxFailedAuthentications = Annotated[
    int,
    typer.Option(
        help="A host that fails to authenticate this many times within "
        "--failed-authentication-window-ms has its SASL connections refused at once until "
        "then (regionlink's own; Kafka has no such limit)."
    ),
]
FailedAuthenticationWindowMs = Annotated[
    int, typer.Option(help="The window --max-failed-authentications counts in.")
]
ControllerTls = Annotated[
    bool,
    typer.Option(
        help="With --controllers: dial them with mutual TLS, showing --ssl-certificate and "
        "checking theirs against --ssl-ca (controllers started with the same --ssl-* options)."
    ),
]
ControllerSslCertificate = Annotated[
    Path | None,
    typer.Option(
        help="PEM certificate for mutual TLS on this controller's gRPC (with --ssl-key and "
        "--ssl-ca: every peer and broker must show a certificate from that CA)."
    ),
]
ControllerSslKey = Annotated[
    Path | None, typer.Option(help="PEM key of --ssl-certificate (unencrypted).")
]
ControllerSslCa = Annotated[
    Path | None,
    typer.Option(help="PEM CA certificates peers' and brokers' certificates must chain to."),
]


def controller_tls(certificate: Path | None, key: Path | None, ca: Path | None) -> GrpcTls | None:
    """The controller's --ssl-* options as GrpcTls (all three or none); CliError if a file
    is missing or only some are given."""
    given = [v for v in (certificate, key, ca) if v is not None]
    if not given:
        return None
    if certificate is None or key is None or ca is None:
        raise CliError("--ssl-certificate, --ssl-key and --ssl-ca go together")
    for path in given:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    return GrpcTls(certificate, key, ca)


InterBrokerListener = Annotated[
    str | None,
    typer.Option(
        help="The listener replicas fetch from each other through (Kafka's "
        "inter.broker.listener.name); default CLIENT. PLAINTEXT or SSL (with --ssl-ca; each "
        "broker shows its own certificate): replicas do not speak SASL yet."
    ),
]


def security_config(
    protocol_map: str | None,
    certificate: Path | None,
    key: Path | None,
    ca: Path | None,
    client_auth: ClientAuth,
    mechanisms: str,
    failed_authentication_delay_ms: int,
    max_failed_authentications: int,
    failed_authentication_window_ms: int,
    inter_broker_listener: str | None,
    controller_tls: bool = False,
) -> SecurityConfig:
    """The options as a SecurityConfig; CliError naming the option that is wrong."""
    try:
        mapping = parse_protocol_map(protocol_map or "")
    except ValueError as exc:
        raise CliError(f"--listener-security-protocol-map: {exc}") from exc
    try:
        enabled = parse_mechanisms(mechanisms)
    except ValueError as exc:
        raise CliError(f"--sasl-enabled-mechanisms: {exc}") from exc
    if (certificate is None) != (key is None):
        raise CliError("--ssl-certificate and --ssl-key go together")
    tls = None
    if certificate is not None and key is not None:
        tls = TlsFiles(certificate, key, ca, client_auth)
    elif ca is not None or client_auth is not ClientAuth.NONE:
        raise CliError("--ssl-ca and --ssl-client-auth need --ssl-certificate and --ssl-key")
    return SecurityConfig(
        protocol_map=mapping,
        tls=tls,
        sasl_mechanisms=enabled,
        failed_authentication_delay_ms=failed_authentication_delay_ms,
        max_failed_authentications=max_failed_authentications,
        failed_authentication_window_ms=failed_authentication_window_ms,
        inter_broker_listener=inter_broker_listener,
        controller_tls=controller_tls,
    )


DEFAULT_MECHANISMS_TEXT = ",".join(DEFAULT_MECHANISMS)


def check(config: BrokerConfig) -> None:
    """CliError unless the settings fit the broker's listeners and the PEM files load."""
    try:
        config.check_security()
        if config.security.tls is not None:
            server_context(config.security.tls)
    except ValueError as exc:  # TlsConfigError too
        raise CliError(str(exc)) from exc
