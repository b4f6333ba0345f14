"""Topology files: a company's regions and the mirror flows between them.

A region is either *managed* (regionlink runs its brokers) or *external* (a Kafka-compatible
cluster reached at ``bootstrap``). Flows are the same `FlowConfig` tables a mirror worker file
uses and are checked by the same rules (`check_flows`), so a topology's flows can be handed to
workers unchanged with `TopologyConfig.mirror_config`. Problems are reported like the mirror
config's: one ``file:line: key: message`` line each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from mirror.config import (
    _MODEL_CONFIG,
    ClusterConfig,
    FlowConfig,
    MirrorConfig,
    PositiveSeconds,
    Problem,
    WorkerSection,
    check_cluster_aliases,
    check_flows,
    parse_bootstrap,
)
from mirror.errors import LocatedValueError
from mirror.tomlsource import load_toml, validate

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
"""Topology names: usable in directory and process names as they are."""

CONTROLLER_COUNTS = (1, 3, 5)
"""Allowed controller quorum sizes for a region with several brokers."""


class RegionConfig(BaseModel):
    """One region: brokers regionlink runs (managed) or an external cluster (``bootstrap``).

    ``brokers`` is None exactly when the region is external; a managed region without
    ``brokers`` gets 1. ``controllers`` is None or 0 for a single-node region, whose broker
    keeps its own metadata.
    """

    model_config = _MODEL_CONFIG

    brokers: int | None = Field(default=None, ge=1)
    controllers: int | None = Field(default=None, ge=0)
    bootstrap: str | None = None
    request_timeout_s: PositiveSeconds = 30.0

    @model_validator(mode="before")
    @classmethod
    def _default_brokers(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("bootstrap") is None and "brokers" not in data:
            return {**data, "brokers": 1}
        return data

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bootstrap(value)
        return value

    @model_validator(mode="after")
    def _check_shape(self) -> RegionConfig:
        problems: list[Problem] = []
        if self.bootstrap is not None:
            for key, value in (("brokers", self.brokers), ("controllers", self.controllers)):
                if value is not None:
                    problems.append(
                        (
                            (key,),
                            f"{key} is for regions regionlink runs, but bootstrap makes this "
                            "an external cluster; remove one of the two",
                        )
                    )
        elif self.brokers is not None and self.brokers > 1:
            if self.controllers is None:
                problems.append(
                    (
                        ("controllers",),
                        f"a region with brokers = {self.brokers} needs controllers = 1, 3 or 5 "
                        "(the metadata quorum; 3 survives one failure)",
                    )
                )
            elif self.controllers not in CONTROLLER_COUNTS:
                problems.append(
                    (
                        ("controllers",),
                        f"controllers must be 1, 3 or 5, got {self.controllers} "
                        "(a quorum of an even size survives no more failures than one less)",
                    )
                )
        elif self.controllers:
            problems.append(
                (
                    ("controllers",),
                    f"controllers = {self.controllers} needs brokers > 1; a single-node region "
                    "keeps its own metadata (leave controllers out)",
                )
            )
        if problems:
            raise LocatedValueError(problems)
        return self

    @property
    def managed(self) -> bool:
        """True if regionlink runs this region's brokers; False for an external cluster."""
        return self.bootstrap is None

    @property
    def single_node(self) -> bool:
        """A managed region of one broker that keeps its own metadata (no controllers)."""
        return self.managed and self.brokers == 1


class FailoverConfig(BaseModel):
    """Which region serves clients normally and which one takes over."""

    model_config = _MODEL_CONFIG

    primary: str
    standby: str
    # The write lease (docs/failover.md): a primary that cannot reach its standby for this
    # long refuses client writes by itself — no split brain, less availability in a WAN cut.
    lease_s: PositiveSeconds | None = None


class LinkConfig(BaseModel):
    """WAN conditions between two regions (`[links."us-east:eu-west"]`), both directions:
    traffic from one region to the other goes through a fault proxy that adds them."""

    model_config = _MODEL_CONFIG

    latency_ms: int = Field(default=0, ge=0, le=60_000)  # one way
    jitter_ms: int = Field(default=0, ge=0, le=60_000)
    bandwidth_kbps: int = Field(default=0, ge=0)  # kilobits per second; 0: not capped

    def toxics(self) -> list[dict[str, object]]:
        """Toxiproxy toxics (both streams) for these conditions."""
        out: list[dict[str, object]] = []
        for stream in ("upstream", "downstream"):
            if self.latency_ms or self.jitter_ms:
                attributes = {"latency": self.latency_ms, "jitter": self.jitter_ms}
                out.append({"name": f"wan-latency-{stream}", "type": "latency",
                            "stream": stream, "attributes": attributes})  # fmt: skip
            if self.bandwidth_kbps:
                rate_kb_per_s = max(1, self.bandwidth_kbps // 8)
                out.append({"name": f"wan-bandwidth-{stream}", "type": "bandwidth",
                            "stream": stream, "attributes": {"rate": rate_kb_per_s}})  # fmt: skip
        return out


class ChaosConfig(BaseModel):
    """`[chaos]`: where the WAN links' fault proxy runs."""

    model_config = _MODEL_CONFIG

    # HOST:PORT of a running Toxiproxy server (or `regionlink chaos proxy`) to create the
    # links' proxies in, instead of the one `regionlink up` starts
    toxiproxy_url: str | None = None

    @field_validator("toxiproxy_url")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        address = value.removeprefix("http://").rstrip("/")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected HOST:PORT (or http://HOST:PORT), got {value!r}")
        return address


class TracingConfig(BaseModel):
    """`[tracing]`: where the spans of the processes `regionlink up` starts go, besides any
    OTLP collector the `OTEL_*` environment names (docs/observability.md)."""

    model_config = _MODEL_CONFIG

    store: bool = True  # the built-in span store, <state dir>/spans.db, read by the dashboard
    # Parent-based: a record's own sampled flag wins, and a span without a parent is kept
    # when a record it carries was sampled. None: OTEL_TRACES_SAMPLER[_ARG] as set, else all.
    sample_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    max_mb: float = Field(default=256.0, gt=0)  # the span store's size bound
    max_age_h: float = Field(default=24.0, gt=0)  # spans older than this are dropped


class SecurityConfig(BaseModel):
    """`[security]`: one switch that secures every listener of the regions regionlink runs.

    ``tls = true`` makes `regionlink up` create a CA and certificates in the state dir and
    run every broker listener with TLS; ``sasl`` adds SCRAM users (an admin and one per
    flow, random passwords in files mode 0600) and makes the listeners SASL_SSL
    (docs/security.md). Controllers' gRPC becomes mutual TLS.
    """

    model_config = _MODEL_CONFIG

    tls: bool = False
    sasl: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None

    @model_validator(mode="after")
    def _sasl_over_tls(self) -> SecurityConfig:
        if self.sasl is not None and not self.tls:
            raise LocatedValueError.at(
                ("sasl",), "sasl needs tls = true (passwords and records cross in clear text)"
            )
        return self

    @property
    def protocol(self) -> str:
        """The security protocol of every client-facing listener."""
        if not self.tls:
            return "PLAINTEXT"
        return "SASL_SSL" if self.sasl else "SSL"


class TopologyConfig(BaseModel):
    """A topology file: named regions, the flows between them, and an optional failover pair."""

    model_config = _MODEL_CONFIG

    name: str
    regions: dict[str, RegionConfig]
    flows: list[FlowConfig] = Field(default_factory=list)
    failover: FailoverConfig | None = None
    links: dict[str, LinkConfig] = Field(default_factory=dict)
    chaos: ChaosConfig = Field(default_factory=ChaosConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"topology name {name!r} may only use lowercase letters, digits and '-', "
                "and must start with a letter or digit"
            )
        return name

    @field_validator("regions")
    @classmethod
    def _check_regions(cls, regions: dict[str, RegionConfig]) -> dict[str, RegionConfig]:
        if not regions:
            raise ValueError("at least one [regions.NAME] table is required")
        if problems := check_cluster_aliases(regions):
            raise LocatedValueError(problems)
        return regions

    @model_validator(mode="after")
    def _check_links(self) -> TopologyConfig:
        problems: list[Problem] = [
            (("flows", *loc), message) for loc, message in check_flows(self.flows, self.regions)
        ]
        if self.failover is not None:
            problems += self._failover_problems(self.failover)
        problems += self._wan_problems()
        problems += self._security_problems()
        if problems:
            raise LocatedValueError(problems)
        return self

    def _failover_problems(self, failover: FailoverConfig) -> list[Problem]:
        known = ", ".join(sorted(self.regions))
        problems: list[Problem] = [
            (("failover", role), f"unknown region {alias!r}; regions are: {known}")
            for role, alias in (("primary", failover.primary), ("standby", failover.standby))
            if alias not in self.regions
        ]
        if problems:
            return problems
        primary, standby = failover.primary, failover.standby
        if primary == standby:
            return [(("failover", "standby"), f"standby must differ from primary ({primary!r})")]
        flow = next((f for f in self.flows if (f.source, f.target) == (primary, standby)), None)
        if flow is None:
            return [
                (
                    ("failover", "standby"),
                    f"failover {primary} -> {standby} needs a flow {primary}->{standby} "
                    f'to copy the data: add [[flows]] source = "{primary}", target = "{standby}"',
                )
            ]
        if not flow.enabled:
            return [
                (
                    ("failover", "standby"),
                    f"failover {primary} -> {standby} needs the flow {flow.name}, "
                    "which has enabled = false",
                )
            ]
        return []

    def _wan_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for key in self.links:
            a, sep, b = key.partition(":")
            if not sep or a == b:
                problems.append((("links", key), 'name a link "REGION:REGION"'))
            for alias in (a, b) if sep else ():
                region = self.regions.get(alias)
                if region is None:
                    known = ", ".join(sorted(self.regions))
                    problems.append(
                        (("links", key), f"unknown region {alias!r}; regions are: {known}")
                    )
                elif not region.managed:  # its brokers' listeners are not ours to set
                    problems.append(
                        (
                            ("links", key),
                            f"WAN links need regions regionlink runs; {alias} is external",
                        )
                    )
        return problems

    def _security_problems(self) -> list[Problem]:
        """What `[security] tls = true` cannot secure: external clusters (their listeners
        and users are not the topology's)."""
        if not self.security.tls:
            return []
        problems: list[Problem] = [
            (
                ("regions", alias, "bootstrap"),
                f"[security] secures regions regionlink runs; {alias} is external "
                "(reach it with a mirror worker file's security settings instead)",
            )
            for alias in sorted(self.external_regions)
        ]
        return problems

    def link_between(self, a: str, b: str) -> LinkConfig | None:
        return self.links.get(f"{a}:{b}") or self.links.get(f"{b}:{a}")

    @property
    def source_path(self) -> Path | None:
        """The file this was loaded from, if any (for messages)."""
        return self._source_path

    @property
    def managed_regions(self) -> dict[str, RegionConfig]:
        return {alias: region for alias, region in self.regions.items() if region.managed}

    @property
    def external_regions(self) -> dict[str, RegionConfig]:
        return {alias: region for alias, region in self.regions.items() if not region.managed}

    def summary(self) -> str:
        """One line: regions (managed/external), flows and failover."""
        managed, external = len(self.managed_regions), len(self.external_regions)
        kinds = ", ".join(
            f"{count} {kind}"
            for count, kind in ((managed, "managed"), (external, "external"))
            if count
        )
        parts = [f"{_plural(len(self.regions), 'region')} ({kinds})"]
        disabled = sum(not flow.enabled for flow in self.flows)
        flows = _plural(len(self.flows), "flow") if self.flows else "no flows"
        parts.append(f"{flows} ({disabled} disabled)" if disabled else flows)
        if self.failover is None:
            parts.append("no failover")
        else:
            parts.append(f"failover {self.failover.primary} → {self.failover.standby}")
        return f'topology "{self.name}": ' + ", ".join(parts)

    def mirror_config(
        self, bootstraps: Mapping[str, str], *, worker: WorkerSection | None = None
    ) -> MirrorConfig:
        """The mirror worker configuration for all of this topology's flows.

        ``bootstraps`` gives the runtime ``host:port[,...]`` of each managed region (external
        regions use their own ``bootstrap``; entries for them are ignored). Every region
        becomes a cluster and the flows are kept as they are, disabled ones included.
        ValueError if a managed region has no bootstrap or there are no flows.
        """
        missing = sorted(alias for alias in self.managed_regions if alias not in bootstraps)
        if missing:
            raise ValueError(
                f"no bootstrap for managed region(s) {', '.join(missing)} of topology {self.name!r}"
            )
        if not self.flows:
            raise ValueError(f"topology {self.name!r} has no flows: there is nothing to mirror")
        clusters = {
            alias: ClusterConfig(
                bootstrap=region.bootstrap if region.bootstrap is not None else bootstraps[alias],
                request_timeout_s=region.request_timeout_s,
                kind="regionlink" if region.managed else "kafka",
            )
            for alias, region in self.regions.items()
        }
        config = MirrorConfig(
            clusters=clusters,
            flows=list(self.flows),
            worker=worker if worker is not None else WorkerSection(),
        )
        config._source_path = self._source_path
        return config


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def load_topology(path: Path) -> TopologyConfig:
    """Load and validate a topology TOML file; `ConfigError` lists every problem by line."""
    data, source = load_toml(path)
    topology = validate(TopologyConfig, data, source, path)
    topology._source_path = path
    return topology
