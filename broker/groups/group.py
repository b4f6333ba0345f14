"""One consumer group: its members, generation and the classic rebalance state machine.

Mirrors Kafka's GroupMetadata: pure state plus the replies that parked JoinGroup and
SyncGroup calls await. The coordinator adds time, persistence and each API's checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

import anyio
from kio.schema.errors import ErrorCode

from broker.groups.storage import GroupMetadataRecord, MemberRecord, OffsetAndMetadata

T = TypeVar("T")
Protocols = tuple[tuple[str, bytes], ...]  # (name, metadata) in the member's preference order


class GroupState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class JoinedMember(NamedTuple):
    """One entry of the member list the leader gets to compute assignments."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str = ""
    leader: str = ""
    member_id: str = ""
    members: tuple[JoinedMember, ...] = ()  # only for the leader


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


class Reply(Generic[T]):
    """A one-shot answer for a parked request; the first value set wins."""

    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._value: T | None = None

    def set(self, value: T) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        assert self._value is not None
        return self._value


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: Protocols
    last_heartbeat_ms: int
    assignment: bytes = b""
    join_reply: Reply[JoinResult] | None = None  # set while its JoinGroup is parked
    sync_reply: Reply[SyncResult] | None = None  # set while its SyncGroup is parked

    @property
    def protocol_names(self) -> set[str]:
        return {name for name, _ in self.protocols}

    def metadata_for(self, protocol: str) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    def vote(self, candidates: set[str]) -> str:
        return next(name for name, _ in self.protocols if name in candidates)

    def session_expired(self, now_ms: int) -> bool:
        """Members parked in a rebalance need no heartbeat (their request is the heartbeat)."""
        if self.join_reply is not None or self.sync_reply is not None:
            return False
        return now_ms - self.last_heartbeat_ms > self.session_timeout_ms

    def answer_join(self, result: JoinResult) -> None:
        if self.join_reply is not None:
            self.join_reply.set(result)
            self.join_reply = None

    def answer_sync(self, result: SyncResult) -> None:
        if self.sync_reply is not None:
            self.sync_reply.set(result)
            self.sync_reply = None


@dataclass(eq=False)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: dict[str, int] = field(default_factory=dict)  # KIP-394 id -> expiry ms
    pending_sync: set[str] = field(default_factory=set)  # joined, SyncGroup not yet seen
    join_not_before_ms: int = 0  # group.initial.rebalance.delay.ms for a new generation
    rebalance_deadline_ms: int = 0
    sync_deadline_ms: int = 0
    state_timestamp_ms: int = -1
    offsets: dict[tuple[str, int], OffsetAndMetadata] = field(default_factory=dict)

    # -- invariants and transitions ----------------------------------------------------------
    def transition(self, state: GroupState, now_ms: int) -> None:
        assert self.state in _VALID_PREVIOUS[state], f"{self.group_id}: {self.state} -> {state}"
        self.state, self.state_timestamp_ms = state, now_ms
        self.check()

    def check(self) -> None:
        empty_states = (GroupState.EMPTY, GroupState.DEAD)
        assert (self.state in empty_states) == (not self.members) or (
            self.state == GroupState.PREPARING_REBALANCE
        ), f"{self.group_id}: {self.state} with {len(self.members)} members"
        assert self.leader is None or self.leader in self.members, "leader is a member"
        assert all(
            m in self.members and self.members[m].group_instance_id == i
            for i, m in self.static_members.items()
        ), "static members map to current members"

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def is_empty(self) -> bool:
        return self.state == GroupState.EMPTY and not self.members and not self.pending_members

    # -- membership --------------------------------------------------------------------------
    def add(self, member: Member, protocol_type: str) -> None:
        assert member.member_id not in self.members
        if not self.members:
            self.protocol_type = protocol_type  # the first member decides (Kafka's add)
        self.members[member.member_id] = member
        self.pending_members.pop(member.member_id, None)
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader is None:
            self.leader = member.member_id

    def remove(self, member_id: str) -> Member:
        member = self.members.pop(member_id)
        if member.group_instance_id is not None:
            self.static_members.pop(member.group_instance_id, None)
        self.pending_sync.discard(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        return member

    def replace_static(self, old_member_id: str, member: Member) -> Member:
        """A static member came back under a new member id: it takes the old one's place."""
        old = self.members.pop(old_member_id)
        member.assignment = old.assignment
        self.members[member.member_id] = member
        assert member.group_instance_id is not None
        self.static_members[member.group_instance_id] = member.member_id
        if self.leader == old_member_id:
            self.leader = member.member_id
        self.pending_sync.discard(old_member_id)
        return old

    def member_error(self, member_id: str, group_instance_id: str | None) -> int:
        """Kafka's validateCurrentMember: a stale static member is fenced, a stranger unknown."""
        if group_instance_id is not None:
            current = self.static_members.get(group_instance_id)
            if current is not None and current != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        return ErrorCode.none

    # -- protocols ---------------------------------------------------------------------------
    def supports(self, protocol_type: str, protocol_names: set[str]) -> bool:
        """Kafka's supportsProtocols: some protocol of the joiner is supported by every member."""
        if self.state == GroupState.EMPTY:
            return bool(protocol_type) and bool(protocol_names)
        if protocol_type != self.protocol_type:
            return False
        return any(
            all(name in m.protocol_names for m in self.members.values()) for name in protocol_names
        )

    def select_protocol(self) -> str:
        """Each member votes for its most preferred protocol that all support; most votes wins."""
        members = list(self.members.values())
        candidates = set.intersection(*(m.protocol_names for m in members))
        assert candidates, "supports() admits only members with a protocol in common"
        votes: dict[str, int] = {}
        for member in members:
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(sorted(votes), key=votes.__getitem__)

    # -- rebalance ---------------------------------------------------------------------------
    def prepare_rebalance(self, now_ms: int, initial_delay_ms: int) -> None:
        """Ask everyone to rejoin; a new group waits initial_delay_ms for more joiners."""
        for member in self.members.values():
            member.answer_sync(SyncResult(ErrorCode.rebalance_in_progress))
        delay_ms = initial_delay_ms if self.state == GroupState.EMPTY else 0
        self.pending_sync.clear()
        self.transition(GroupState.PREPARING_REBALANCE, now_ms)
        self.join_not_before_ms = now_ms + delay_ms
        self.rebalance_deadline_ms = now_ms + max(self.rebalance_timeout_ms, delay_ms)

    def all_joined(self) -> bool:
        joined = all(m.join_reply is not None for m in self.members.values())
        return joined and not self.pending_members

    def complete_join(self, now_ms: int) -> bool:
        """Start the next generation with the members that rejoined; False if none did yet."""
        assert self.state == GroupState.PREPARING_REBALANCE
        for member in [m for m in self.members.values() if m.join_reply is None]:
            if member.group_instance_id is None:  # static members keep their place
                self.remove(member.member_id)
        joined = [m for m in self.members.values() if m.join_reply is not None]
        if self.members and not joined:
            self.rebalance_deadline_ms = now_ms + self.rebalance_timeout_ms
            return False  # only absent static members: wait for them or their session expiry
        if self.leader is None or self.members[self.leader].join_reply is None:
            self.leader = joined[0].member_id if joined else None
        self.generation += 1
        if not self.members:
            self.protocol = None
            self.transition(GroupState.EMPTY, now_ms)
            return True
        self.protocol = self.select_protocol()
        self.transition(GroupState.COMPLETING_REBALANCE, now_ms)
        self.pending_sync = set(self.members)
        self.sync_deadline_ms = now_ms + self.rebalance_timeout_ms
        for member in joined:
            member.last_heartbeat_ms = now_ms
            member.answer_join(self.join_result(member.member_id))
        return True

    def join_result(self, member_id: str) -> JoinResult:
        """The current generation as `member_id` sees it; the leader also gets the members."""
        assert self.protocol is not None and self.leader is not None
        protocol = self.protocol
        members: tuple[JoinedMember, ...] = ()
        if member_id == self.leader:
            members = tuple(
                JoinedMember(m.member_id, m.group_instance_id, m.metadata_for(protocol))
                for m in self.members.values()
            )
        return JoinResult(
            ErrorCode.none,
            self.generation,
            self.protocol_type,
            protocol,
            self.leader,
            member_id,
            members,
        )

    def sync_result(self, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.none, member.assignment, self.protocol_type, self.protocol)

    def full_assignment(self, assignments: Mapping[str, bytes]) -> dict[str, bytes]:
        """The leader's plan for current members only; members it left out get nothing."""
        return {member_id: assignments.get(member_id, b"") for member_id in self.members}

    def install_assignment(self, assignment: Mapping[str, bytes], now_ms: int) -> None:
        assert set(assignment) == set(self.members)
        for member_id, member in self.members.items():
            member.assignment = assignment[member_id]
        self.transition(GroupState.STABLE, now_ms)
        for member in self.members.values():
            if member.sync_reply is not None:
                member.last_heartbeat_ms = now_ms  # its session restarts with the answer
                member.answer_sync(self.sync_result(member))

    def fail_syncs(self, error: int) -> None:
        for member in self.members.values():
            member.answer_sync(SyncResult(error))

    def expired_offsets(self, now_ms: int, retention_ms: int) -> list[tuple[str, int]]:
        """Offsets of an Empty group older than retention_ms, counted from when it emptied
        or, if it never had members, from each commit (Kafka 2.1+, KIP-211)."""
        assert self.state == GroupState.EMPTY
        expired = []
        for partition, value in self.offsets.items():
            since_ms = self.state_timestamp_ms
            if since_ms < 0:
                since_ms = value.commit_timestamp_ms
            if since_ms >= 0 and now_ms - since_ms >= retention_ms:
                expired.append(partition)
        return expired

    # -- persistence -------------------------------------------------------------------------
    def to_record(self, assignment: Mapping[str, bytes] | None = None) -> GroupMetadataRecord:
        members = tuple(
            MemberRecord(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
                m.metadata_for(self.protocol) if self.protocol else b"",
                assignment[m.member_id] if assignment is not None else m.assignment,
            )
            for m in self.members.values()
        )
        return GroupMetadataRecord(
            self.protocol_type or "",
            self.generation,
            self.protocol,
            self.leader,
            self.state_timestamp_ms,
            members,
        )

    def restore(self, record: GroupMetadataRecord, now_ms: int) -> None:
        """Kafka's loadGroup: members come back Stable and must heartbeat within their session."""
        self.members.clear()
        self.static_members.clear()
        self.generation, self.protocol = record.generation, record.protocol
        self.protocol_type = record.protocol_type or None
        self.state_timestamp_ms = record.state_timestamp_ms
        for m in record.members:
            protocols: Protocols = ((record.protocol, m.subscription),) if record.protocol else ()
            member = Member(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.session_timeout_ms,
                m.rebalance_timeout_ms,
                protocols,
                now_ms,
                m.assignment,
            )
            self.members[member.member_id] = member
            if member.group_instance_id is not None:
                self.static_members[member.group_instance_id] = member.member_id
        self.leader = record.leader if record.leader in self.members else None
        if self.leader is None and self.members:
            self.leader = next(iter(self.members))
        self.state = GroupState.STABLE if self.members else GroupState.EMPTY
        self.check()
