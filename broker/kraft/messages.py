"""Raft's vocabulary as frozen data: log entries, snapshots and the RPC messages.

The core never serializes; the driver maps these to its transport (gRPC) and back. Every
message carries `src`, `dst` and a `term`, which is all Raft needs to discard stale traffic
from a network that may lose, delay, duplicate and reorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EntryKind(StrEnum):
    COMMAND = "command"  # proposed by the application
    NOOP = "noop"  # appended by a new leader so it can commit its predecessors' entries (§5.4.2)


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.COMMAND


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application's state through `last_index` (opaque bytes); replaces that log prefix."""

    last_index: int
    last_term: int
    data: bytes = b""


EMPTY_SNAPSHOT = Snapshot(last_index=0, last_term=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    src: int
    dst: int
    term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PreVoteRequest(_Message):
    """Would you vote for me at `term` (the sender's term + 1)? Changes no one's term (§9.6)."""

    last_log_index: int
    last_log_term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PreVoteResponse(_Message):
    """`term` is the proposed term when granted, else the responder's own term."""

    granted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest(_Message):
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse(_Message):
    granted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntriesRequest(_Message):
    """Entries after `prev_log_index`; with none, a heartbeat that still checks consistency."""

    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    leader_commit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntriesResponse(_Message):
    """On success `match_index` is how far the follower's log now matches the leader's.

    On rejection `rejected_index` is the request's prev_log_index (to spot stale replies) and
    the conflict hints let the leader skip a whole term per round trip: `conflict_term` is the
    follower's term at that index (None if its log is shorter) and `conflict_index` the first
    index the leader should try.
    """

    success: bool
    match_index: int = 0
    rejected_index: int = 0
    conflict_index: int = 0
    conflict_term: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotRequest(_Message):
    """Sent whole (no chunking): metadata snapshots are small."""

    snapshot: Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotResponse(_Message):
    match_index: int


Message = (
    PreVoteRequest
    | PreVoteResponse
    | VoteRequest
    | VoteResponse
    | AppendEntriesRequest
    | AppendEntriesResponse
    | InstallSnapshotRequest
    | InstallSnapshotResponse
)
