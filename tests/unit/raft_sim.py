"""A seeded, deterministic world for Raft nodes: a virtual clock, a faulty network, crashes.

Each host keeps only what its node's Readies said to persist, and persists before it sends;
a crash throws the node and its state machine away and rebuilds both from that store. Safety
invariants are checked as Readies are handled and after every step; failures name the seed
so `RAFT_SEED=<seed>` replays them exactly.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from broker.kraft import (
    Entry,
    HardState,
    Message,
    NotLeader,
    PersistedState,
    Proposed,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
    Snapshot,
)

CONFIG = RaftConfig(
    election_timeout_min_ms=150,
    election_timeout_max_ms=300,
    heartbeat_interval_ms=50,
    max_entries_per_append=8,
)
STEP_MS = 10
INITIAL_DIGEST = bytes(8)


@dataclass
class Faults:
    """Per message: lost with `loss`, sent twice with `duplicate`, delayed uniformly (so
    reordered). Per Ready the host crashes before persisting it with `crash_in_ready` (so it
    is as if never computed), or after persisting and sending it with `reboot_after_ready`
    and restarts at once (so anything the node forgot to persist is lost while the world
    still holds its promises)."""

    loss: float = 0.0
    duplicate: float = 0.0
    min_delay_ms: int = 1
    max_delay_ms: int = 1
    crash_in_ready: float = 0.0
    reboot_after_ready: float = 0.0


def digest_after(digest: bytes, entry: Entry) -> bytes:
    header = f"{entry.term}:{entry.index}:{entry.kind}:".encode()
    return hashlib.blake2b(digest + header + entry.data, digest_size=8).digest()


class History:
    """Every entry any node has committed, by index, and the state machine's digest there."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.digests: list[bytes] = [INITIAL_DIGEST]  # digests[i]: after applying index i

    def commit(self, entry: Entry) -> str | None:
        """Record a commit; a description of the violation if it contradicts an earlier one."""
        if entry.index <= len(self.entries):
            earlier = self.entries[entry.index - 1]
            return None if earlier == entry else f"committed {entry} after {earlier}"
        if entry.index != len(self.entries) + 1:
            return f"committed {entry} with history ending at {len(self.entries)}"
        self.entries.append(entry)
        self.digests.append(digest_after(self.digests[-1], entry))
        return None


@dataclass
class StateMachine:
    """The application: a running digest of every applied entry, snapshotted as bytes."""

    applied_index: int = 0
    digest: bytes = INITIAL_DIGEST

    def snapshot_bytes(self) -> bytes:
        return b"%d:" % self.applied_index + self.digest

    def load(self, snapshot: Snapshot) -> None:
        index, _, digest = snapshot.data.partition(b":")
        assert int(index) == snapshot.last_index, snapshot
        self.applied_index, self.digest = snapshot.last_index, digest

    def apply(self, entry: Entry) -> None:
        assert entry.index == self.applied_index + 1, (entry, self.applied_index)
        self.applied_index = entry.index
        self.digest = digest_after(self.digest, entry)


@dataclass
class Host:
    """One server: its durable store survives crashes, the rest does not."""

    node_id: int
    store: PersistedState = field(default_factory=PersistedState)
    node: RaftNode | None = None
    machine: StateMachine = field(default_factory=StateMachine)
    incarnation: int = 0
    commit_seen: int = 0  # highest commit index of this life (checked to be monotonic)
    commit_durable: int = 0  # highest commit index ever persisted (a floor across lives)


class Cluster:
    def __init__(
        self,
        size: int,
        seed: int,
        config: RaftConfig = CONFIG,
        faults: Faults | None = None,
        stores: dict[int, PersistedState] | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config
        self.faults = faults or Faults()
        self.ids = tuple(range(1, size + 1))
        stores = stores or {}
        self.hosts = {i: Host(i, stores.get(i, PersistedState())) for i in self.ids}
        self.now_ms = 0
        self.in_flight: list[tuple[int, int, Message]] = []
        self.sequence = itertools.count()
        self.cut: set[tuple[int, int]] = set()  # (src, dst) links that drop everything
        self.leaders_by_term: dict[int, int] = {}
        self.history = History()
        self.log_terms: dict[tuple[int, int], tuple[Entry, int]] = {}  # (index, term) -> prev
        self.stats: Counter[str] = Counter()
        self.sent: list[Message] = []  # every message handed to the network, for tests to read
        for host in self.hosts.values():
            self._boot(host)

    # -- plumbing ------------------------------------------------------------------------

    def fail(self, what: str) -> NoReturn:
        raise AssertionError(f"RAFT_SEED={self.seed} at {self.now_ms} ms: {what}")

    def live(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.node is not None]

    def node(self, node_id: int) -> RaftNode:
        node = self.hosts[node_id].node
        assert node is not None, f"node {node_id} is down"
        return node

    def _boot(self, host: Host) -> None:
        host.incarnation += 1
        rng = random.Random(f"{self.seed}:{host.node_id}:{host.incarnation}")
        peers = [i for i in self.ids if i != host.node_id]
        host.node = RaftNode(host.node_id, peers, rng, self.config, persisted=host.store)
        host.machine = StateMachine()
        host.commit_seen = host.node.commit_index
        if host.node.commit_index < host.commit_durable:
            self.fail(f"node {host.node_id} restarted at commit {host.node.commit_index}")

    def crash(self, node_id: int) -> None:
        self.hosts[node_id].node = None
        self.stats["crashes"] += 1

    def restart(self, node_id: int) -> None:
        host = self.hosts[node_id]
        assert host.node is None
        self._boot(host)
        self.stats["restarts"] += 1

    def partition(self, *groups: Iterable[int]) -> None:
        """Only nodes within one group hear each other (nodes in no group hear no one)."""
        group_of = {i: g for g, members in enumerate(groups) for i in members}
        self.cut = {
            (a, b)
            for a in self.ids
            for b in self.ids
            if a != b and (a not in group_of or group_of.get(a) != group_of.get(b))
        }

    def heal(self) -> None:
        self.cut = set()

    # -- the world's step ----------------------------------------------------------------

    def handle(self, host: Host, ready: Ready) -> None:
        """Persist, then send, then apply: the order the real driver must follow."""
        node = host.node
        assert node is not None
        if self.faults.crash_in_ready and self.rng.random() < self.faults.crash_in_ready:
            self.crash(host.node_id)  # before anything of this Ready was durable
            self.stats["crashes_in_ready"] += 1
            return
        if ready.persist is not None:
            self._check_hard_state(host, ready.persist.hard_state)
            host.store = host.store.apply(ready.persist)
            self._check_log_matching(host, ready.persist.entries)
            host.commit_durable = max(host.commit_durable, host.store.hard_state.commit_index)
        for message in ready.messages:
            self.send(message)
        if ready.snapshot is not None:
            host.machine.load(ready.snapshot)
            if self.history.digests[ready.snapshot.last_index] != host.machine.digest:
                self.fail(f"node {host.node_id} loaded a snapshot that differs: {ready.snapshot}")
            self.stats["snapshots_loaded"] += 1
        for entry in ready.committed:
            violation = self.history.commit(entry)
            if violation:
                self.fail(f"node {host.node_id} {violation}")
            host.machine.apply(entry)
        if node.commit_index < host.commit_seen:
            self.fail(f"node {host.node_id} commit went {host.commit_seen} -> {node.commit_index}")
        host.commit_seen = node.commit_index
        if self.faults.reboot_after_ready and self.rng.random() < self.faults.reboot_after_ready:
            self.crash(host.node_id)
            self.restart(host.node_id)
            self.stats["reboots_after_ready"] += 1

    def send(self, message: Message) -> None:
        faults = self.faults
        self.sent.append(message)
        if faults.loss and self.rng.random() < faults.loss:
            return
        copies = 2 if faults.duplicate and self.rng.random() < faults.duplicate else 1
        for _ in range(copies):
            due = self.now_ms + self.rng.randint(faults.min_delay_ms, faults.max_delay_ms)
            heapq.heappush(self.in_flight, (due, next(self.sequence), message))

    def step(self, ms: int = STEP_MS) -> None:
        self.now_ms += ms
        while self.in_flight and self.in_flight[0][0] <= self.now_ms:
            _, _, message = heapq.heappop(self.in_flight)
            host = self.hosts[message.dst]
            if host.node is None or (message.src, message.dst) in self.cut:
                continue
            self.stats[type(message).__name__] += 1
            self.handle(host, host.node.receive(message, self.now_ms))
        for host in self.live():
            assert host.node is not None
            self.handle(host, host.node.tick(self.now_ms))
        self.check()

    def run(self, ms: int) -> None:
        for _ in range(ms // STEP_MS):
            self.step()

    def run_until(self, done: Callable[[], bool], limit_ms: int = 5_000) -> None:
        deadline_ms = self.now_ms + limit_ms
        while not done():
            if self.now_ms >= deadline_ms:
                self.fail(f"condition not met within {limit_ms} ms")
            self.step()

    # -- the application's side -----------------------------------------------------------

    def leader(self) -> RaftNode | None:
        """The live leader of the highest term, if any."""
        return max(self.leaders(), key=lambda n: n.term, default=None)

    def leaders(self) -> list[RaftNode]:
        """Every live node that believes it leads (stale ones included)."""
        return [h.node for h in self.live() if h.node is not None and h.node.role is Role.LEADER]

    def propose(self, data: bytes, node_id: int | None = None) -> Proposed | None:
        node = self.leader() if node_id is None else self.hosts[node_id].node
        if node is None:
            return None  # no leader, or the node is down
        result = node.propose(data, self.now_ms)
        if isinstance(result, NotLeader):
            return None
        self.stats["proposed"] += 1
        self.handle(self.hosts[node.node_id], result.ready)
        return result

    def compact(self, node_id: int) -> None:
        host = self.hosts[node_id]
        assert host.node is not None
        if host.machine.applied_index > host.node.log.snapshot.last_index:
            data = host.machine.snapshot_bytes()
            self.handle(host, host.node.compact(host.machine.applied_index, data))
            self.stats["compactions"] += 1

    def applied(self, node_id: int) -> list[Entry]:
        """The committed entries a node has applied (from the shared history)."""
        return self.history.entries[: self.hosts[node_id].machine.applied_index]

    # -- invariants -------------------------------------------------------------------------

    def check(self) -> None:
        for host in self.live():
            node = host.node
            assert node is not None
            if node.commit_index > node.log.last_index:
                self.fail(f"node {node.node_id} commit {node.commit_index} past its log")
            if node.role is not Role.LEADER:
                continue
            leader = self.leaders_by_term.get(node.term)
            if leader is None:
                self.leaders_by_term[node.term] = node.node_id
                self._check_leader_completeness(node)
                self.stats["elections"] += 1
            elif leader != node.node_id:
                self.fail(f"two leaders in term {node.term}: {leader} and {node.node_id}")

    def _check_leader_completeness(self, node: RaftNode) -> None:
        """A new leader's log holds every entry committed in its term or earlier ones (§5.4.3)."""
        log = node.log
        for entry in self.history.entries[log.snapshot.last_index :]:
            if entry.term <= node.term and log.term_at(entry.index) != entry.term:
                self.fail(f"leader {node.node_id} of term {node.term} lacks committed {entry}")

    def _check_hard_state(self, host: Host, new: HardState | None) -> None:
        """Terms never go back and a vote, once durable, is never changed within its term."""
        old = host.store.hard_state
        if new is None:
            return
        if new.term < old.term or (
            new.term == old.term and old.voted_for not in (None, new.voted_for)
        ):
            self.fail(f"node {host.node_id} persisted {new} over {old}")

    def _check_log_matching(self, host: Host, entries: tuple[Entry, ...]) -> None:
        """Same (index, term) means the same entry after the same predecessor (§5.3): checked
        entry by entry as they become durable, which by induction covers whole prefixes."""
        if not entries:
            return
        store = host.store
        first = entries[0].index
        if first - 1 == store.snapshot.last_index:
            prev_term = store.snapshot.last_term
        else:
            prev_term = store.entries[first - 2 - store.snapshot.last_index].term
        for entry in entries:
            seen = self.log_terms.setdefault((entry.index, entry.term), (entry, prev_term))
            if seen != (entry, prev_term):
                self.fail(f"node {host.node_id} holds {entry} after term {prev_term}: saw {seen}")
            prev_term = entry.term
