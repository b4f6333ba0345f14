"""Focused Raft scenarios: elections, replication, step-down, pre-vote, repair, snapshots.

Cluster-level tests use raft_sim's fault-free world (1 ms links, every invariant checked);
the rest feed one RaftNode messages by hand to pin down exact rules.
"""

from __future__ import annotations

import random

import pytest

from broker.kraft import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshotRequest,
    NotLeader,
    PersistedState,
    PreVoteRequest,
    PreVoteResponse,
    Proposed,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
    Snapshot,
    VoteRequest,
    VoteResponse,
)
from tests.unit.raft_sim import CONFIG, Cluster

# -- helpers --------------------------------------------------------------------------------


def elected(cluster: Cluster) -> RaftNode:
    cluster.run_until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    return leader


def settle(cluster: Cluster, ms: int = 200) -> None:
    cluster.run(ms)


def entries(terms: list[int], first_index: int = 1) -> tuple[Entry, ...]:
    return tuple(
        Entry(term, first_index + i, b"e%d" % (first_index + i)) for i, term in enumerate(terms)
    )


def lone_node(persisted: PersistedState | None = None, node_id: int = 1) -> RaftNode:
    peers = [p for p in (1, 2, 3) if p != node_id]
    return RaftNode(node_id, peers, random.Random(7), CONFIG, persisted)


def make_leader(node: RaftNode) -> Ready:
    """Walk a node through pre-vote and vote with peer 2's help; the Ready of winning."""
    node.tick(0)  # the first call with a time arms the election timer
    ready = node.tick(CONFIG.election_timeout_max_ms)
    assert node.role is Role.PRE_CANDIDATE
    pre_vote = next(m for m in ready.messages if isinstance(m, PreVoteRequest) and m.dst == 2)
    now = CONFIG.election_timeout_max_ms + 1
    node.receive(PreVoteResponse(src=2, dst=node.node_id, term=pre_vote.term, granted=True), now)
    assert node.role is Role.CANDIDATE
    ready = node.receive(VoteResponse(src=2, dst=node.node_id, term=node.term, granted=True), now)
    assert node.role is Role.LEADER
    return ready


# -- elections ------------------------------------------------------------------------------


def test_three_nodes_elect_exactly_one_leader_that_everyone_follows() -> None:
    cluster = Cluster(3, seed=1)
    leader = elected(cluster)
    settle(cluster)
    assert [cluster.node(i).role for i in cluster.ids].count(Role.LEADER) == 1
    for i in cluster.ids:
        assert cluster.node(i).term == leader.term
        assert cluster.node(i).leader_id == leader.node_id


def test_a_new_leader_commits_a_noop_of_its_term_first() -> None:
    cluster = Cluster(3, seed=2)
    leader = elected(cluster)
    settle(cluster)
    assert cluster.history.entries == [Entry(leader.term, 1, kind=EntryKind.NOOP)]
    assert all(cluster.hosts[i].machine.applied_index == 1 for i in cluster.ids)


def test_single_node_cluster_leads_and_commits_alone() -> None:
    cluster = Cluster(1, seed=3)
    elected(cluster)
    proposed = cluster.propose(b"solo")
    assert proposed is not None
    # Committed in the very Ready that persists it: the driver persists before applying.
    assert cluster.applied(1)[-1] == proposed.entry


def test_pre_vote_grant_does_not_change_terms() -> None:
    node = lone_node()
    ready = node.receive(
        PreVoteRequest(src=2, dst=1, term=5, last_log_index=0, last_log_term=0), now_ms=1
    )
    assert ready.messages == (PreVoteResponse(src=1, dst=2, term=5, granted=True),)
    assert (node.term, node.voted_for, ready.persist) == (0, None, None)


def test_vote_is_persisted_in_the_same_ready_that_sends_it() -> None:
    node = lone_node()
    ready = node.receive(
        VoteRequest(src=3, dst=1, term=4, last_log_index=0, last_log_term=0), now_ms=1
    )
    assert ready.messages == (VoteResponse(src=1, dst=3, term=4, granted=True),)
    assert ready.persist is not None
    assert ready.persist.hard_state == HardState(term=4, voted_for=3, commit_index=0)
    # One vote per term.
    ready = node.receive(
        VoteRequest(src=2, dst=1, term=4, last_log_index=9, last_log_term=4), now_ms=2
    )
    assert ready.messages == (VoteResponse(src=1, dst=2, term=4, granted=False),)


def test_votes_go_only_to_candidates_with_logs_at_least_as_up_to_date() -> None:
    node = lone_node(PersistedState(HardState(term=3), entries=entries([1, 3])))
    stale = VoteRequest(src=2, dst=1, term=4, last_log_index=5, last_log_term=2)
    assert node.receive(stale, now_ms=1).messages[0] == VoteResponse(
        src=1, dst=2, term=4, granted=False
    )
    assert node.term == 4  # the term still moves on


def test_pre_vote_keeps_a_rejoining_partitioned_node_from_bumping_terms() -> None:
    cluster = Cluster(3, seed=4)
    leader = elected(cluster)
    settle(cluster)
    term = leader.term
    loner = next(i for i in cluster.ids if i != leader.node_id)
    cluster.partition([i for i in cluster.ids if i != loner], [loner])
    cluster.run(3_000)  # ten election timeouts alone
    assert cluster.node(loner).term == term
    assert cluster.node(loner).role is Role.PRE_CANDIDATE
    assert not [m for m in cluster.sent if isinstance(m, VoteRequest) and m.src == loner]
    cluster.heal()
    settle(cluster, 500)
    assert cluster.leader() is leader and leader.term == term
    assert cluster.node(loner).leader_id == leader.node_id


def test_followers_in_touch_with_a_leader_refuse_pre_votes() -> None:
    node = lone_node()
    node.receive(
        AppendEntriesRequest(
            src=2, dst=1, term=1, prev_log_index=0, prev_log_term=0, entries=(), leader_commit=0
        ),
        now_ms=10,
    )
    request = PreVoteRequest(src=3, dst=1, term=2, last_log_index=5, last_log_term=1)
    refused = node.receive(request, now_ms=10 + CONFIG.election_timeout_min_ms - 1)
    assert refused.messages == (PreVoteResponse(src=1, dst=3, term=1, granted=False),)
    granted = node.receive(request, now_ms=10 + CONFIG.election_timeout_min_ms)
    assert granted.messages == (PreVoteResponse(src=1, dst=3, term=2, granted=True),)


# -- replication ------------------------------------------------------------------------------


def test_proposals_replicate_and_commit_in_order_on_every_node() -> None:
    cluster = Cluster(5, seed=5)
    elected(cluster)
    proposed = [cluster.propose(b"v%d" % i) for i in range(20)]
    settle(cluster)
    expected = [p.entry for p in proposed if p is not None]
    assert len(expected) == 20
    for i in cluster.ids:
        assert cluster.applied(i)[1:] == expected


def test_a_follower_answers_proposals_with_the_leader_hint() -> None:
    cluster = Cluster(3, seed=6)
    leader = elected(cluster)
    settle(cluster)
    follower = next(i for i in cluster.ids if i != leader.node_id)
    result = cluster.node(follower).propose(b"x", cluster.now_ms)
    assert result == NotLeader(leader_hint=leader.node_id)


def test_a_stale_leader_steps_down_and_its_uncommitted_entries_are_replaced() -> None:
    cluster = Cluster(3, seed=7)
    old = elected(cluster)
    settle(cluster)
    others = [i for i in cluster.ids if i != old.node_id]
    cluster.partition(others, [old.node_id])
    lost = old.propose(b"lost", cluster.now_ms)  # cannot reach a majority
    assert isinstance(lost, Proposed)
    cluster.handle(cluster.hosts[old.node_id], lost.ready)
    cluster.run_until(lambda: any(cluster.node(i).role is Role.LEADER for i in others))
    new = cluster.leader()
    assert new is not None and new.term > old.term
    kept = cluster.propose(b"kept", new.node_id)
    assert kept is not None
    cluster.heal()
    settle(cluster, 500)
    assert old.role is Role.FOLLOWER and old.term == new.term
    assert old.log.term_at(lost.entry.index) != lost.entry.term
    assert lost.entry not in cluster.applied(old.node_id)
    assert kept.entry in cluster.applied(old.node_id)


def test_leader_stepping_down_when_it_cannot_hear_a_majority() -> None:
    cluster = Cluster(3, seed=8)
    leader = elected(cluster)
    cluster.partition([leader.node_id], [i for i in cluster.ids if i != leader.node_id])
    cluster.run(CONFIG.election_timeout_max_ms + 2 * CONFIG.heartbeat_interval_ms)
    assert leader.role is Role.FOLLOWER
    assert isinstance(leader.propose(b"x", cluster.now_ms), NotLeader)


def test_a_divergent_log_is_repaired_in_a_few_round_trips() -> None:
    # Nodes 1 and 2 agree (terms 1,1,1,4,4,5,5,6,6,6); node 3 kept a long uncommitted tail from
    # terms 2 and 3. Whoever of 1 and 2 wins must overwrite it, skipping a term per round trip.
    good = PersistedState(
        HardState(term=6, commit_index=3), entries=entries([1, 1, 1, 4, 4, 5, 5, 6, 6, 6])
    )
    bad = PersistedState(
        HardState(term=3, commit_index=3), entries=entries([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3])
    )
    cluster = Cluster(3, seed=9, stores={1: good, 2: good, 3: bad})
    leader = elected(cluster)
    assert leader.node_id in (1, 2)
    settle(cluster)
    assert cluster.node(3).log.entries(1, 12) == leader.log.entries(1, 12)
    rejections = [
        m
        for m in cluster.sent
        if isinstance(m, AppendEntriesResponse)
        and m.src == 3
        and not m.success
        and m.term == leader.term
    ]
    assert len(rejections) == 2, rejections  # term 3's run, then term 2's run
    assert len(cluster.applied(3)) == 11  # ten entries and the new leader's no-op


def test_a_follower_commits_only_what_the_leaders_message_verified() -> None:
    # Node 1 holds a stale tail (term 2) past index 2; a heartbeat that only vouches for index 2
    # must not commit that tail even though the leader's commit index is beyond it.
    node = lone_node(PersistedState(HardState(term=2), entries=entries([1, 1, 2, 2, 2])))
    ready = node.receive(
        AppendEntriesRequest(
            src=2, dst=1, term=3, prev_log_index=2, prev_log_term=1, entries=(), leader_commit=5
        ),
        now_ms=1,
    )
    assert node.commit_index == 2
    assert [e.index for e in ready.committed] == [1, 2]


def test_a_leader_commits_earlier_terms_only_through_an_entry_of_its_own() -> None:
    node = lone_node(PersistedState(HardState(term=2), entries=entries([1, 2])))
    make_leader(node)
    assert (node.term, node.log.last_index) == (3, 3)  # the no-op
    now = CONFIG.election_timeout_max_ms + 2
    node.receive(AppendEntriesResponse(src=2, dst=1, term=3, success=True, match_index=2), now)
    assert node.commit_index == 0  # a majority holds index 2, but it is from term 2 (§5.4.2)
    ready = node.receive(
        AppendEntriesResponse(src=2, dst=1, term=3, success=True, match_index=3), now
    )
    assert node.commit_index == 3
    assert [e.index for e in ready.committed] == [1, 2, 3]


def test_a_higher_term_in_any_response_makes_a_leader_step_down() -> None:
    node = lone_node()
    make_leader(node)
    node.receive(AppendEntriesResponse(src=3, dst=1, term=9, success=False), now_ms=1_000)
    assert (node.role, node.term, node.voted_for, node.leader_id) == (
        Role.FOLLOWER,
        9,
        None,
        None,
    )


def test_entries_from_a_stale_append_do_not_truncate_newer_ones() -> None:
    node = lone_node(PersistedState(HardState(term=1), entries=entries([1, 1, 1])))
    ready = node.receive(
        AppendEntriesRequest(
            src=2,
            dst=1,
            term=1,
            prev_log_index=0,
            prev_log_term=0,
            entries=entries([1]),
            leader_commit=0,
        ),
        now_ms=1,
    )
    assert node.log.last_index == 3 and ready.persist is None
    assert ready.messages[0] == AppendEntriesResponse(
        src=1, dst=2, term=1, success=True, match_index=1
    )


# -- snapshots and restarts -----------------------------------------------------------------


def test_a_lagging_follower_catches_up_from_the_leaders_snapshot() -> None:
    cluster = Cluster(3, seed=10)
    leader = elected(cluster)
    settle(cluster)
    lagging = next(i for i in cluster.ids if i != leader.node_id)
    cluster.crash(lagging)
    for i in range(30):
        cluster.propose(b"v%d" % i)
    settle(cluster)
    for i in cluster.ids:
        if i != lagging:
            cluster.compact(i)
    assert leader.log.snapshot.last_index == 31
    cluster.restart(lagging)
    settle(cluster, 500)
    assert cluster.stats["InstallSnapshotRequest"] >= 1
    host = cluster.hosts[lagging]
    assert host.store.snapshot == leader.log.snapshot  # durable, not just in memory
    assert host.machine.applied_index == 31 and cluster.node(lagging).commit_index == 31
    proposed = cluster.propose(b"after")
    settle(cluster)
    assert proposed is not None and cluster.applied(lagging)[-1] == proposed.entry


def test_install_snapshot_keeps_a_matching_suffix_and_drops_a_conflicting_log() -> None:
    log = entries([1, 1, 2, 2])
    node = lone_node(PersistedState(HardState(term=2), entries=log))
    snapshot = InstallSnapshotRequest(
        src=2, dst=1, term=2, snapshot=log_snapshot(index=2, term=1, data=b"s")
    )
    ready = node.receive(snapshot, now_ms=1)
    assert ready.snapshot == snapshot.snapshot and ready.committed == ()
    assert node.log.entries(3, 5) == log[2:] and node.commit_index == 2
    assert ready.persist is not None and ready.persist.truncate_from is None

    node = lone_node(PersistedState(HardState(term=2), entries=log))
    conflicting = log_snapshot(index=3, term=3, data=b"t")
    ready = node.receive(InstallSnapshotRequest(src=2, dst=1, term=3, snapshot=conflicting), 1)
    assert node.log.last_index == 3 and node.log.snapshot == conflicting
    assert ready.persist is not None and ready.persist.truncate_from == 4
    assert PersistedState(entries=log).apply(ready.persist).entries == ()


def log_snapshot(index: int, term: int, data: bytes) -> Snapshot:
    return Snapshot(last_index=index, last_term=term, data=data)


def test_restart_keeps_term_vote_log_and_replays_committed_entries() -> None:
    cluster = Cluster(3, seed=11)
    leader = elected(cluster)
    for i in range(5):
        cluster.propose(b"v%d" % i)
    settle(cluster)
    follower = next(i for i in cluster.ids if i != leader.node_id)
    cluster.compact(follower)
    cluster.propose(b"after-snapshot")
    settle(cluster)
    before = cluster.node(follower)
    state = (before.term, before.voted_for, before.commit_index, before.log.snapshot)
    log = before.log.entries(before.log.first_index, before.log.last_index + 1)
    cluster.crash(follower)
    cluster.restart(follower)
    after = cluster.node(follower)
    assert (after.term, after.voted_for, after.commit_index, after.log.snapshot) == state
    assert after.log.entries(after.log.first_index, after.log.last_index + 1) == log
    ready = after.tick(cluster.now_ms)
    assert ready.snapshot == state[3]
    assert ready.committed == log[: after.commit_index - state[3].last_index]


def test_compaction_is_refused_past_what_was_handed_out_as_committed() -> None:
    node = lone_node(PersistedState(HardState(term=1, commit_index=2), entries=entries([1, 1, 1])))
    with pytest.raises(ValueError, match="applied only 0"):
        node.compact(1, b"s")
    node.tick(0)  # hands out 1..2
    ready = node.compact(2, b"s")
    assert ready.persist is not None and ready.persist.snapshot == node.log.snapshot
    assert node.log.snapshot == Snapshot(2, 1, b"s") and node.log.first_index == 3
    with pytest.raises(ValueError):
        node.compact(3, b"s")


def test_config_rejects_timings_that_cannot_work() -> None:
    with pytest.raises(ValueError):
        RaftConfig(election_timeout_min_ms=100, heartbeat_interval_ms=100)
    with pytest.raises(ValueError):
        RaftConfig(election_timeout_min_ms=300, election_timeout_max_ms=300)
    with pytest.raises(ValueError):
        RaftConfig(max_entries_per_append=0)


def test_messages_for_someone_else_are_refused() -> None:
    node = lone_node()
    with pytest.raises(ValueError):
        node.receive(VoteResponse(src=9, dst=1, term=1, granted=True), now_ms=0)
