"""Raft under seeded chaos: lossy, duplicating, reordering network, partitions, crashes.

Each seed runs a 3- or 5-node cluster through faults while clients propose and nodes compact,
with safety checked at every step (raft_sim.Cluster.check and the Ready handling), then heals
everything and requires a new proposal to commit everywhere within a bound of virtual time.
`RAFT_SEED=123` replays one seed; `RAFT_SEEDS=5000` runs more than the default.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import replace

import pytest

from broker.kraft import Proposed
from tests.unit.raft_sim import CONFIG, STEP_MS, Cluster, Faults

DEFAULT_SEEDS = 300
CHAOS_MS = 4_000
LIVENESS_BOUND_MS = 5_000


def seeds() -> list[int]:
    if "RAFT_SEED" in os.environ:
        return [int(os.environ["RAFT_SEED"])]
    return list(range(int(os.environ.get("RAFT_SEEDS", DEFAULT_SEEDS))))


def chaos(seed: int) -> Cluster:
    """Run one seed's faulty phase; every step is checked for safety."""
    rng = random.Random(f"schedule:{seed}")
    size = 3 if seed % 2 == 0 else 5
    faults = Faults(
        loss=rng.choice([0.0, 0.02, 0.1, 0.3]),
        duplicate=rng.choice([0.0, 0.05, 0.2]),
        max_delay_ms=rng.choice([2, 20, 60, 120]),
        crash_in_ready=rng.choice([0.0, 0.001]),
        reboot_after_ready=rng.choice([0.0, 0.002, 0.01]),
    )
    # Small batches leave followers acknowledging part of a leader's log (figure 8 of §5.4.2).
    config = replace(CONFIG, max_entries_per_append=rng.choice([1, 3, 8]))
    cluster = Cluster(size, seed, config, faults)
    ids = cluster.ids
    proposals = 0
    for _ in range(CHAOS_MS // STEP_MS):
        roll = rng.random()
        if roll < 0.01:
            shuffled = rng.sample(ids, len(ids))
            cut = rng.randint(1, len(ids) - 1)
            cluster.partition(shuffled[:cut], shuffled[cut:])
        elif roll < 0.015:
            loner = rng.choice(ids)
            cluster.partition([i for i in ids if i != loner])  # isolate one node
        elif roll < 0.02:
            src, dst = rng.sample(ids, 2)
            cluster.cut.add((src, dst))  # one way only
        elif roll < 0.03:
            cluster.heal()
        elif roll < 0.04 and (leader := cluster.leader()) is not None:
            cluster.partition([i for i in ids if i != leader.node_id])  # depose the leader
        down = [i for i in ids if cluster.hosts[i].node is None]
        if rng.random() < 0.01 and len(down) < len(ids):
            leader = cluster.leader()
            if leader is not None and rng.random() < 0.5:
                cluster.crash(leader.node_id)
            else:
                cluster.crash(rng.choice([i for i in ids if i not in down]))
        if down and rng.random() < 0.03:
            cluster.restart(rng.choice(down))
        leaders = cluster.leaders()
        while leaders and rng.random() < 0.4:
            # Clients reach stale leaders too: that is how logs come to diverge.
            proposals += 1
            cluster.propose(b"p%d" % proposals, rng.choice(leaders).node_id)
        if rng.random() < 0.03:
            up = [i for i in ids if cluster.hosts[i].node is not None]
            if up:
                cluster.compact(rng.choice(up))
        cluster.step()
    return cluster


def heal_and_commit(cluster: Cluster) -> None:
    """After the faults end, a leader emerges and a new entry commits on every node."""
    cluster.heal()
    cluster.faults = Faults(max_delay_ms=5)
    for host in cluster.hosts.values():
        if host.node is None:
            cluster.restart(host.node_id)
    deadline_ms = cluster.now_ms + LIVENESS_BOUND_MS
    proposals: list[Proposed] = []  # one per leader term, as a client retrying would
    while cluster.now_ms < deadline_ms:
        history = cluster.history.entries
        for proposal in proposals:
            index = proposal.entry.index
            committed = index <= len(history) and history[index - 1] == proposal.entry
            if committed and all(h.machine.applied_index >= index for h in cluster.hosts.values()):
                return
        leader = cluster.leader()
        if leader is not None and all(p.entry.term != leader.term for p in proposals):
            new = cluster.propose(b"final")
            assert new is not None
            proposals.append(new)
        cluster.step()
    applied = {i: h.machine.applied_index for i, h in cluster.hosts.items()}
    roles = {i: (cluster.node(i).role, cluster.node(i).term) for i in cluster.ids}
    raise AssertionError(
        f"RAFT_SEED={cluster.seed}: nothing committed everywhere within {LIVENESS_BOUND_MS} ms "
        f"of healing: proposals={[p.entry for p in proposals]} applied={applied} roles={roles}"
    )


@pytest.mark.parametrize("seed", seeds())
def test_safety_under_chaos_then_liveness(seed: int) -> None:
    cluster = chaos(seed)
    heal_and_commit(cluster)


def test_chaos_exercises_the_interesting_paths() -> None:
    """Guard against a simulator that silently stopped injecting what it claims to."""
    totals: Counter[str] = Counter()
    for seed in range(20):
        cluster = chaos(seed)
        heal_and_commit(cluster)
        totals.update(cluster.stats)
    for stat in (
        "crashes_in_ready",
        "reboots_after_ready",
        "compactions",
        "InstallSnapshotRequest",
        "snapshots_loaded",
        "PreVoteRequest",
        "elections",
    ):
        assert totals[stat] > 0, (stat, totals)
    assert totals["proposed"] > 100, totals
