"""The mirror's configuration: clusters, the flows between them, and the worker.

The models are strict (a TOML ``"yes"`` is not a boolean) and reject unknown keys, so a typo
fails at load time with its file and line instead of silently taking a default. Topology
files reuse `ClusterConfig`, `FlowConfig` and `check_flows`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from broker.client.security import ClientSecurity
from mirror.errors import ConfigError, Loc, LocatedValueError
from mirror.tomlsource import load_toml, validate

ALIAS_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
"""Cluster aliases: never contain the default separator ".", so prefixes stay unambiguous."""

_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")

# MirrorMaker 2's defaults for topics.exclude and groups.exclude, plus our own groups.
DEFAULT_TOPICS_EXCLUDE: list[str] = [".*[-.]internal", ".*\\.replica", "__.*"]
DEFAULT_GROUPS_EXCLUDE: list[str] = ["console-consumer-.*", "connect-.*", "__.*", "regionlink-.*"]

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)

Problem = tuple[Loc, str]

PositiveSeconds = Annotated[float, Field(gt=0)]


def parse_host_port(value: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6addr]:port"`` -> ``(host, port)``; ValueError if malformed."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 address in {value!r} must be in brackets: [addr]:port")
    if not sep or not host or any(c.isspace() for c in host) or not _PORT.fullmatch(port):
        raise ValueError(f"expected host:port, got {value!r}")
    lowest = 0 if allow_port_zero else 1
    if not lowest <= int(port) <= 65535:
        raise ValueError(f"port {port} in {value!r} is outside {lowest}-65535")
    return host, int(port)


def parse_bootstrap(value: str) -> list[tuple[str, int]]:
    """``"host:port[,host:port...]"`` -> addresses; ValueError if any is malformed."""
    if not value.strip():
        raise ValueError("bootstrap must list at least one host:port")
    return [parse_host_port(address) for address in value.split(",")]


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class ClusterConfig(BaseModel):
    """How to reach one cluster (a region's brokers), and how to secure the connection.

    Security settings use librdkafka's names, written as quoted TOML keys
    (``"security.protocol" = "SASL_SSL"``) or dotted ones (``security.protocol = ...``).
    The password is never written in the file: it is read, when a worker connects, from
    ``sasl.password.file`` or from the environment variable ``sasl.password.env`` names,
    so worker files, status and logs only ever hold where it is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    bootstrap: str
    request_timeout_s: PositiveSeconds = 30.0
    # "regionlink": our own brokers, which keep mirror topics (offsets preserved, LinkAppend);
    # "kafka": any Kafka-compatible cluster, written with Produce and the exact offset map.
    kind: Literal["kafka", "regionlink"] = "kafka"
    security_protocol: SecurityProtocol = Field(default="PLAINTEXT", alias="security.protocol")
    sasl_mechanism: SaslMechanism | None = Field(default=None, alias="sasl.mechanism")
    sasl_username: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, alias="sasl.username"
    )
    sasl_password_file: str | None = Field(default=None, alias="sasl.password.file")
    sasl_password_env: str | None = Field(default=None, alias="sasl.password.env")
    ssl_ca_location: str | None = Field(default=None, alias="ssl.ca.location")
    ssl_certificate_location: str | None = Field(default=None, alias="ssl.certificate.location")
    ssl_key_location: str | None = Field(default=None, alias="ssl.key.location")

    @model_validator(mode="before")
    @classmethod
    def _flatten_dotted_keys(cls, data: object) -> object:
        """TOML reads ``security.protocol = x`` as a nested table: make it the dotted key,
        and refuse a password written in the file, saying where it belongs."""
        if not isinstance(data, dict):
            return data
        flat: dict[str, object] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict) and prefix.split(".")[0] in ("security", "sasl", "ssl"):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}", inner)
            else:
                flat[prefix] = value

        for key, value in data.items():
            walk(str(key), value)
        if "sasl.password" in flat:
            raise LocatedValueError.at(
                ("sasl.password",),
                "write the password in a file (sasl.password.file) or an environment "
                "variable (sasl.password.env), not in the configuration",
            )
        return flat

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        parse_bootstrap(value)
        return value

    @model_validator(mode="after")
    def _check_security(self) -> ClusterConfig:
        problems: list[Problem] = []
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                problems.append((("sasl.mechanism",), f"{self.security_protocol} needs it"))
            if self.sasl_username is None:
                problems.append((("sasl.username",), f"{self.security_protocol} needs it"))
            if (self.sasl_password_file is None) == (self.sasl_password_env is None):
                problems.append(
                    (
                        ("sasl.password.file",),
                        f"{self.security_protocol} needs exactly one of sasl.password.file "
                        "and sasl.password.env",
                    )
                )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            problems.append(
                (("ssl.key.location",), "ssl.certificate.location and ssl.key.location go together")
            )
        if problems:
            raise LocatedValueError(problems)
        return self

    @property
    def bootstrap_servers(self) -> list[tuple[str, int]]:
        return parse_bootstrap(self.bootstrap)

    def sasl_password(self) -> str | None:
        """The password, read now from its file or variable; ConfigError if it is missing."""
        if self.sasl_password_file is not None:
            try:
                return Path(self.sasl_password_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"sasl.password.file {self.sasl_password_file}: {exc}") from None
        if self.sasl_password_env is not None:
            value = os.environ.get(self.sasl_password_env)
            if value is None:
                raise ConfigError(
                    f"sasl.password.env: environment variable {self.sasl_password_env} is not set"
                )
            return value
        return None

    def client_security(self) -> ClientSecurity:
        """The settings our client dials this cluster with (the password read now)."""

        def path(value: str | None) -> Path | None:
            return Path(value) if value is not None else None

        sasl = self.security_protocol.startswith("SASL_")
        return ClientSecurity(
            protocol=self.security_protocol,
            mechanism=self.sasl_mechanism if sasl else None,
            username=self.sasl_username if sasl else None,
            password=self.sasl_password() if sasl else None,
            ca=path(self.ssl_ca_location),
            certificate=path(self.ssl_certificate_location),
            key=path(self.ssl_key_location),
        )


class FlowConfig(BaseModel):
    """One direction of replication, source cluster -> target cluster (MM2's ``A->B``)."""

    model_config = _MODEL_CONFIG

    source: str
    target: str
    topics: list[str] = Field(default_factory=lambda: [".*"])
    topics_exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_TOPICS_EXCLUDE))
    groups: list[str] = Field(default_factory=lambda: [".*"])
    groups_exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_GROUPS_EXCLUDE))
    naming: Literal["prefix", "identity"] = "prefix"
    separator: str = "."
    start_from: Literal["earliest", "latest"] = "earliest"
    sync_group_offsets: bool = False
    sync_topic_configs: bool = True
    # MM2's sync.topic.acls.enabled: copy the read side of the source's topic ACLs onto the
    # remote topics (mirror/copy/acl_plan.py); nothing happens where there is no authorizer.
    sync_topic_acls: bool = True
    emit_checkpoints_interval_s: PositiveSeconds = 5.0
    emit_heartbeats_interval_s: PositiveSeconds = 1.0
    refresh_topics_interval_s: PositiveSeconds = 5.0
    refresh_groups_interval_s: PositiveSeconds = 5.0
    offset_lag_max: int = Field(default=100, ge=0)
    offset_syncs_location: Literal["source", "target"] = "source"
    replication_factor: Annotated[int, Field(ge=1)] | None = None  # None: target's default
    workers: int = Field(default=1, ge=1)
    enabled: bool = True
    # The topology epoch this flow runs under (set by the runtime, 0 for a plain worker file):
    # sent with every LinkAppend, so a worker of an older epoch cannot write a mirror topic.
    link_epoch: int = Field(default=0, ge=0)

    @field_validator("source", "target")
    @classmethod
    def _check_alias(cls, alias: str) -> str:
        if not ALIAS_PATTERN.fullmatch(alias):
            raise ValueError(f"{alias!r} is not a cluster alias (letters, digits, '_', '-')")
        return alias

    @field_validator("topics", "topics_exclude", "groups", "groups_exclude")
    @classmethod
    def _check_patterns(cls, patterns: list[str]) -> list[str]:
        problems: list[Problem] = []
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(((index,), f"bad regex {pattern!r}: {exc}"))
        if problems:
            raise LocatedValueError(problems)
        return patterns

    @field_validator("separator")
    @classmethod
    def _check_separator(cls, separator: str) -> str:
        # Remote topic names are alias + separator + topic, so it must be legal in a topic name.
        if not _TOPIC_CHARS.fullmatch(separator):
            raise ValueError(
                f"separator {separator!r} must be non-empty letters, digits, '.', '_' or '-'"
            )
        return separator

    @model_validator(mode="after")
    def _check_separator_not_in_source(self) -> FlowConfig:
        if self.separator in self.source:
            raise LocatedValueError.at(
                ("separator",),
                f"separator {self.separator!r} occurs in source alias {self.source!r}, "
                "so remote topic prefixes would be ambiguous",
            )
        return self

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def spec(self) -> str:
        """``"source:target"``, as accepted by `MirrorConfig.flow`."""
        return f"{self.source}:{self.target}"


class WorkerSection(BaseModel):
    """Settings of the mirror worker process itself."""

    model_config = _MODEL_CONFIG

    control_listen: str = "127.0.0.1:0"  # gRPC control API; port 0 picks a free port
    worker_id: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("control_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_host_port(value, allow_port_zero=True)
        return value


def check_cluster_aliases(aliases: Collection[str]) -> list[Problem]:
    """Problems with cluster aliases, each located at ``(alias,)``."""
    return [
        ((alias,), f"cluster alias {alias!r} may only use letters, digits, '_' and '-'")
        for alias in aliases
        if not ALIAS_PATTERN.fullmatch(alias)
    ]


def check_flows(flows: Sequence[FlowConfig], aliases: Collection[str]) -> list[Problem]:
    """Cross-flow problems, each located relative to the flow list (``(1, "source")``).

    Disabled flows are checked too: enabling one later must not create a loop.
    """
    problems: list[Problem] = []
    known = ", ".join(sorted(aliases)) or "(none)"
    first_index: dict[tuple[str, str], int] = {}
    pairs = {(flow.source, flow.target) for flow in flows}
    for index, flow in enumerate(flows):
        for role, alias in (("source", flow.source), ("target", flow.target)):
            if alias not in aliases:
                problems.append(
                    ((index, role), f"unknown cluster {alias!r}; clusters are: {known}")
                )
        if flow.source == flow.target:
            problems.append(((index, "target"), f"flow {flow.name} copies a cluster onto itself"))
            continue
        pair = (flow.source, flow.target)
        if pair in first_index:
            problems.append(
                ((index,), f"duplicate flow {flow.name} (also flows[{first_index[pair]}])")
            )
            continue
        first_index[pair] = index
        if flow.naming == "identity":
            if (flow.target, flow.source) in pairs:
                problems.append(
                    (
                        (index, "naming"),
                        f"identity naming on {flow.name} with reverse flow "
                        f"{flow.target}->{flow.source} could copy records back and forth; "
                        'use naming = "prefix" for active-active',
                    )
                )
            elif loop := _identity_path(flows, flow.target, flow.source):
                problems.append(
                    (
                        (index, "naming"),
                        f"identity naming closes the loop {flow.source}->{'->'.join(loop)}; "
                        'use naming = "prefix" on at least one of these flows',
                    )
                )
    return problems


def _identity_path(flows: Sequence[FlowConfig], start: str, goal: str) -> list[str]:
    """Aliases on a path start -> ... -> goal made only of identity flows, or []."""
    edges: dict[str, list[str]] = {}
    for flow in flows:
        if flow.naming == "identity" and flow.source != flow.target:
            edges.setdefault(flow.source, []).append(flow.target)
    parents: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        alias = frontier.pop(0)
        if alias == goal:
            path: list[str] = []
            node: str | None = alias
            while node is not None:
                path.append(node)
                node = parents[node]
            return path[::-1]
        for nxt in edges.get(alias, []):
            if nxt not in parents:
                parents[nxt] = alias
                frontier.append(nxt)
    return []


class MirrorConfig(BaseModel):
    """A mirror configuration file: the clusters it connects and the flows it runs."""

    model_config = _MODEL_CONFIG

    clusters: dict[str, ClusterConfig]
    flows: list[FlowConfig]
    worker: WorkerSection = Field(default_factory=WorkerSection)

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("clusters")
    @classmethod
    def _check_clusters(cls, clusters: dict[str, ClusterConfig]) -> dict[str, ClusterConfig]:
        if not clusters:
            raise ValueError("at least one [clusters.ALIAS] table is required")
        if problems := check_cluster_aliases(clusters):
            raise LocatedValueError(problems)
        return clusters

    @field_validator("flows")
    @classmethod
    def _check_flow_count(cls, flows: list[FlowConfig]) -> list[FlowConfig]:
        if not flows:
            raise ValueError("at least one [[flows]] entry is required")
        return flows

    @model_validator(mode="after")
    def _check_flows(self) -> MirrorConfig:
        if problems := check_flows(self.flows, self.clusters):
            raise LocatedValueError((("flows", *loc), message) for loc, message in problems)
        return self

    @property
    def aliases(self) -> frozenset[str]:
        return frozenset(self.clusters)

    @property
    def source_path(self) -> Path | None:
        """The file this was loaded from, if any (for messages)."""
        return self._source_path

    def writes_mirror_topics(self, flow: FlowConfig) -> bool:
        """Identity naming onto a regionlink region: mirror topics, offsets preserved."""
        return flow.naming == "identity" and self.clusters[flow.target].kind == "regionlink"

    def flow(self, spec: str) -> FlowConfig:
        """The flow named ``"source:target"``; `ConfigError` if there is none."""
        source, sep, target = spec.partition(":")
        if not sep or not source or not target:
            raise ConfigError(f"expected a flow as SOURCE:TARGET, got {spec!r}")
        for flow in self.flows:
            if (flow.source, flow.target) == (source, target):
                return flow
        where = self._source_path if self._source_path is not None else "the configuration"
        flows = ", ".join(flow.spec for flow in self.flows)
        raise ConfigError(f"no flow {spec} in {where}; flows are: {flows}")


def load_mirror_config(path: Path) -> MirrorConfig:
    """Load and validate a mirror TOML file; `ConfigError` lists every problem by line."""
    data, source = load_toml(path)
    config = validate(MirrorConfig, data, source, path)
    config._source_path = path
    return config
