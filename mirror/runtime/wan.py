"""WAN links between regions: a fault proxy in front of each of a region's brokers, per peer.

`[links."us-east:eu-west"]` in a topology puts a `regionlink chaos proxy` (Toxiproxy's HTTP
API) between the two regions: for each direction and each broker of the target region, a
proxy listens on its own port and forwards to that broker's named listener `from-us-east`,
which tells clients that came in that way to reach every broker of the region through its
proxy (Kafka's advertised listeners; the brokers register them with their controllers). What
crosses regions — a flow's worker writing into the other region, the write lease's probe —
uses the proxies; clients inside a region connect directly. The link's latency, jitter and
bandwidth are toxics on both streams of every proxy; drills add and remove more on all the
proxies of a direction (`chaos.drill`).

A direction's proxies are named after it: `us-east->eu-west` in front of a single-node
region (the name drills and `regionlink status` have always shown), `us-east->eu-west@broker-2`
in front of broker 2 of a region with several (not "/": names are path segments of the API's
URLs).

The plan is pure (ports come from the caller); `create_proxies` drives the API with
toxiproxy-python, as any Toxiproxy client would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from mirror.runtime.topology import TopologyConfig

LOCALHOST = "127.0.0.1"
SINGLE_NODE_ID = 1  # the node id of a single-node region's broker (`regionlink up`)


@dataclass(frozen=True)
class WanProxy:
    source: str  # the region whose traffic goes through it
    target: str  # the region whose broker it fronts
    broker: int | None  # that broker's node id; None when the region has a single node
    listen_port: int
    upstream_port: int  # the target broker's listener `from-<source>`

    @property
    def direction(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def name(self) -> str:
        return _proxy_name(self.source, self.target, self.broker)

    @property
    def listen(self) -> str:
        return f"{LOCALHOST}:{self.listen_port}"

    @property
    def upstream(self) -> str:
        return f"{LOCALHOST}:{self.upstream_port}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "link": self.direction, "source": self.source,
                "target": self.target, "broker": self.broker, "listen": self.listen,
                "upstream": self.upstream}  # fmt: skip


def in_direction(name: str, direction: str) -> bool:
    """Whether the proxy called `name` carries link direction `direction` ("a->b")."""
    return name == direction or name.startswith(f"{direction}@")


def plan_proxies(topology: TopologyConfig, port: Callable[[str], int]) -> list[WanProxy]:
    """A proxy per direction of every link and broker of its target region; `port(key)`
    gives a port kept across restarts."""
    proxies = []
    for key in sorted(topology.links):
        a, _, b = key.partition(":")
        for source, target in ((a, b), (b, a)):
            region = topology.regions[target]
            nodes = [None] if region.single_node else range(1, (region.brokers or 1) + 1)
            for node in nodes:
                proxies.append(
                    WanProxy(
                        source,
                        target,
                        node,
                        port(f"wan/{_proxy_name(source, target, node)}"),
                        port(f"{target}/broker-{node or SINGLE_NODE_ID}/from-{source}"),
                    )
                )
    return proxies


def _proxy_name(source: str, target: str, broker: int | None) -> str:
    direction = f"{source}->{target}"
    return direction if broker is None else f"{direction}@broker-{broker}"


def listener_args(proxies: list[WanProxy], region: str, broker: int) -> tuple[str, ...]:
    """`regionlink broker --listener ...` for broker `broker` (its node id) of `region`: one
    per proxy in front of it."""
    args: list[str] = []
    for proxy in proxies:
        if proxy.target == region and (proxy.broker or SINGLE_NODE_ID) == broker:
            args += ["--listener", f"from-{proxy.source}={proxy.upstream},{proxy.listen}"]
    return tuple(args)


def remote_bootstrap(proxies: list[WanProxy], source: str, target: str) -> str | None:
    """How `source` reaches `target` across the WAN, if a link joins them: the proxies of
    all of `target`'s brokers, so that any one of them up is enough to start."""
    listens = [p.listen for p in proxies if (p.source, p.target) == (source, target)]
    return ",".join(listens) or None


async def create_proxies(api: str, proxies: list[WanProxy], topology: TopologyConfig) -> None:
    """Create every proxy (if missing) with its link's toxics, through the HTTP API."""
    await anyio.to_thread.run_sync(_create_proxies, api, proxies, topology)


def _create_proxies(api: str, proxies: list[WanProxy], topology: TopologyConfig) -> None:
    server = toxiproxy_server(api)
    existing = server.proxies()
    for plan in proxies:
        proxy = existing.get(plan.name)
        if proxy is not None and (proxy.listen, proxy.upstream) != (plan.listen, plan.upstream):
            server.destroy(proxy)  # left by an earlier run on a shared Toxiproxy server
            proxy = None
        if proxy is None:
            proxy = server.create(
                upstream=plan.upstream, name=plan.name, listen=plan.listen, enabled=True
            )
        link = topology.link_between(plan.source, plan.target)
        present = {toxic.name for toxic in proxy.toxics().values()}
        for toxic in link.toxics() if link else []:
            if toxic["name"] not in present:
                proxy.add_toxic(**toxic)


def toxiproxy_server(api: str) -> Any:
    """A toxiproxy-python client for the API at HOST:PORT (it keeps the address globally)."""
    from toxiproxy import Toxiproxy

    host, _, port = api.rpartition(":")
    server = Toxiproxy()
    server.update_api_consumer(host, int(port))
    return server


def link_status(wan: dict[str, Any]) -> list[dict[str, Any]]:
    """Each proxy of the state's `wan` meta with whether it is up and its toxics now (what
    the link adds, and the faults a drill put on it); `toxics` is None if the fault proxy
    does not answer."""
    try:
        live = toxiproxy_server(wan["api"]).proxies()
    except Exception:  # requests' connection errors: the proxy process is down
        live = None
    out = []
    for proxy in wan.get("proxies", []):
        found = live.get(proxy["name"]) if live is not None else None
        toxics = None
        if found is not None:
            toxics = [
                {"name": t.name, "type": t.type, "stream": t.stream,
                 "toxicity": t.toxicity, "attributes": t.attributes}
                for t in found.toxics().values()
            ]  # fmt: skip
        out.append({**proxy, "enabled": found.enabled if found else None, "toxics": toxics})
    return out
