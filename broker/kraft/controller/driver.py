"""Drives the pure `RaftNode`: time, peer messages and proposals in; each `Ready` handled in
order under one lock: persist (WAL, fsync in a worker thread) BEFORE sending its messages,
then reset the state machine to its snapshot and apply its committed entries.

It also compacts: every `snapshot_every_entries` applied entries it hands the node the
image's snapshot, and the WAL is rewritten with it. A leader is "ready" for writes once it
has applied the no-op of its own term: only then is its image complete (§8), so decisions
made on it cannot contradict an entry of an earlier term.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

import anyio

from broker.kraft.controller.config import ControllerConfig
from broker.kraft.controller.state import MetadataState, Waiter
from broker.kraft.controller.transport import RaftTransport
from broker.kraft.controller.wal import RaftWal
from broker.kraft.messages import EntryKind, Message
from broker.kraft.node import NotLeader, RaftNode, Ready, Role
from broker.kraft.storage import PersistedState

log = logging.getLogger("regionlink.controller")


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class RaftDriver:
    def __init__(
        self,
        config: ControllerConfig,
        wal: RaftWal,
        persisted: PersistedState,
        transport: RaftTransport,
        state: MetadataState,
    ) -> None:
        seed = config.seed if config.seed is not None else config.node_id
        self._config = config
        self._node = RaftNode(
            config.node_id, config.peers, random.Random(seed), config.raft, persisted
        )
        self._wal = wal
        self._persisted = persisted
        self._transport = transport
        self._state = state
        self._lock = anyio.Lock()
        self._ready_term: int | None = None
        self._seen: tuple[Role, int | None, int] | None = None

    @property
    def node(self) -> RaftNode:
        """For reads (role, leader, term); drive it only through this class."""
        return self._node

    @property
    def leader_hint(self) -> int | None:
        return self._node.leader_id

    def is_ready_leader(self) -> bool:
        return self._node.role is Role.LEADER and self._ready_term == self._node.term

    async def tick(self) -> None:
        async with self._lock:
            await self._handle(self._node.tick(now_ms()))

    async def receive(self, messages: Sequence[Message]) -> None:
        async with self._lock:
            for message in messages:
                await self._handle(self._node.receive(message, now_ms()))

    async def propose(self, build: Callable[[int], bytes | None]) -> Waiter | NotLeader | None:
        """Propose `build(index)` (the index the entry will get) if this is a ready leader.
        None when `build` has nothing to write; else a waiter for the entry's fate."""
        async with self._lock:
            if not self.is_ready_leader():
                return NotLeader(self._node.leader_id)
            index, term = self._node.log.last_index + 1, self._node.term
            data = build(index)
            if data is None:
                return None
            waiter = self._state.expect(index, term)
            proposed = self._node.propose(data, now_ms())
            assert not isinstance(proposed, NotLeader)
            assert (proposed.entry.index, proposed.entry.term) == (index, term), proposed
            await self._handle(proposed.ready)
            return waiter

    async def run(self) -> None:
        """Tick until cancelled."""
        interval_s = self._config.tick_interval_ms / 1000
        while True:
            await self.tick()
            await anyio.sleep(interval_s)

    async def _handle(self, ready: Ready) -> None:
        persist = ready.persist
        if persist is not None:
            self._persisted = self._persisted.apply(persist)
            if persist.snapshot is not None:
                await anyio.to_thread.run_sync(self._wal.rewrite, self._persisted)
            else:
                await anyio.to_thread.run_sync(self._wal.append, persist)
        for message in ready.messages:
            self._transport.send(message)
        if ready.snapshot is not None:
            self._state.reset(ready.snapshot)
        for entry in ready.committed:
            self._state.apply(entry)
            own_noop = entry.kind is EntryKind.NOOP and entry.term == self._node.term
            if own_noop and self._node.role is Role.LEADER:
                self._ready_term = entry.term
                log.info("controller %d is the leader for term %d", self._node.node_id, entry.term)
        self._log_changes()
        await self._maybe_compact()

    async def _maybe_compact(self) -> None:
        applied = self._state.applied
        if applied - self._node.log.snapshot.last_index < self._config.snapshot_every_entries:
            return
        ready = self._node.compact(applied, self._state.image.snapshot())
        self._state.compacted(self._node.log.snapshot)
        await self._handle(ready)

    def _log_changes(self) -> None:
        node = self._node
        seen = (node.role, node.leader_id, node.term)
        if seen == self._seen:
            return
        previous, self._seen = self._seen, seen
        if previous is not None and previous[1] == node.leader_id:
            return  # only the role or term moved (e.g. a pre-vote): not worth a line
        if node.leader_id is None:
            log.info("controller %d: no leader known (term %d)", node.node_id, node.term)
        elif node.leader_id != node.node_id:
            log.info(
                "controller %d: leader is %d (term %d)", node.node_id, node.leader_id, node.term
            )
