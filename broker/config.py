"""Settings of one broker process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from broker.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from broker.security.guard import AuthorizerSettings
from broker.security.listeners import SecurityConfig
from broker.topology import Topology

CLIENT_LISTENER = "client"


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int
    advertised: tuple[str, int]

    @classmethod
    def parse(cls, text: str) -> Listener:
        """`NAME=HOST:PORT,ADVERTISED_HOST:ADVERTISED_PORT`; ValueError saying what is wrong."""
        name, sep, rest = text.partition("=")
        addresses = rest.split(",")
        if not sep or not name or name.lower() == CLIENT_LISTENER or len(addresses) != 2:
            raise ValueError(
                f"expected NAME=HOST:PORT,ADVERTISED_HOST:PORT (NAME not {CLIENT_LISTENER!r}), "
                f"got {text!r}"
            )
        (host, port), advertised = (_host_port(a) for a in addresses)
        return cls(name, host, port, advertised)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


@dataclass(frozen=True)
class BrokerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    node_id: int = 1
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    auto_create_topics: bool = True
    default_partitions: int = 1
    group_initial_rebalance_delay_ms: int = 100
    maintenance_interval_s: float = 5.0
    # Multi-broker region: the controller quorum {node_id: (host, port)}; None = single node.
    controllers: dict[int, tuple[str, int]] | None = None
    heartbeat_interval_ms: int = 250
    replica_lag_time_max_ms: int = 30_000
    controlled_shutdown_timeout_s: float = 5.0
    # The region's topology as a supervisor saw it (--topology-epoch ...): applied at start-up
    # when newer than the persisted one, so a returning old primary starts fenced.
    startup_topology: Topology | None = None
    # The write lease (broker/lease.py): the standby's brokers to probe, and for how long a
    # primary may go without reaching one before it refuses client writes. None: no lease.
    lease_s: float | None = None
    lease_peers: tuple[tuple[str, int], ...] = ()
    lease_tls: bool = False  # probe the peers with TLS (the broker's CA and certificate)
    # Named extra listeners, as Kafka's `listeners` / `advertised.listeners`: clients that
    # connect to one are told its advertised address (e.g. a WAN link's fault proxy in front
    # of it), so they keep coming through it. Registered with the controllers in a
    # multi-broker region, so that every broker can advertise every other one's.
    listeners: tuple[Listener, ...] = ()
    # Kafka's `authorizer.class.name` (on with settings, off with None: every request is
    # allowed), `super.users` and `allow.everyone.if.no.acl.found` (broker/security/guard.py).
    authorizer: AuthorizerSettings | None = None
    # TLS and SASL per listener, Kafka's way (broker/security/listeners.py).
    security: SecurityConfig = field(default_factory=SecurityConfig)

    @property
    def listener_names(self) -> tuple[str, ...]:
        return (CLIENT_LISTENER, *(named.name for named in self.listeners))

    def check_security(self) -> None:
        """ValueError unless the security settings fit these listeners (and replication)."""
        self.security.check(self.listener_names, CLIENT_LISTENER, clustered=bool(self.controllers))

    @property
    def advertised(self) -> tuple[str, int]:
        return self.advertised_host_port(self.port)

    def advertised_host_port(self, bound_port: int) -> tuple[str, int]:
        """What clients should dial once the listener is bound (port 0 picks one)."""
        return (self.advertised_host or self.host, bound_port)
