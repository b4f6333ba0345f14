"""A Raft node as a pure state machine: messages and time in, a `Ready` out.

No sockets, no clock and no randomness of its own (the driver passes a seeded random.Random),
so tests and simulations drive it deterministically. Besides the paper's Raft it has the
thesis' pre-vote (§9.6) and leader stickiness (§4.2.3): a node rejoining from a partition
cannot bump terms and depose a healthy leader; check-quorum (§6.2): a leader that has not
heard from a majority for an election timeout steps down, so clients look elsewhere; and a
no-op entry on election so a new leader can commit (§5.4.2, §8). Membership is fixed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from broker.kraft.config import RaftConfig
from broker.kraft.log import RaftLog
from broker.kraft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Message,
    PreVoteRequest,
    PreVoteResponse,
    Snapshot,
    VoteRequest,
    VoteResponse,
)
from broker.kraft.storage import HardState, Persist, PersistedState


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Ready:
    """One step's output. Handle Readies in order: make `persist` durable first, then send
    `messages`; the state machine resets to `snapshot` (if any), then applies `committed`."""

    persist: Persist | None = None
    messages: tuple[Message, ...] = ()
    snapshot: Snapshot | None = None
    committed: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class NotLeader:
    leader_hint: int | None


@dataclass(frozen=True, slots=True)
class Proposed:
    """Appended at (term, index). It is committed when an entry at that index commits with the
    same term; a different term there means it was lost with its leader (retry it)."""

    entry: Entry
    ready: Ready


@dataclass(slots=True)
class _Progress:
    """The leader's view of one follower (§5.3). While probing, one append per heartbeat or
    reply finds where the logs agree; once they do, appends stream without waiting for acks."""

    next_index: int
    last_ack_ms: int
    match_index: int = 0
    probing: bool = True


class RaftNode:
    def __init__(
        self,
        node_id: int,
        peers: Iterable[int],
        rng: random.Random,
        config: RaftConfig,
        persisted: PersistedState | None = None,
    ) -> None:
        state = persisted or PersistedState()
        self._id = node_id
        self._peers = tuple(sorted(set(peers)))
        assert node_id not in self._peers, (node_id, self._peers)
        self._quorum = (len(self._peers) + 1) // 2 + 1
        self._rng = rng
        self._config = config
        self._log = RaftLog(state.snapshot, state.entries)
        hard = state.hard_state
        self._term, self._voted_for, self._commit = hard.term, hard.voted_for, hard.commit_index
        self._stable_hard = hard
        assert self._log.snapshot.last_index <= self._commit <= self._log.last_index, hard
        assert self._log.last_term <= self._term, (self._log.last_term, hard)
        # The state machine is rebuilt from the snapshot plus the committed entries after it.
        self._applied = self._log.snapshot.last_index
        self._snapshot_to_apply = state.snapshot if self._applied else None
        self._role = Role.FOLLOWER
        self._leader_id: int | None = None
        self._now_ms = 0
        self._election_deadline_ms: int | None = None  # armed by the first call that has a time
        self._leader_contact_ms: int | None = None
        self._votes: set[int] = set()
        self._progress: dict[int, _Progress] = {}
        self._heartbeat_due_ms = 0
        self._outbox: list[Message] = []

    # -- inspection -------------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def voted_for(self) -> int | None:
        return self._voted_for

    @property
    def leader_id(self) -> int | None:
        return self._leader_id

    @property
    def commit_index(self) -> int:
        return self._commit

    @property
    def log(self) -> RaftLog:
        """For inspection only: mutating it bypasses the persistence bookkeeping."""
        return self._log

    # -- inputs ----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> Ready:
        """Let time pass: heartbeats and check-quorum for a leader, elections for the others.
        `now_ms` should be monotonic; a step back counts as no time passing."""
        self._advance(now_ms)
        if self._role is Role.LEADER:
            if not self._has_recent_quorum():
                self._become_follower(self._term, None)
            elif self._now_ms >= self._heartbeat_due_ms:
                self._heartbeat_due_ms = self._now_ms + self._config.heartbeat_interval_ms
                for peer in self._peers:
                    self._send_append(peer, retransmit=True)
        elif self._election_deadline_ms is not None and self._now_ms >= self._election_deadline_ms:
            self._start_pre_vote()
        return self._ready()

    def receive(self, message: Message, now_ms: int) -> Ready:
        if message.dst != self._id or message.src not in self._peers:
            raise ValueError(f"node {self._id} with peers {self._peers} got {message}")
        self._advance(now_ms)
        if message.term > self._term and self._step_up(message):
            return self._ready()
        match message:
            case PreVoteRequest():
                self._on_pre_vote_request(message)
            case PreVoteResponse():
                self._on_pre_vote_response(message)
            case VoteRequest():
                self._on_vote_request(message)
            case VoteResponse():
                self._on_vote_response(message)
            case AppendEntriesRequest():
                self._on_append_entries(message)
            case AppendEntriesResponse():
                self._on_append_response(message)
            case InstallSnapshotRequest():
                self._on_install_snapshot(message)
            case InstallSnapshotResponse():
                self._on_install_response(message)
        return self._ready()

    def propose(self, data: bytes, now_ms: int) -> Proposed | NotLeader:
        self._advance(now_ms)
        if self._role is not Role.LEADER:
            return NotLeader(self._leader_id)
        entry = Entry(self._term, self._log.last_index + 1, data)
        self._log.append((entry,))
        for peer, progress in self._progress.items():
            if not progress.probing:
                self._send_append(peer)
        self._maybe_commit()
        return Proposed(entry, self._ready())

    def compact(self, up_to_index: int, snapshot_data: bytes) -> Ready:
        """Replace the log through `up_to_index` (already handed out as committed) with the
        application's snapshot of its state there. Followers behind it get the snapshot."""
        if up_to_index > self._applied:
            raise ValueError(f"cannot compact to {up_to_index}: applied only {self._applied}")
        if up_to_index > self._log.snapshot.last_index:
            self._log.compact(up_to_index, snapshot_data)
        return self._ready()

    # -- time and roles --------------------------------------------------------------------

    def _advance(self, now_ms: int) -> None:
        self._now_ms = max(self._now_ms, now_ms)
        if self._election_deadline_ms is None:
            self._reset_election_timer()

    def _reset_election_timer(self) -> None:
        timeout_ms = self._rng.randint(
            self._config.election_timeout_min_ms, self._config.election_timeout_max_ms
        )
        self._election_deadline_ms = self._now_ms + timeout_ms

    def _in_lease(self) -> bool:
        """Has this node heard from a live leader recently? Then it will not help depose it."""
        if self._role is Role.LEADER:
            return True
        return (
            self._leader_id is not None
            and self._leader_contact_ms is not None
            and self._now_ms - self._leader_contact_ms < self._config.election_timeout_min_ms
        )

    def _has_recent_quorum(self) -> bool:
        window_ms = self._config.election_timeout_max_ms
        recent = sum(
            1 for p in self._progress.values() if self._now_ms - p.last_ack_ms <= window_ms
        )
        return recent + 1 >= self._quorum

    def _step_up(self, message: Message) -> bool:
        """React to a higher term; True if the message is to be dropped instead."""
        match message:
            case PreVoteRequest() | PreVoteResponse(granted=True):
                return False  # pre-votes change no one's term
            case VoteRequest() if self._in_lease():
                # A healthy leader exists: don't let a disruptive candidate bump our term.
                self._send(
                    VoteResponse(src=self._id, dst=message.src, term=self._term, granted=False)
                )
                return True
            case AppendEntriesRequest() | InstallSnapshotRequest():
                self._become_follower(message.term, message.src)
            case _:
                self._become_follower(message.term, None)
        return False

    def _become_follower(self, term: int, leader_id: int | None) -> None:
        assert term >= self._term, (term, self._term)
        if term > self._term:
            self._term, self._voted_for = term, None
        self._role = Role.FOLLOWER
        self._leader_id = leader_id
        self._votes.clear()
        self._progress.clear()
        self._reset_election_timer()

    def _start_pre_vote(self) -> None:
        self._role = Role.PRE_CANDIDATE
        self._leader_id = None
        self._votes = {self._id}
        self._reset_election_timer()
        if len(self._votes) >= self._quorum:
            self._start_election()
            return
        for peer in self._peers:
            self._send(
                PreVoteRequest(
                    src=self._id,
                    dst=peer,
                    term=self._term + 1,
                    last_log_index=self._log.last_index,
                    last_log_term=self._log.last_term,
                )
            )

    def _start_election(self) -> None:
        self._term += 1
        self._voted_for = self._id
        self._role = Role.CANDIDATE
        self._votes = {self._id}
        self._reset_election_timer()
        if len(self._votes) >= self._quorum:
            self._become_leader()
            return
        for peer in self._peers:
            self._send(
                VoteRequest(
                    src=self._id,
                    dst=peer,
                    term=self._term,
                    last_log_index=self._log.last_index,
                    last_log_term=self._log.last_term,
                )
            )

    def _become_leader(self) -> None:
        self._role = Role.LEADER
        self._leader_id = self._id
        self._votes.clear()
        next_index = self._log.last_index + 1
        self._progress = {p: _Progress(next_index, self._now_ms) for p in self._peers}
        # Entries of earlier terms commit only under one of our own (§5.4.2).
        self._log.append((Entry(self._term, next_index, kind=EntryKind.NOOP),))
        self._heartbeat_due_ms = self._now_ms + self._config.heartbeat_interval_ms
        for peer in self._peers:
            self._send_append(peer)
        self._maybe_commit()

    # -- elections -------------------------------------------------------------------------

    def _on_pre_vote_request(self, m: PreVoteRequest) -> None:
        granted = (
            m.term > self._term
            and not self._in_lease()
            and self._log.is_up_to_date(m.last_log_term, m.last_log_index)
        )
        term = m.term if granted else self._term
        self._send(PreVoteResponse(src=self._id, dst=m.src, term=term, granted=granted))

    def _on_pre_vote_response(self, m: PreVoteResponse) -> None:
        if self._role is Role.PRE_CANDIDATE and m.granted and m.term == self._term + 1:
            self._votes.add(m.src)
            if len(self._votes) >= self._quorum:
                self._start_election()

    def _on_vote_request(self, m: VoteRequest) -> None:
        granted = (
            m.term == self._term
            and self._voted_for in (None, m.src)
            and self._log.is_up_to_date(m.last_log_term, m.last_log_index)
        )
        if granted:
            self._voted_for = m.src
            self._reset_election_timer()
        self._send(VoteResponse(src=self._id, dst=m.src, term=self._term, granted=granted))

    def _on_vote_response(self, m: VoteResponse) -> None:
        if self._role is Role.CANDIDATE and m.term == self._term and m.granted:
            self._votes.add(m.src)
            if len(self._votes) >= self._quorum:
                self._become_leader()

    # -- replication, follower side --------------------------------------------------------

    def _heard_from_leader(self, m: AppendEntriesRequest | InstallSnapshotRequest) -> None:
        assert m.term == self._term
        assert self._role is not Role.LEADER, f"two leaders in term {m.term}: {self._id}, {m.src}"
        if self._role is not Role.FOLLOWER or self._leader_id != m.src:
            self._become_follower(m.term, m.src)
        self._leader_contact_ms = self._now_ms
        self._reset_election_timer()

    def _on_append_entries(self, m: AppendEntriesRequest) -> None:
        if m.term < self._term:
            # Tell a stale leader about the newer term so it steps down.
            self._send(
                AppendEntriesResponse(
                    src=self._id, dst=m.src, term=self._term, success=False, rejected_index=0
                )
            )
            return
        self._heard_from_leader(m)
        assert all(e.index == m.prev_log_index + 1 + i for i, e in enumerate(m.entries)), m
        prev_index, entries = m.prev_log_index, m.entries
        if prev_index < self._commit:
            # Our committed prefix matches every later leader's log: skip what it covers
            # (it may be compacted, so there may be no term to compare).
            entries = entries[self._commit - prev_index :]
            prev_index = self._commit
        else:
            local_term = self._log.term_at(prev_index)
            if local_term != m.prev_log_term:
                assert prev_index > self._commit, f"committed entry {prev_index} differs"
                self._reject_append(m, local_term)
                return
        for i, entry in enumerate(entries):
            existing = self._log.term_at(entry.index)
            if existing == entry.term:
                continue
            if existing is not None:
                assert entry.index > self._commit, f"truncating committed entry {entry.index}"
                self._log.truncate(entry.index)
            self._log.append(entries[i:])
            break
        last_verified = prev_index + len(entries)
        self._commit = max(self._commit, min(m.leader_commit, last_verified))
        self._send(
            AppendEntriesResponse(
                src=self._id, dst=m.src, term=self._term, success=True, match_index=last_verified
            )
        )

    def _reject_append(self, m: AppendEntriesRequest, local_term: int | None) -> None:
        if local_term is None:  # our log ends before prev_log_index
            conflict_index = self._log.last_index + 1
        else:
            conflict_index = max(self._log.first_index_of_term(m.prev_log_index), self._commit + 1)
        self._send(
            AppendEntriesResponse(
                src=self._id,
                dst=m.src,
                term=self._term,
                success=False,
                rejected_index=m.prev_log_index,
                conflict_index=conflict_index,
                conflict_term=local_term,
            )
        )

    def _on_install_snapshot(self, m: InstallSnapshotRequest) -> None:
        if m.term < self._term:
            self._send(
                InstallSnapshotResponse(src=self._id, dst=m.src, term=self._term, match_index=0)
            )
            return
        self._heard_from_leader(m)
        snapshot = m.snapshot
        if snapshot.last_index > self._commit:
            self._log.install(snapshot)
            self._commit = self._applied = snapshot.last_index
            self._snapshot_to_apply = snapshot
        self._send(
            InstallSnapshotResponse(
                src=self._id, dst=m.src, term=self._term, match_index=self._commit
            )
        )

    # -- replication, leader side ----------------------------------------------------------

    def _send_append(self, peer: int, *, retransmit: bool = False) -> None:
        progress = self._progress[peer]
        if retransmit and not progress.probing:
            progress.next_index = progress.match_index + 1  # resend what may have been lost
        snapshot = self._log.snapshot
        if progress.next_index <= snapshot.last_index:
            progress.probing = True
            self._send(
                InstallSnapshotRequest(src=self._id, dst=peer, term=self._term, snapshot=snapshot)
            )
            return
        prev_index = progress.next_index - 1
        prev_term = self._log.term_at(prev_index)
        assert prev_term is not None, (peer, progress)
        end = min(
            progress.next_index + self._config.max_entries_per_append, self._log.last_index + 1
        )
        entries = self._log.entries(progress.next_index, end)
        self._send(
            AppendEntriesRequest(
                src=self._id,
                dst=peer,
                term=self._term,
                prev_log_index=prev_index,
                prev_log_term=prev_term,
                entries=entries,
                leader_commit=self._commit,
            )
        )
        if not progress.probing:
            progress.next_index = end

    def _on_append_response(self, m: AppendEntriesResponse) -> None:
        if self._role is not Role.LEADER or m.term != self._term:
            return
        progress = self._progress[m.src]
        progress.last_ack_ms = self._now_ms
        if m.success:
            self._acknowledged(m.src, progress, m.match_index)
            return
        if m.rejected_index <= progress.match_index:
            return  # a reply to an append older than what the follower has since acknowledged
        retry = m.conflict_index
        if m.conflict_term is not None:
            last_of_term = self._log.last_index_of_term(m.conflict_term)
            if last_of_term is not None:
                retry = last_of_term + 1
        # Never skip past the rejected point, never go back over what is known to match.
        retry = min(retry, progress.next_index, m.rejected_index)
        progress.next_index = max(retry, progress.match_index + 1)
        progress.probing = True
        self._send_append(m.src)

    def _on_install_response(self, m: InstallSnapshotResponse) -> None:
        if self._role is not Role.LEADER or m.term != self._term:
            return
        progress = self._progress[m.src]
        progress.last_ack_ms = self._now_ms
        self._acknowledged(m.src, progress, m.match_index)

    def _acknowledged(self, peer: int, progress: _Progress, match_index: int) -> None:
        assert match_index <= self._log.last_index, (peer, match_index)
        if match_index > progress.match_index:
            progress.match_index = match_index
            self._maybe_commit()
        progress.next_index = max(progress.next_index, progress.match_index + 1)
        if progress.probing and progress.next_index == progress.match_index + 1:
            progress.probing = False
        if not progress.probing and progress.next_index <= self._log.last_index:
            self._send_append(peer)

    def _maybe_commit(self) -> None:
        # The leader's own log counts: it is durable before the appends that others ack.
        matches = [self._log.last_index, *(p.match_index for p in self._progress.values())]
        matches.sort(reverse=True)
        candidate = matches[self._quorum - 1]  # the highest index a majority holds
        if candidate > self._commit and self._log.term_at(candidate) == self._term:
            self._commit = candidate

    # -- output ----------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        self._outbox.append(message)

    def _ready(self) -> Ready:
        snapshot, truncate_from, entries = self._log.take_unstable()
        hard = HardState(self._term, self._voted_for, self._commit)
        hard_changed = hard != self._stable_hard
        self._stable_hard = hard
        persist = None
        if hard_changed or snapshot is not None or truncate_from is not None or entries:
            persist = Persist(hard if hard_changed else None, snapshot, truncate_from, entries)
        committed: tuple[Entry, ...] = ()
        if self._commit > self._applied:
            committed = self._log.entries(self._applied + 1, self._commit + 1)
            self._applied = self._commit
        to_apply, self._snapshot_to_apply = self._snapshot_to_apply, None
        messages, self._outbox = tuple(self._outbox), []
        return Ready(persist, messages, to_apply, committed)
