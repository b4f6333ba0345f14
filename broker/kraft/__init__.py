"""KRaft-style metadata quorum: a pure Raft core the controller driver feeds.

Here: `RaftNode` (pre-vote, check-quorum, no-op on election, fast log back-off, snapshots), its
messages, its log and what it needs persisted. It owns no sockets, no clock and no randomness:

* The driver feeds time (`tick(now_ms)`, monotonic milliseconds, often enough for heartbeats),
  delivers messages (`receive`), and passes a seeded `random.Random` for election timeouts.
* Every call returns a `Ready`. Handle them in order: make `ready.persist` durable (one atomic
  write, e.g. a WAL record plus fsync) BEFORE sending `ready.messages`, then reset the state
  machine to `ready.snapshot` if set and apply `ready.committed` (skipping NOOP entries).
* On restart, rebuild the node from what was persisted (`PersistedState.apply` of every
  `Persist`, in order); its first Ready replays the snapshot and committed entries.
* `propose` only works on the leader; `compact` trims the log once the application has a
  snapshot of its state at an index already handed out as committed.
"""

from broker.kraft.config import RaftConfig
from broker.kraft.log import RaftLog
from broker.kraft.messages import (
    EMPTY_SNAPSHOT,
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
from broker.kraft.node import NotLeader, Proposed, RaftNode, Ready, Role
from broker.kraft.storage import HardState, Persist, PersistedState

__all__ = [
    "EMPTY_SNAPSHOT",
    "AppendEntriesRequest",
    "AppendEntriesResponse",
    "Entry",
    "EntryKind",
    "HardState",
    "InstallSnapshotRequest",
    "InstallSnapshotResponse",
    "Message",
    "NotLeader",
    "Persist",
    "PersistedState",
    "PreVoteRequest",
    "PreVoteResponse",
    "Proposed",
    "RaftConfig",
    "RaftLog",
    "RaftNode",
    "Ready",
    "Role",
    "Snapshot",
    "VoteRequest",
    "VoteResponse",
]
