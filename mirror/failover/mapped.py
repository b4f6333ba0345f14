"""Failover steps over an offset-mapped flow: remote topics and the exact offset map.

A flow with prefix naming (MM2 style: `orders` of us-east is `us-east.orders` on eu-west),
or any flow onto an external cluster, writes its target with Produce, so target offsets
are dense and not the source's. What the target holds of a source partition is then the
map's resume position at the target's end (`PartitionOffsetMap.resume_position`): the
first source offset not mirrored yet, everything below it copied or a known gap
(transaction markers, compaction). Drain, catch-up, the loss manifest and a failback's
recovery compare that position with the source's end offsets, in source offsets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from broker.client import KafkaClient
from broker.client.client import ClusterView
from broker.client.data import EARLIEST, TopicPartition, list_offsets
from mirror.copy.policy import ReplicationPolicy, is_heartbeats_topic
from mirror.failover import regions
from mirror.failover.loss import lost_range, observation_age
from mirror.failover.model import PartitionLoss
from mirror.offsets.checkpoints import end_offsets
from mirror.offsets.offset_map import PartitionOffsetMap
from mirror.offsets.source_ends import SourceEnds
from mirror.offsets.store import OffsetMapStore

POLL_S = 0.1


@dataclass(frozen=True)
class Mirrored:
    """Where a flow's target stands, per source partition."""

    target_ends: dict[TopicPartition, int]  # the remote partition's log end (absent: no topic)
    maps: dict[TopicPartition, PartitionOffsetMap]

    def position(self, tp: TopicPartition) -> int | None:
        """The first source offset not mirrored yet; None if nothing is (no map, no topic)."""
        target_end = self.target_ends.get(tp)
        offset_map = self.maps.get(tp)
        if target_end is None or offset_map is None:
            return None
        return offset_map.resume_position(target_end)

    def records(self, tp: TopicPartition, start: int, end: int) -> int:
        """How many records of source offsets [start, end) landed on the target (gaps —
        markers, compaction, retention — excluded): the target offsets between them."""
        target_end = self.target_ends.get(tp)
        offset_map = self.maps.get(tp)
        if target_end is None or offset_map is None:
            return 0
        first, last = offset_map.translate(start, target_end), offset_map.translate(end, target_end)
        return 0 if first is None or last is None else max(0, last - first)


async def mirrored(
    target: KafkaClient, policy: ReplicationPolicy, tps: list[TopicPartition]
) -> Mirrored:
    """The map's resume position of every source partition in `tps`, read from the target."""
    remote = {tp: (policy.remote_topic(tp[0]), tp[1]) for tp in tps}
    view = await target.refresh_metadata(sorted({t for t, _ in remote.values()}))
    present = [r for r in remote.values() if _exists(view, r)]
    # Ends first, then the map: a run start is persisted before the records it describes,
    # so the map read afterwards covers everything below these ends.
    ends = await end_offsets(target, present)
    store = OffsetMapStore(target, policy.source_alias)
    await store.catch_up()
    target_ends = {tp: ends[remote[tp]] for tp in tps if remote[tp] in ends}
    return Mirrored(target_ends, {tp: store.map_for(tp) for tp in tps})


def _exists(view: ClusterView, tp: TopicPartition) -> bool:
    info = view.topics.get(tp[0])
    return info is not None and info.error == 0 and tp[1] < len(info.partitions)


async def wait_mirrored(
    source: KafkaClient,
    target: KafkaClient,
    policy: ReplicationPolicy,
    source_ends: Mapping[TopicPartition, int],
    timeout_s: float,
) -> tuple[Mirrored, int]:
    """Wait until every partition is mirrored up to its end in `source_ends`; the target's
    state then, and 0 — or, after `timeout_s`, the last state and the records still behind."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        state = await mirrored(target, policy, sorted(source_ends))
        lag = await _lag(source, state, source_ends)
        if lag == 0 or time.monotonic() >= deadline_s:
            return state, lag
        await anyio.sleep(POLL_S)


async def _lag(
    source: KafkaClient, state: Mirrored, source_ends: Mapping[TopicPartition, int]
) -> int:
    behind = {tp: end for tp, end in source_ends.items() if (state.position(tp) or 0) < end}
    if not behind:
        return 0
    # Offsets the source no longer has (retention) cannot be mirrored: the copier skips them.
    starts = await _log_starts(source, sorted(behind))
    return sum(
        max(0, end - max(state.position(tp) or 0, starts.get(tp, 0))) for tp, end in behind.items()
    )


async def _log_starts(client: KafkaClient, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    by_leader: dict[int, dict[TopicPartition, int]] = {}
    for tp in tps:
        by_leader.setdefault(await client.leader_for(*tp), {})[tp] = EARLIEST
    out: dict[TopicPartition, int] = {}
    for leader, request in by_leader.items():
        for tp, (error, offset) in (await list_offsets(client, leader, request)).items():
            if error == 0:
                out[tp] = offset
    return out


async def measure_loss(new_primary: KafkaClient, policy: ReplicationPolicy) -> dict[str, Any]:
    """The measure_loss figures of a mapped flow (the shape mirror/failover/report.py reads):
    per partition, the old primary's offsets from the map's resume position to its last
    observed end."""
    observed = {
        tp: seen
        for tp, seen in (await SourceEnds(new_primary, policy.source_alias).latest()).items()
        if not is_heartbeats_topic(tp[0], policy)  # each region's heartbeats are its own
    }
    tps = sorted(observed)
    state = await mirrored(new_primary, policy, tps)
    losses = []
    for tp in tps:
        seen, have = observed[tp], state.position(tp) or 0
        if seen.end_offset <= have:
            continue
        target_end = state.target_ends.get(tp)
        remote = (policy.remote_topic(tp[0]), tp[1])
        newest_ms = (
            await regions.last_timestamp_ms(new_primary, remote, target_end)
            if target_end is not None
            else None
        )
        losses.append(lost_range(tp, have, seen, newest_ms))
    return {
        **observation_age([seen.observed_ms for seen in observed.values()]),
        "partitions": [loss.to_json() for loss in losses],
        "target_ends": [
            {"topic": policy.remote_topic(t), "partition": p, "end_offset": end}
            for (t, p), end in sorted(state.target_ends.items())
        ],
        "source_resume": [
            {"topic": t, "partition": p, "end_offset": state.position((t, p)) or 0} for t, p in tps
        ],
    }


async def recover(
    old: KafkaClient,
    new: KafkaClient,
    policy: ReplicationPolicy,
    partitions: Mapping[str, int],
    since: Mapping[TopicPartition, int],
    timeout_s: float,
) -> tuple[dict[str, Any], int]:
    """A mapped failback's recovery: wait until the restarted flow has copied everything the
    (fenced) old primary holds, then count per partition what it copied from `since` (the
    resume positions at the forced failover) — the records that were unmirrored then.
    Returns the figures and 0, or the records still behind after `timeout_s`."""
    ends = await regions.partition_ends(old, partitions)  # fenced: these are final
    state, lag = await wait_mirrored(old, new, policy, ends, timeout_s)
    if lag:
        return {}, lag
    recovered = []
    for tp, end in sorted(ends.items()):
        start = min(since.get(tp, 0), end)
        if end <= start:
            continue
        recovered.append(
            PartitionLoss(
                tp[0], tp[1], start, end - 1, state.records(tp, start, end),
                into=policy.remote_topic(tp[0]),
            ).to_json()
        )  # fmt: skip
    return {"partitions": recovered, "records": sum(r["records"] for r in recovered)}, 0
