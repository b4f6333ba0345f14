"""What `[security]` makes in a state dir, and how each process uses it.

`regionlink up` on a topology with `[security] tls = true` keeps under
`<state dir>/security/`:

- `ca/` — the topology's CA (mirror/runtime/pki.py), which every client trusts;
- `certs/broker.*` — the brokers' certificate (127.0.0.1 and localhost), and
  `certs/admin.*` — the supervisor's client certificate, `User:CN=admin,O=regionlink`;
- `users/<user>.password` — with `sasl`, a random password per SCRAM user: `admin` (the
  supervisor, the failover tools, `regionlink endpoint`) and `worker-<source>-<target>`
  per flow and per reverse flow (which a failover starts). Files are mode 0600 and kept
  across restarts, so identities are stable.

Every broker listener then speaks SASL_SSL (SSL without `sasl`); a broker also gets an
`INTERNAL` listener on loopback, SSL with client certificates required, which replicas
fetch through (they do not speak SASL) and through which the supervisor creates the SCRAM
users with AlterUserScramCredentials — the first user needs a way in that is not SASL
(docs/security.md, "The first user"). In a region with controllers, their gRPC (Raft and
broker <-> controller) is mutual TLS with the same certificate, and a write lease probes
the standby over TLS.

With `sasl`, brokers run the authorizer (`allow.everyone.if.no.acl.found` false): the
principals of the topology's own machinery are super users — the brokers' certificate
(replicas), the admin's certificate and `admin` (the supervisor, the failover tools, the
dashboard, `regionlink endpoint`), and every worker user. Workers need CLUSTER_ACTION
(LinkAppend) and ALTER on the cluster (ACL sync), and ALTER on the cluster lets a principal
grant itself anything, so a narrower set of ACLs would protect nothing more. Every other
user — applications — gets only what ACLs grant it. With `tls` alone no client has an
identity (no client certificates on the client listeners), so the authorizer stays off.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.client import KafkaClient
from broker.client.client import check
from broker.client.security import ClientSecurity
from broker.protocol.messages import MessageBuilder
from broker.protocol.versions import ApiKey
from broker.security.scram import ScramMechanism
from mirror.config import FlowConfig, parse_bootstrap
from mirror.runtime.pki import ORGANIZATION, CertificateFiles, ensure_ca, ensure_leaf
from mirror.runtime.topology import SecurityConfig, TopologyConfig

ADMIN_USER = "admin"
INTERNAL_LISTENER = "INTERNAL"
SCRAM_ITERATIONS = 8192
_PRIVATE = 0o600


def certificate_principal(name: str) -> str:
    """The principal of a certificate `ensure_leaf` issued for `name` (RFC 2253 order)."""
    return f"User:CN={name},O={ORGANIZATION}"


def worker_user(flow: FlowConfig) -> str:
    """The SCRAM user a flow's workers log in as, in both of its regions."""
    return f"worker-{flow.source}-{flow.target}"


@dataclass(frozen=True)
class TopologySecurity:
    """The security material of one state dir (paths; files made by `ensure`)."""

    state_dir: Path
    config: SecurityConfig

    @property
    def root(self) -> Path:
        return self.state_dir / "security"

    @property
    def ca(self) -> CertificateFiles:
        return CertificateFiles(
            self.root / "ca" / "regionlink-ca.pem", self.root / "ca" / "regionlink-ca.key"
        )

    def certificate(self, name: str) -> CertificateFiles:
        return CertificateFiles(
            self.root / "certs" / f"{name}.pem", self.root / "certs" / f"{name}.key"
        )

    def password_file(self, user: str) -> Path:
        return self.root / "users" / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def ensure(self, users: list[str]) -> None:
        """The CA, certificates and (with SASL) one password file per user; existing
        files are kept."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = ensure_ca(self.ca.cert.parent)
        for name in ("broker", ADMIN_USER):
            ensure_leaf(ca, self.certificate(name).cert.parent, name)
        if self.config.sasl is None:
            return
        self.password_file(ADMIN_USER).parent.mkdir(mode=0o700, exist_ok=True)
        for user in users:
            path = self.password_file(user)
            if not path.exists():
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_urlsafe(24) + "\n")

    def controller_args(self) -> tuple[str, ...]:
        """A controller's: mutual TLS on its gRPC, with the brokers' certificate."""
        broker = self.certificate("broker")
        return (
            "--ssl-certificate", str(broker.cert),
            "--ssl-key", str(broker.key),
            "--ssl-ca", str(self.ca.cert),
        )  # fmt: skip

    def super_users(self, users: list[str]) -> tuple[str, ...]:
        """The principals the authorizer lets do anything: the brokers' and the admin's
        certificates, and the topology's SCRAM `users` (admin and the workers)."""
        certificates = (certificate_principal("broker"), certificate_principal(ADMIN_USER))
        return certificates + tuple(f"User:{user}" for user in users)

    def broker_args(
        self,
        internal_port: int,
        listeners: tuple[str, ...],
        *,
        clustered: bool = False,
        users: list[str] | None = None,
    ) -> tuple[str, ...]:
        """A broker's TLS/SASL arguments: every listener (CLIENT, the WAN ones in
        `listeners`) speaks the switch's protocol; INTERNAL is mutual TLS on loopback; in a
        region with controllers, their gRPC is mutual TLS too. With SASL, the authorizer is
        on, the topology's machinery and its `users` super users."""
        names = [arg.split("=", 1)[0] for arg in listeners if "=" in arg]
        protocol = self.config.protocol
        mapping = ",".join(
            [f"CLIENT:{protocol}", f"{INTERNAL_LISTENER}:SSL"] + [f"{n}:{protocol}" for n in names]
        )
        broker = self.certificate("broker")
        address = f"127.0.0.1:{internal_port}"
        args: tuple[str, ...] = (
            "--listener", f"{INTERNAL_LISTENER}={address},{address}",
            "--listener-security-protocol-map", mapping,
            "--inter-broker-listener-name", INTERNAL_LISTENER,
            "--ssl-certificate", str(broker.cert),
            "--ssl-key", str(broker.key),
            "--ssl-ca", str(self.ca.cert),
            "--ssl-client-auth", "required",
        )  # fmt: skip
        if self.config.sasl is not None:
            args += ("--sasl-enabled-mechanisms", self.config.sasl)
            super_users = ";".join(self.super_users(users or [ADMIN_USER]))
            args += ("--authorizer", "--super-users", super_users)
        if clustered:
            args += ("--controller-tls",)
        return args

    def client(self, user: str = ADMIN_USER) -> ClientSecurity:
        """How `user` dials a region's CLIENT (or WAN) listeners."""
        sasl = self.config.sasl is not None
        return ClientSecurity(
            protocol=self.config.protocol,
            mechanism=self.config.sasl,
            username=user if sasl else None,
            password=self.password(user) if sasl else None,
            ca=self.ca.cert,
        )

    def internal_client(self) -> ClientSecurity:
        """The supervisor on a broker's INTERNAL listener: its admin certificate."""
        admin = self.certificate(ADMIN_USER)
        return ClientSecurity("SSL", ca=self.ca.cert, certificate=admin.cert, key=admin.key)

    def cluster_settings(self, user: str) -> dict[str, Any]:
        """`ClusterConfig` fields for a worker logging in as `user` (the password by file)."""
        settings: dict[str, Any] = {
            "security_protocol": self.config.protocol,
            "ssl_ca_location": str(self.ca.cert),
        }
        if self.config.sasl is not None:
            settings |= {
                "sasl_mechanism": self.config.sasl,
                "sasl_username": user,
                "sasl_password_file": str(self.password_file(user)),
            }
        return settings


def topology_security(topology: TopologyConfig, state_dir: Path) -> TopologySecurity | None:
    """The state dir's security material, or None when the topology does not ask for TLS."""
    if not topology.security.tls:
        return None
    return TopologySecurity(state_dir.resolve(), topology.security)


def admin_client(topology: TopologyConfig, state_dir: Path) -> ClientSecurity | None:
    """How the supervisor and the failover tools dial a region (None: plaintext)."""
    security = topology_security(topology, state_dir)
    return security.client() if security is not None else None


def topology_users(topology: TopologyConfig) -> list[str]:
    """`admin` and a worker user for each flow and for its reverse, which a failover runs
    (mirror/runtime/links.py `flow_between`): every user exists before it is needed."""
    pairs = {(flow.source, flow.target) for flow in topology.flows}
    pairs |= {(target, source) for source, target in pairs}
    return [ADMIN_USER, *sorted(f"worker-{source}-{target}" for source, target in pairs)]


async def create_users(
    security: TopologySecurity, internal_bootstrap: str, users: list[str]
) -> None:
    """Upsert every user's SCRAM credential in one region, through a broker's INTERNAL
    listener (KafkaError if the region refuses one). The salted password is sent, never the
    password (AlterUserScramCredentials, as `kafka-configs` does)."""
    mechanism = ScramMechanism.named(security.config.sasl or "")
    assert mechanism is not None

    def build(b: MessageBuilder, version: int) -> Any:
        upsertions = []
        for user in users:
            salt = secrets.token_bytes(16)
            salted = mechanism.salted_password(security.password(user), salt, SCRAM_ITERATIONS)
            upsertions.append(
                b.make(
                    "ScramCredentialUpsertion",
                    name=user,
                    mechanism=mechanism.kafka_type,
                    iterations=SCRAM_ITERATIONS,
                    salt=salt,
                    salted_password=salted,
                )
            )
        return b.make(
            "AlterUserScramCredentialsRequest", deletions=(), upsertions=tuple(upsertions)
        )

    address = parse_bootstrap(internal_bootstrap)
    async with KafkaClient(
        address, security=security.internal_client(), request_timeout_s=10, connect_timeout_s=5
    ) as client:
        response = await client.call(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, build)
    for result in response.results:
        check(result.error_code, f"creating SCRAM user {result.user}", result.error_message)
