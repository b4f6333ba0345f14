"""Where clients should go: the active primary (or a named region), for scripts and discovery.

`regionlink endpoint --json` prints {"region", "primary", "client", "topics"}: `client` holds
librdkafka settings for that region — with `[security]`, the admin user's: protocol, SASL
user and password, the CA — and `topics` maps each replicated topic to its name there (the
same name with mirror topics; `<source>.<topic>` under prefix naming). The password is
printed because an admin client needs it and this runs on the operator's own machine, next
to the 0600 file it comes from; `regionlink status` never shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.links import HEARTBEATS_TOPIC
from mirror.config import parse_bootstrap
from mirror.copy.policy import ReplicationPolicy
from mirror.copy.topic_sync import discover
from mirror.errors import CliError
from mirror.failover.driver import initial_state, region_bootstraps
from mirror.failover.journal import Journal
from mirror.runtime.links import flow_between
from mirror.runtime.secure import admin_client
from mirror.runtime.status import running_topology


async def endpoint(state_dir: Path, region: str | None) -> dict[str, Any]:
    topology = running_topology(state_dir)
    journal = Journal(state_dir)
    try:
        state = journal.state(initial_state(topology))
    finally:
        journal.close()
    chosen = region or state.primary
    if chosen not in topology.regions:
        known = ", ".join(sorted(topology.regions))
        raise CliError(f"unknown region {chosen!r}; regions are: {known}")
    bootstraps = region_bootstraps(state_dir, topology)
    if not bootstraps.get(chosen):
        raise CliError(f"region {chosen} has no running broker; see: regionlink status")
    # Names as the flow from the primary gives them (to the chosen region, or the standby).
    target = state.standby if chosen == state.primary else chosen
    flow = flow_between(topology, state.primary, target)
    policy = ReplicationPolicy.for_flow(flow, topology.regions)
    address = parse_bootstrap(bootstraps[state.primary])
    security = admin_client(topology, state_dir)
    try:
        async with KafkaClient(
            address, request_timeout_s=5, connect_timeout_s=5, security=security
        ) as client:
            topics = await discover(client, flow, policy)
    except (KafkaError, KafkaConnectionError, OSError, TimeoutError) as exc:
        raise CliError(
            f"the primary {state.primary} does not answer ({exc}), so its topics cannot be "
            f"listed; if it is lost: regionlink failover --to {state.standby} --force"
        ) from None
    return {
        "region": chosen,
        "primary": state.primary,
        "client": {
            "bootstrap.servers": bootstraps[chosen],
            **(security.librdkafka() if security is not None else {}),
        },
        "topics": {
            t.source_topic: t.source_topic if chosen == state.primary else t.target_topic
            for t in topics
            if t.source_topic != HEARTBEATS_TOPIC  # each region's own
        },
    }
