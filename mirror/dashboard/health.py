"""Each region's brokers as its metadata shows them: who leads what, who fell out of the ISR.

`regionlink status` counts running processes; a broker can run and still be fenced, lead
nothing, or lag out of the in-sync replicas. The topology map shows that, from one Metadata
request per region per sample (what any Kafka client sees), bounded by a timeout so a frozen
region shows as unreachable instead of stalling the sampler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from broker.client import ClusterView, KafkaClient, KafkaConnectionError, KafkaError
from broker.client.security import ClientSecurity
from mirror.config import parse_bootstrap

TIMEOUT_S = 1.5


def summarize(view: ClusterView) -> dict[str, Any]:
    """Per broker: partitions it leads, replicas it holds, replicas out of the ISR; and the
    region's partitions, under-replicated (ISR smaller than the replicas) and offline (no
    leader)."""
    brokers: dict[int, dict[str, Any]] = {
        node: {"id": node, "address": f"{host}:{port}", "leads": 0, "replicas": 0, "out_of_isr": 0}
        for node, (host, port) in sorted(view.brokers.items())
    }
    partitions = under_replicated = offline = 0
    for topic in view.topics.values():
        for info in topic.partitions.values():
            partitions += 1
            if info.leader < 0:
                offline += 1
            elif info.leader in brokers:
                brokers[info.leader]["leads"] += 1
            if len(info.isr) < len(info.replicas):
                under_replicated += 1
            for replica in info.replicas:
                if replica in brokers:
                    brokers[replica]["replicas"] += 1
                    brokers[replica]["out_of_isr"] += replica not in info.isr
    return {
        "reachable": True,
        "error": "",
        "brokers": list(brokers.values()),
        "partitions": partitions,
        "under_replicated": under_replicated,
        "offline": offline,
    }


async def region_health(bootstrap: str, security: ClientSecurity | None = None) -> dict[str, Any]:
    """`summarize` of the region's metadata, or why it could not be had."""
    error = f"no answer within {TIMEOUT_S:g} s"
    with anyio.move_on_after(TIMEOUT_S):
        try:
            async with KafkaClient(
                parse_bootstrap(bootstrap),
                client_id="regionlink-dashboard",
                security=security,
                request_timeout_s=TIMEOUT_S,
                connect_timeout_s=TIMEOUT_S,
            ) as client:
                return summarize(await client.refresh_metadata())
        except (KafkaConnectionError, KafkaError, OSError, ValueError) as exc:
            error = str(exc) or type(exc).__name__
    return {"reachable": False, "error": error, "brokers": [], "partitions": 0}


async def regions_health(
    bootstraps: Mapping[str, str], security: ClientSecurity | None = None
) -> dict[str, dict[str, Any]]:
    """Every region's health, asked at once."""
    found: dict[str, dict[str, Any]] = {}

    async def one(region: str, bootstrap: str) -> None:
        found[region] = await region_health(bootstrap, security)

    async with anyio.create_task_group() as tg:
        for region, bootstrap in bootstraps.items():
            if bootstrap:
                tg.start_soon(one, region, bootstrap)
    return found
