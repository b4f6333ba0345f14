"""Group coordinator: JoinGroup/SyncGroup/Heartbeat/LeaveGroup and committed offsets.

Follows Apache Kafka's classic GroupCoordinator closely enough for librdkafka,
kafka-python and aiokafka. Plain Python in, Kafka error codes out; anyio events
park JoinGroup and SyncGroup calls until the rebalance completes. Time comes
from an injected clock so tests can drive it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from broker.groups import storage
from broker.groups.group import Group, GroupState, JoinResult, Member, SyncResult
from broker.groups.storage import GroupSnapshot, OffsetAndMetadata

log = logging.getLogger("regionlink.groups")

NONE = 0
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
MEMBER_ID_REQUIRED = 79
TICK_INTERVAL_S = 0.1


class OffsetStore(Protocol):
    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None: ...

    def load(self) -> Iterable[tuple[bytes, bytes | None]]: ...


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]


class GroupCoordinator:
    def __init__(
        self,
        store: OffsetStore,
        *,
        clock_ms: Callable[[], int],
        initial_rebalance_delay_ms: int = 0,
    ) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._initial_delay_ms = initial_rebalance_delay_ms
        self._groups: dict[str, Group] = {}

    # -- recovery ----------------------------------------------------------------------------
    def load(self) -> None:
        """Replay the store: committed offsets and group generations come back."""
        for key, value in self._store.load():
            decoded = storage.decode_key(key)
            if isinstance(decoded, str):
                self._load_group(decoded, value)
            else:
                group_id, topic, partition = decoded
                offsets = self._group(group_id).offsets
                if value is None:
                    offsets.pop((topic, partition), None)
                else:
                    offsets[(topic, partition)] = storage.decode_offset_value(value)

    def _load_group(self, group_id: str, value: bytes | None) -> None:
        if value is None:
            self._groups.pop(group_id, None)
            return
        snapshot = storage.decode_group_value(value)
        group = self._group(group_id)
        group.generation, group.protocol_type = snapshot.generation, snapshot.protocol_type
        group.protocol = snapshot.protocol

    def _group(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = Group(group_id)
        return group

    # -- join --------------------------------------------------------------------------------
    async def join_group(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
    ) -> JoinResult:
        group = self._group(group_id)
        protocols = list(protocols)
        if not group.supports(protocol_type, protocols):
            return JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        if not member_id:
            member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if require_known_member_id:
                group.pending_member_ids.add(member_id)
                return JoinResult(MEMBER_ID_REQUIRED, member_id=member_id)
        elif member_id not in group.members and member_id not in group.pending_member_ids:
            return JoinResult(UNKNOWN_MEMBER_ID, member_id=member_id)
        group.pending_member_ids.discard(member_id)
        now = self._clock_ms()
        member = Member(
            member_id,
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms if rebalance_timeout_ms > 0 else session_timeout_ms,
            protocols,
            now,
            join_done=anyio.Event(),
        )
        previous = group.members.get(member_id)
        if previous is not None:
            member.assignment = previous.assignment
        group.members[member_id] = member
        group.protocol_type = protocol_type
        if group.state != GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now, f"member {member_id} joined")
        self._maybe_complete_join(group)
        assert member.join_done is not None
        await member.join_done.wait()
        assert member.join_result is not None
        return member.join_result

    def _prepare_rebalance(self, group: Group, now: int, reason: str) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            self._fail_pending_syncs(group)
        first = group.state == GroupState.EMPTY
        group.state = GroupState.PREPARING_REBALANCE
        group.rebalance_deadline_ms = now + group.max_rebalance_timeout_ms
        group.join_not_before_ms = now + (self._initial_delay_ms if first else 0)
        log.info("group %s rebalancing: %s", group.group_id, reason)

    def _maybe_complete_join(self, group: Group, *, deadline_passed: bool = False) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            return
        if self._clock_ms() < group.join_not_before_ms and not deadline_passed:
            return
        waiting = [m for m in group.members.values() if m.awaiting_join]
        if len(waiting) < len(group.members) and not deadline_passed:
            return
        for member in [m for m in group.members.values() if not m.awaiting_join]:
            del group.members[member.member_id]  # did not rejoin in time
        self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        group.generation += 1
        if not group.members:
            group.state, group.protocol, group.leader = GroupState.EMPTY, None, None
            self._persist_group(group)
            return
        group.protocol = group.choose_protocol()
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        group.state = GroupState.COMPLETING_REBALANCE
        assert group.protocol is not None, "supports() admitted only members with a common protocol"
        everyone = tuple(
            (m.member_id, m.group_instance_id, m.metadata_for(group.protocol))
            for m in group.members.values()
        )
        for member in group.members.values():
            member.join_result = JoinResult(
                NONE,
                group.generation,
                group.protocol,
                group.leader,
                member.member_id,
                everyone if member.member_id == group.leader else (),
            )
            member.last_heartbeat_ms = self._clock_ms()
            member.sync_done = anyio.Event()
            assert member.join_done is not None
            member.join_done.set()

    # -- sync --------------------------------------------------------------------------------
    async def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        assignments: Mapping[str, bytes],
    ) -> SyncResult:
        group = self._groups.get(group_id)
        member = group.members.get(member_id) if group else None
        if group is None or member is None:
            return SyncResult(UNKNOWN_MEMBER_ID)
        if generation_id != group.generation:
            return SyncResult(ILLEGAL_GENERATION)
        if group.state == GroupState.PREPARING_REBALANCE:
            return SyncResult(REBALANCE_IN_PROGRESS)
        if group.state == GroupState.COMPLETING_REBALANCE:
            if member_id == group.leader:
                self._install_assignments(group, assignments)
            else:
                assert member.sync_done is not None
                await member.sync_done.wait()
        if group.state != GroupState.STABLE or generation_id != group.generation:
            return SyncResult(REBALANCE_IN_PROGRESS)
        return SyncResult(NONE, member.assignment, group.protocol_type, group.protocol)

    def _install_assignments(self, group: Group, assignments: Mapping[str, bytes]) -> None:
        for member in group.members.values():
            member.assignment = assignments.get(member.member_id, b"")
        group.state = GroupState.STABLE
        self._persist_group(group)
        for member in group.members.values():
            if member.sync_done is not None:
                member.sync_done.set()

    def _fail_pending_syncs(self, group: Group) -> None:
        for member in group.members.values():
            if member.sync_done is not None:
                member.sync_done.set()  # they re-check the state and answer REBALANCE_IN_PROGRESS

    # -- heartbeat and leave -----------------------------------------------------------------
    def heartbeat(self, group_id: str, generation_id: int, member_id: str) -> int:
        group = self._groups.get(group_id)
        member = group.members.get(member_id) if group else None
        if group is None or member is None:
            return UNKNOWN_MEMBER_ID
        member.last_heartbeat_ms = self._clock_ms()
        if group.state == GroupState.PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        if generation_id != group.generation:
            return ILLEGAL_GENERATION
        return NONE

    def leave_group(self, group_id: str, member_ids: Sequence[str]) -> dict[str, int]:
        group = self._groups.get(group_id)
        results = {}
        for member_id in member_ids:
            if group is None or member_id not in group.members:
                results[member_id] = UNKNOWN_MEMBER_ID
                continue
            self._remove_member(group, member_id, "left the group")
            results[member_id] = NONE
        return results

    def _remove_member(self, group: Group, member_id: str, reason: str) -> None:
        member = group.members.pop(member_id)
        if member.join_done is not None and not member.join_done.is_set():
            member.join_result = JoinResult(UNKNOWN_MEMBER_ID, member_id=member_id)
            member.join_done.set()
        if group.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group)
        elif group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            if group.members:
                self._prepare_rebalance(group, self._clock_ms(), f"{member_id} {reason}")
            else:
                self._fail_pending_syncs(group)
                self._complete_join(group)

    # -- offsets -----------------------------------------------------------------------------
    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Mapping[tuple[str, int], OffsetAndMetadata],
    ) -> dict[tuple[str, int], int]:
        error = self._commit_error(group_id, generation_id, member_id)
        if error:
            return dict.fromkeys(offsets, error)
        group = self._group(group_id)
        self._store.append(
            [
                (storage.offset_key(group_id, topic, partition), storage.offset_value(value))
                for (topic, partition), value in offsets.items()
            ]
        )
        group.offsets.update(offsets)
        return dict.fromkeys(offsets, NONE)

    def _commit_error(self, group_id: str, generation_id: int, member_id: str) -> int:
        group = self._groups.get(group_id)
        if group is None or not group.members:
            return NONE if generation_id < 0 else ILLEGAL_GENERATION
        if member_id not in group.members:
            return UNKNOWN_MEMBER_ID
        if generation_id != group.generation:
            return ILLEGAL_GENERATION
        if group.state != GroupState.STABLE:
            return REBALANCE_IN_PROGRESS
        return NONE

    def fetch_offsets(
        self, group_id: str, partitions: Sequence[tuple[str, int]] | None
    ) -> dict[tuple[str, int], OffsetAndMetadata | None]:
        group = self._groups.get(group_id)
        committed = group.offsets if group else {}
        if partitions is None:
            return dict(committed)
        return {tp: committed.get(tp) for tp in partitions}

    def delete_offsets_for_topic(self, topic: str) -> None:
        tombstones: list[tuple[bytes, bytes | None]] = []
        for group in self._groups.values():
            for key in [k for k in group.offsets if k[0] == topic]:
                del group.offsets[key]
                tombstones.append((storage.offset_key(group.group_id, *key), None))
        if tombstones:
            self._store.append(tombstones)

    def _persist_group(self, group: Group) -> None:
        snapshot = GroupSnapshot(
            group.protocol_type, group.generation, group.protocol, group.leader, self._clock_ms()
        )
        self._store.append([(storage.group_key(group.group_id), storage.group_value(snapshot))])

    # -- introspection -----------------------------------------------------------------------
    def list_groups(self) -> list[tuple[str, str, str]]:
        return [(g.group_id, g.protocol_type, g.state.value) for g in self._groups.values()]

    def describe_group(self, group_id: str) -> GroupDescription:
        group = self._groups.get(group_id) or Group(group_id, state=GroupState.DEAD)
        stable = group.state == GroupState.STABLE
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata_for(group.protocol) if group.protocol and stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            group_id, group.state.value, group.protocol_type, group.protocol or "", members
        )

    # -- time --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Expire silent members and finish rebalances whose time is up."""
        now = self._clock_ms()
        for group in list(self._groups.values()):
            for member in list(group.members.values()):
                if (
                    not member.awaiting_join
                    and now - member.last_heartbeat_ms > member.session_timeout_ms
                ):
                    self._remove_member(group, member.member_id, "session timed out")
            if group.state == GroupState.PREPARING_REBALANCE:
                self._maybe_complete_join(group, deadline_passed=now >= group.rebalance_deadline_ms)

    async def run(self) -> None:
        while True:
            await anyio.sleep(TICK_INTERVAL_S)
            self.tick()
