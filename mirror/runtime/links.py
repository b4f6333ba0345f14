"""Which flows run and which region is primary, as failover operations leave it.

The topology file says how the company is meant to run; a failover changes that at run
time (a switchover reverses the flow, a forced failover stops it). The failover driver
writes the result here, in the state database, and the supervisor follows it: it runs the
listed flows (a reversed flow is the file's flow with source and target swapped), writes
the topology epoch into each worker's flow file, starts brokers knowing their region's role,
and pushes roles to regions that missed a change. No row: the topology file as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mirror.config import FlowConfig
from mirror.runtime.state import StateDB
from mirror.runtime.topology import TopologyConfig

_META_KEY = "links"


@dataclass(frozen=True)
class LinkState:
    epoch: int
    primary: str
    roles: dict[str, str] = field(default_factory=dict)  # region -> "primary" | "standby"
    flows: tuple[tuple[str, str], ...] = ()  # running flows, (source, target)

    def to_json(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "primary": self.primary,
            "roles": dict(self.roles),
            "flows": [list(flow) for flow in self.flows],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LinkState:
        roles = data.get("roles", {})
        flows = data.get("flows", [])
        assert isinstance(roles, dict) and isinstance(flows, list)
        return cls(
            epoch=int(str(data["epoch"])),
            primary=str(data.get("primary", "")),
            roles={str(k): str(v) for k, v in roles.items()},
            flows=tuple((str(s), str(t)) for s, t in flows),
        )


def load_links(state: StateDB) -> LinkState | None:
    value = state.meta().get(_META_KEY)
    return LinkState.from_json(value) if isinstance(value, dict) else None


def save_links(state: StateDB, links: LinkState) -> None:
    state.set_meta(**{_META_KEY: links.to_json()})


def initial_links(topology: TopologyConfig) -> LinkState:
    """Epoch 0: the file's enabled flows, no roles enforced yet."""
    flows = tuple((f.source, f.target) for f in topology.flows if f.enabled)
    primary = topology.failover.primary if topology.failover else ""
    return LinkState(epoch=0, primary=primary, flows=flows)


def running_flows(topology: TopologyConfig, links: LinkState) -> list[FlowConfig]:
    """The flow configs to run: the file's, or its reverse, stamped with the link epoch."""
    out = []
    for source, target in links.flows:
        flow = _find(topology, source, target)
        out.append(flow.model_copy(update={"link_epoch": links.epoch}))
    return out


def _find(topology: TopologyConfig, source: str, target: str) -> FlowConfig:
    for flow in topology.flows:
        if (flow.source, flow.target) == (source, target):
            return flow
    for flow in topology.flows:
        if (flow.source, flow.target) == (target, source):
            return flow.model_copy(update={"source": source, "target": target})
    raise ValueError(f"topology {topology.name!r} has no flow between {source} and {target}")


def encode(links: LinkState) -> str:
    """A stable text form, to tell whether anything changed."""
    return json.dumps(links.to_json(), sort_keys=True)
