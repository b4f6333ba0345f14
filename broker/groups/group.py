"""One consumer group's members and state (classic rebalance protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import anyio

from broker.groups.storage import OffsetAndMetadata


class GroupState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True)
class JoinResult:
    error: int
    generation_id: int = -1
    protocol_name: str = ""
    leader: str = ""
    member_id: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()  # only for the leader


@dataclass(frozen=True)
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    last_heartbeat_ms: int
    assignment: bytes = b""
    join_result: JoinResult | None = None
    join_done: anyio.Event | None = None  # set when the pending JoinGroup may answer
    sync_done: anyio.Event | None = None

    def metadata_for(self, protocol: str) -> bytes:
        return next(meta for name, meta in self.protocols if name == protocol)

    @property
    def awaiting_join(self) -> bool:
        return self.join_done is not None and not self.join_done.is_set()


@dataclass
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str = ""
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    pending_member_ids: set[str] = field(default_factory=set)  # KIP-394, before their rejoin
    rebalance_deadline_ms: int = 0
    join_not_before_ms: int = 0
    offsets: dict[tuple[str, int], OffsetAndMetadata] = field(default_factory=dict)

    def choose_protocol(self) -> str | None:
        """The protocol every member supports, preferring members' earlier choices (by votes)."""
        candidates = None
        for member in self.members.values():
            names = {name for name, _ in member.protocols}
            candidates = names if candidates is None else candidates & names
        if not candidates:
            return None
        votes = {name: 0 for name in candidates}
        for member in self.members.values():
            first = next(name for name, _ in member.protocols if name in candidates)
            votes[first] += 1
        return max(sorted(votes), key=lambda name: votes[name])

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if not self.members:
            return True
        if protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in protocols}
        return all(names & {n for n, _ in m.protocols} for m in self.members.values())

    @property
    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
