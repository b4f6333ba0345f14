"""Which flows run and which role each region holds, as failover operations leave it.

The topology file says how the company is meant to run; a failover changes that at run
time (a switchover reverses the flow, a forced failover stops it). The failover driver
writes the result here, in the state database, and the supervisor follows it: it runs the
listed flows (a reversed flow is the file's flow with source and target swapped) with the
topology epoch each runs under written into its worker's flow file, starts brokers knowing
their region's role, and tells a region that missed a role change (it was unreachable) as
soon as it answers again. No row: the topology file as it is, nothing enforced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mirror.config import FlowConfig
from mirror.failover.model import RegionRole, Role
from mirror.runtime.state import StateDB
from mirror.runtime.topology import TopologyConfig

_META_KEY = "links"

Flow = tuple[str, str]


@dataclass(frozen=True)
class LinkState:
    epoch: int
    primary: str
    roles: dict[str, RegionRole] = field(default_factory=dict)
    flows: dict[Flow, int] = field(default_factory=dict)  # running flow -> its topology epoch

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "primary": self.primary,
            "roles": {region: role.to_json() for region, role in sorted(self.roles.items())},
            "flows": [
                {"source": s, "target": t, "epoch": e} for (s, t), e in sorted(self.flows.items())
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinkState:
        return cls(
            epoch=int(data["epoch"]),
            primary=str(data["primary"]),
            roles={
                region: RegionRole.from_json({"pending": False, **role})
                for region, role in data["roles"].items()
            },
            flows={(f["source"], f["target"]): int(f["epoch"]) for f in data["flows"]},
        )


def load_links(state: StateDB) -> LinkState | None:
    value = state.meta().get(_META_KEY)
    return LinkState.from_json(value) if isinstance(value, dict) else None


def save_links(state: StateDB, links: LinkState) -> None:
    state.set_meta(**{_META_KEY: links.to_json()})


def initial_links(topology: TopologyConfig) -> LinkState:
    """Epoch 0: the file's enabled flows; roles enforced only with a write lease (a primary
    must know it is one to hold a lease), else not until the first failover operation."""
    flows = {(f.source, f.target): 0 for f in topology.flows if f.enabled}
    failover = topology.failover
    if failover is None:
        return LinkState(epoch=0, primary="", flows=flows)
    roles = {}
    if failover.lease_s is not None:
        roles = {
            failover.primary: RegionRole(Role.PRIMARY, 0),
            failover.standby: RegionRole(Role.STANDBY, 0),
        }
    return LinkState(epoch=0, primary=failover.primary, roles=roles, flows=flows)


def running_flows(topology: TopologyConfig, links: LinkState) -> list[FlowConfig]:
    """The flow configs to run, each stamped with the epoch it runs under."""
    return [
        flow_between(topology, source, target).model_copy(update={"link_epoch": epoch})
        for (source, target), epoch in sorted(links.flows.items())
    ]


def flow_between(topology: TopologyConfig, source: str, target: str) -> FlowConfig:
    """The file's flow source -> target, or its reverse with source and target swapped."""
    for flow in topology.flows:
        if (flow.source, flow.target) == (source, target):
            return flow
    for flow in topology.flows:
        if (flow.source, flow.target) == (target, source):
            return flow.model_copy(update={"source": source, "target": target})
    raise ValueError(f"topology {topology.name!r} has no flow between {source} and {target}")


def writes_mirror_topics(topology: TopologyConfig, source: str, target: str) -> bool:
    """Whether the flow source -> target writes mirror topics (identity naming onto a region
    regionlink runs: same names, same offsets) rather than keeping the exact offset map
    (prefix naming, or any flow onto an external cluster), as `MirrorConfig` decides."""
    flow = flow_between(topology, source, target)
    return flow.naming == "identity" and topology.regions[target].managed


def encode(links: LinkState) -> str:
    """A stable text form, to tell whether anything changed."""
    return json.dumps(links.to_json(), sort_keys=True)
