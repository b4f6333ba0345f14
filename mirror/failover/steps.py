"""Run one failover step against the regions and the supervisor (the driver's I/O).

Every step is idempotent: it sets values rather than toggling them, reads offsets afresh,
and waits for a condition rather than for a count of events, so the driver may run it
again after a crash. A step returns its figures (journaled as the step's detail, the
shapes `mirror/failover/report.py` reads) or raises `StepError` with one readable line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.client import ClusterView
from broker.client.data import TopicPartition
from broker.client.security import ClientSecurity
from broker.links import HEARTBEATS_TOPIC
from broker.topology import PRIMARY_ROLE, STANDBY_ROLE, Topology
from mirror.config import FlowConfig, parse_bootstrap
from mirror.copy.policy import ReplicationPolicy
from mirror.copy.topic_sync import MirroredTopic, discover
from mirror.failover import mapped, regions
from mirror.failover.divergent import save_divergent
from mirror.failover.loss import measure_loss
from mirror.failover.model import Step, StepKind, TopologyState
from mirror.offsets.checkpoints import Checkpointer, end_offsets
from mirror.offsets.source_ends import SourceEnds
from mirror.offsets.store import OffsetMapStore
from mirror.runtime.links import LinkState, flow_between, save_links, writes_mirror_topics
from mirror.runtime.state import StateDB
from mirror.runtime.topology import TopologyConfig

Detail = dict[str, Any]
T = TypeVar("T")
POLL_S = 0.1
LEASE_MARGIN_S = 0.5  # beyond the lease and one probe interval, for clocks and scheduling
DEFAULT_WAIT_S = 30.0
SUPERVISOR_TIMEOUT_S = 30.0  # a flow's workers stop or start within this
PROBE_TIMEOUT_S = 3.0


class StepError(Exception):
    """A step could not be done; the message is one line for the operator."""


@dataclass
class Context:
    """What the steps of one operation share: the topology, its regions' clients, the
    state database the supervisor follows, and the journal's view of promotions."""

    state_dir: Path
    topology: TopologyConfig
    bootstraps: dict[str, str]
    stack: AsyncExitStack
    promotion_ends: Callable[..., dict[tuple[str, int], int]]  # Journal.promotion_ends
    clients: dict[str, KafkaClient]
    security: ClientSecurity | None = None  # the admin's TLS/SASL settings ([security])

    async def client(self, region: str) -> KafkaClient:
        if region not in self.clients:
            address = parse_bootstrap(self.bootstraps[region])
            client = KafkaClient(
                address,
                client_id="regionlink-failover",
                request_timeout_s=5,
                connect_timeout_s=3,
                security=self.security,
            )
            self.clients[region] = await self.stack.enter_async_context(client)
        return self.clients[region]

    def flow(self, source: str, target: str) -> FlowConfig:
        return flow_between(self.topology, source, target)

    def mapped(self, source: str, target: str) -> bool:
        """Whether the flow keeps the exact offset map (remote topics) — not mirror topics."""
        return not writes_mirror_topics(self.topology, source, target)

    def policy(self, source: str, target: str) -> ReplicationPolicy:
        return ReplicationPolicy.for_flow(self.flow(source, target), self.topology.regions)

    async def flow_topics(self, source: str, target: str) -> list[MirroredTopic]:
        """The topics the flow source -> target mirrors (each region's heartbeats stay its own)."""
        flow = self.flow(source, target)
        topics = await discover(await self.client(source), flow, self.policy(source, target))
        return [t for t in topics if t.source_topic != HEARTBEATS_TOPIC]


async def reachable(bootstrap: str, security: ClientSecurity | None = None) -> bool:
    """Whether a region answers a metadata request within PROBE_TIMEOUT_S."""
    answer = await _ask(bootstrap, lambda client: client.refresh_metadata([]), security)
    return answer is not None


async def held_role(bootstrap: str, security: ClientSecurity | None = None) -> Topology | None:
    """The role a region enforces now, or None if it does not answer in PROBE_TIMEOUT_S."""
    return await _ask(bootstrap, regions.read_role, security)


async def _ask(
    bootstrap: str,
    question: Callable[[KafkaClient], Awaitable[T]],
    security: ClientSecurity | None = None,
) -> T | None:
    """`question`'s answer from a region, or None if it does not answer in PROBE_TIMEOUT_S."""
    try:
        with anyio.fail_after(PROBE_TIMEOUT_S):
            async with KafkaClient(
                parse_bootstrap(bootstrap), request_timeout_s=PROBE_TIMEOUT_S,
                connect_timeout_s=PROBE_TIMEOUT_S, security=security,
            ) as client:  # fmt: skip
                return await question(client)
    except (KafkaError, KafkaConnectionError, OSError, TimeoutError):
        return None


async def run_step(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    """Run `step`; `state_after` is the topology once it is done (flows, roles)."""
    try:
        return await _RUNNERS[step.kind](ctx, step, state_after)
    except (KafkaError, KafkaConnectionError, OSError) as exc:
        raise StepError(f"{step.describe()}: {exc}") from exc


def _not_enforced(step: Step) -> Detail:
    """A role change on an external cluster: nothing to set there; the operator's part."""
    return {"not_enforced": [step.region], "note": step.note()}


async def _fence(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    return await _set_role(ctx, step, Topology(step.epoch, STANDBY_ROLE, step.peer))


async def _unfence(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    return await _set_role(ctx, step, Topology(step.epoch, PRIMARY_ROLE, step.region))


async def _set_role(ctx: Context, step: Step, role: Topology) -> Detail:
    if not step.enforced:
        return _not_enforced(step)
    await regions.set_role(await ctx.client(step.region), role)
    return {"role": role.configs()}


async def _promote(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    if not step.enforced:
        return _not_enforced(step)
    client = await ctx.client(step.region)
    if state_after.role(step.peer).pending:  # the old primary could not be fenced first
        await _outwait_lease(ctx, client, step.peer)
    await regions.set_role(client, Topology(step.epoch, PRIMARY_ROLE, step.region))
    if ctx.mapped(step.peer, step.region):
        return {"topics": []}  # remote topics were always writable: no flags to change
    topics = sorted(await regions.mirror_topics(client, step.peer))
    await regions.promote_topics(client, topics)
    return {"topics": topics}


async def _outwait_lease(ctx: Context, new_primary: KafkaClient, old_primary: str) -> None:
    """With a write lease, an old primary that is alive but cut off stops taking writes
    `lease_s` after it last reached its standby — about when the flow last observed it.
    Promote only after that (plus a probe interval), so two regions never take writes."""
    failover = ctx.topology.failover
    if failover is None or failover.lease_s is None:
        return
    observed = await SourceEnds(new_primary, old_primary).latest()
    last_seen_s = max((end.observed_ms for end in observed.values()), default=0) / 1000
    margin_s = failover.lease_s / 4 + LEASE_MARGIN_S
    wait_s = min(
        last_seen_s + failover.lease_s + margin_s - time.time(), failover.lease_s + margin_s
    )
    if wait_s > 0:
        await anyio.sleep(wait_s)


async def _demote(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    """The region's copies of what the peer will mirror back become mirror topics (over a
    mapped flow there are none: the peer's topics arrive as remote topics, and the region's
    own are fenced by its standby role)."""
    if ctx.mapped(step.peer, step.region):
        return {"topics": []}
    wanted = {t.target_topic for t in await ctx.flow_topics(step.peer, step.region)}
    client = await ctx.client(step.region)
    present = set(await regions.topic_partitions(client))
    topics = sorted(wanted & present)
    await regions.demote_topics(client, topics, step.peer)
    return {"topics": topics}


async def _drain(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    """Wait until every mirrored partition ends in the target where it ended in the source
    when the step began (a topic the flow has not created on the target yet: lag); over a
    mapped flow, until the map's resume position reaches that end."""
    topics = await ctx.flow_topics(step.region, step.peer)
    source, target = await ctx.client(step.region), await ctx.client(step.peer)
    started_s, lag = time.monotonic(), -1
    counts = {t.source_topic: t.partitions for t in topics}
    source_ends = await regions.partition_ends(source, counts)
    if ctx.mapped(step.region, step.peer):
        timeout_s = step.timeout_s or DEFAULT_WAIT_S
        policy = ctx.policy(step.region, step.peer)
        _, lag = await mapped.wait_mirrored(source, target, policy, source_ends, timeout_s)
        if lag:
            raise StepError(f"lag {lag} records after {timeout_s:g} s")
        return {"partitions": len(source_ends), "records": sum(source_ends.values())}
    while time.monotonic() - started_s < (step.timeout_s or DEFAULT_WAIT_S):
        view = await target.refresh_metadata(sorted(counts))
        present = [tp for tp in sorted(source_ends) if _has(view, tp)]
        target_ends = await end_offsets(target, present)
        lag = sum(max(0, end - target_ends.get(tp, 0)) for tp, end in source_ends.items())
        if lag == 0:
            return {"partitions": len(source_ends), "records": sum(source_ends.values())}
        await anyio.sleep(POLL_S)
    raise StepError(f"lag {lag} records after {step.timeout_s or DEFAULT_WAIT_S:g} s")


def _has(view: ClusterView, tp: TopicPartition) -> bool:
    info = view.topics.get(tp[0])
    return info is not None and info.error == 0 and tp[1] < len(info.partitions)


async def _sync_groups(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    """One checkpoint pass that commits idle groups' offsets on the target (1:1 onto mirror
    topics; over a mapped flow, translated exactly through the offset map)."""
    flow = ctx.flow(step.region, step.peer).model_copy(update={"sync_group_offsets": True})
    source, target = await ctx.client(step.region), await ctx.client(step.peer)
    store = OffsetMapStore(target, step.region) if ctx.mapped(step.region, step.peer) else None
    checkpointer = Checkpointer(source, target, flow, store)  # store: translated exactly
    result = await checkpointer.run_once(await ctx.flow_topics(step.region, step.peer))
    groups = {t.group for t in result.translations}
    return {"groups": sorted(groups), "groups_synced": result.groups_synced}


async def _stop_flow(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    await _follow(ctx, state_after, step, running=False)
    return {}


async def _start_flow(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    await _follow(ctx, state_after, step, running=True)
    return {}


async def _follow(ctx: Context, state_after: TopologyState, step: Step, running: bool) -> None:
    """Hand the flows to the supervisor and wait until it runs (or retired) the flow's workers."""
    state = StateDB(ctx.state_dir)
    if not running:  # an operator's pause belongs to the flow that stops, not to its return
        state.set_paused(f"{step.region}:{step.peer}", False)
    save_links(state, link_state(state_after))
    prefix = f"{step.region}->{step.peer}/"
    deadline_s = time.monotonic() + SUPERVISOR_TIMEOUT_S
    while time.monotonic() < deadline_s:
        rows = [r for r in state.processes() if r.name.startswith(prefix)]
        if (all(r.state == "running" for r in rows) and rows) if running else not rows:
            return
        await anyio.sleep(POLL_S)
    verb = "start" if running else "stop"
    raise StepError(f"the supervisor did not {verb} {step.region}->{step.peer} in time")


def link_state(state: TopologyState) -> LinkState:
    """What the supervisor runs and enforces for a topology state."""
    return LinkState(
        epoch=state.epoch,
        primary=state.primary,
        roles=dict(state.roles),
        flows=dict(state.flows),
    )


async def _measure_loss(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    client = await ctx.client(step.peer)
    if ctx.mapped(step.region, step.peer):
        return await mapped.measure_loss(client, ctx.policy(step.region, step.peer))
    return await measure_loss(client, step.region)


async def _recover(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    """A mapped failback: the restarted flow copies the old primary's unmirrored records
    late into the remote topics; wait for it, and count them from the forced failover's
    resume positions."""
    assert step.since_epoch is not None, step
    since = ctx.promotion_ends(step.since_epoch, "source_resume")
    topics = await ctx.flow_topics(step.region, step.peer)
    timeout_s = step.timeout_s or DEFAULT_WAIT_S
    detail, lag = await mapped.recover(
        await ctx.client(step.region), await ctx.client(step.peer),
        ctx.policy(step.region, step.peer), {t.source_topic: t.partitions for t in topics},
        since, timeout_s,
    )  # fmt: skip
    if lag:
        raise StepError(f"lag {lag} records after {timeout_s:g} s")
    return detail


async def _save_divergent(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    assert step.since_epoch is not None, step
    ends = ctx.promotion_ends(step.since_epoch)
    return await save_divergent(
        await ctx.client(step.region), await ctx.client(step.peer), step.region, ends,
        step.since_epoch,
    )  # fmt: skip


async def _truncate(ctx: Context, step: Step, state_after: TopologyState) -> Detail:
    assert step.since_epoch is not None, step
    ends = ctx.promotion_ends(step.since_epoch)
    client = await ctx.client(step.region)
    now = await end_offsets(client, sorted(ends))
    cut = {tp: offset for tp, offset in ends.items() if now.get(tp, 0) > offset}
    await regions.truncate(client, step.peer, step.epoch, cut)
    return {"partitions": [{"topic": t, "partition": p, "offset": o} for (t, p), o in cut.items()]}


_Runner = Callable[[Context, Step, TopologyState], Awaitable[Detail]]
_RUNNERS: dict[StepKind, _Runner] = {
    StepKind.FENCE_SOURCE: _fence,
    StepKind.UNFENCE: _unfence,
    StepKind.DRAIN: _drain,
    StepKind.SYNC_GROUPS: _sync_groups,
    StepKind.PROMOTE: _promote,
    StepKind.STOP_FLOW: _stop_flow,
    StepKind.START_FLOW: _start_flow,
    StepKind.DEMOTE_TOPICS: _demote,
    StepKind.MEASURE_LOSS: _measure_loss,
    StepKind.SAVE_DIVERGENT: _save_divergent,
    StepKind.TRUNCATE: _truncate,
    StepKind.CATCH_UP: _drain,  # to where the (still writable) source ended at the start
    StepKind.RECOVER: _recover,
}
assert set(_RUNNERS) == set(StepKind)
