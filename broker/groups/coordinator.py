"""Group coordinator: JoinGroup/SyncGroup/Heartbeat/LeaveGroup and committed offsets.

Follows Apache Kafka's classic GroupCoordinator (validation order, error codes, state
machine) because unmodified clients (librdkafka, kafka-python, aiokafka) drive it.
Plain Python in, Kafka error codes out: the broker's handlers translate messages.
JoinGroup and SyncGroup park on anyio events until the rebalance completes, so this
runs under asyncio and trio alike. Time comes from the injected clock; `tick()` (or
`run()`, which calls it) expires sessions and ends rebalances whose time is up.
Every change that must survive a restart is appended to the store before we answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kio.schema.errors import ErrorCode

from broker.groups import storage
from broker.groups.group import (
    Group,
    GroupState,
    JoinResult,
    Member,
    Protocols,
    Reply,
    SyncResult,
)
from broker.groups.storage import OffsetAndMetadata

log = logging.getLogger("regionlink.groups")

# Kept as names for callers and tests; they are plain ints (ErrorCode is an IntEnum).
NONE = ErrorCode.none
ILLEGAL_GENERATION = ErrorCode.illegal_generation
INCONSISTENT_GROUP_PROTOCOL = ErrorCode.inconsistent_group_protocol
UNKNOWN_MEMBER_ID = ErrorCode.unknown_member_id
REBALANCE_IN_PROGRESS = ErrorCode.rebalance_in_progress
MEMBER_ID_REQUIRED = ErrorCode.member_id_required
FENCED_INSTANCE_ID = ErrorCode.fenced_instance_id

TICK_INTERVAL_S = 0.05
MIN_SESSION_TIMEOUT_MS = 6_000  # group.min.session.timeout.ms
MAX_SESSION_TIMEOUT_MS = 1_800_000  # group.max.session.timeout.ms
MAX_METADATA_BYTES = 4_096  # offset.metadata.max.bytes
OFFSETS_RETENTION_MS = 7 * 24 * 3600 * 1000  # offsets.retention.minutes = 10080
RETENTION_CHECK_INTERVAL_MS = 600_000  # offsets.retention.check.interval.ms

StoreRecord = tuple[bytes, bytes | None]
MemberIdentity = tuple[str, str | None]  # (member id, group instance id)


class OffsetStore(Protocol):
    """Durable log of `__consumer_offsets` records (the broker: a compacted topic)."""

    def append(self, records: Sequence[StoreRecord]) -> None:
        """Durable when it returns; raises OSError when the records could not be stored."""

    def load(self) -> Iterable[StoreRecord]:
        """Every record in log order (value None = tombstone)."""


@dataclass(frozen=True, slots=True)
class MemberLeaveResult:
    member_id: str
    group_instance_id: str | None
    error: int


@dataclass(frozen=True, slots=True)
class LeaveResult:
    """LeaveGroup's answer: a top-level error and one per member, in request order."""

    error: int
    members: tuple[MemberLeaveResult, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # empty unless the group is Stable (as Kafka)
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str  # "" unless Stable
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True, slots=True)
class _JoinRequest:
    """A JoinGroup's member-level fields, normalised."""

    group_instance_id: str | None
    protocol_type: str
    protocols: Protocols
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str

    def new_member(self, member_id: str, now_ms: int) -> Member:
        return Member(
            member_id,
            self.group_instance_id,
            self.client_id,
            self.client_host,
            self.session_timeout_ms,
            self.rebalance_timeout_ms,
            self.protocols,
            now_ms,
        )


class GroupCoordinator:
    def __init__(
        self,
        store: OffsetStore,
        *,
        clock_ms: Callable[[], int],
        initial_rebalance_delay_ms: int = 0,
        min_session_timeout_ms: int = MIN_SESSION_TIMEOUT_MS,
        max_session_timeout_ms: int = MAX_SESSION_TIMEOUT_MS,
        max_metadata_bytes: int = MAX_METADATA_BYTES,
        offsets_retention_ms: int = OFFSETS_RETENTION_MS,
        retention_check_interval_ms: int = RETENTION_CHECK_INTERVAL_MS,
    ) -> None:
        assert initial_rebalance_delay_ms >= 0 and min_session_timeout_ms <= max_session_timeout_ms
        self._store = store
        self._clock_ms = clock_ms
        self._initial_delay_ms = initial_rebalance_delay_ms
        self._session_bounds_ms = (min_session_timeout_ms, max_session_timeout_ms)
        self._max_metadata_bytes = max_metadata_bytes
        self._offsets_retention_ms = offsets_retention_ms
        self._retention_check_interval_ms = retention_check_interval_ms
        self._next_retention_check_ms = clock_ms() + retention_check_interval_ms
        self._groups: dict[str, Group] = {}

    # -- recovery ----------------------------------------------------------------------------
    def load(self) -> None:
        """Replay the store: committed offsets, generations and last known members come back.

        As in Kafka, restored members stay in the group only if they heartbeat within their
        session timeout; otherwise they are expelled and the group rebalances.
        """
        now_ms = self._clock_ms()
        for key, value in self._store.load():
            try:
                self._replay(key, value, now_ms)
            except storage.RecordFormatError as exc:
                log.warning("skipping unreadable __consumer_offsets record: %s", exc)
        for group_id in [g for g, group in self._groups.items() if self._forgettable(group)]:
            del self._groups[group_id]

    def _replay(self, key: bytes, value: bytes | None, now_ms: int) -> None:
        decoded = storage.decode_key(key)
        if isinstance(decoded, str):
            group = self._groups.setdefault(decoded, Group(decoded))
            if value is None:
                self._groups[decoded] = Group(decoded, offsets=group.offsets)
            else:
                group.restore(storage.decode_group_value(value), now_ms)
            return
        offsets = self._groups.setdefault(decoded.group, Group(decoded.group)).offsets
        if value is None:
            offsets.pop((decoded.topic, decoded.partition), None)
        else:
            offsets[(decoded.topic, decoded.partition)] = storage.decode_offset_value(value)

    @staticmethod
    def _forgettable(group: Group) -> bool:
        return group.is_empty() and not group.offsets and group.generation == 0

    # -- JoinGroup ---------------------------------------------------------------------------
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
        """Join (or rejoin) and wait for the rebalance to finish; the leader gets the members.

        rebalance_timeout_ms <= 0 (JoinGroup v0) means the session timeout, as in Kafka.
        require_known_member_id is True from JoinGroup v4 (KIP-394).
        """
        if not group_id:
            return JoinResult(ErrorCode.invalid_group_id, member_id=member_id)
        low_ms, high_ms = self._session_bounds_ms
        if not low_ms <= session_timeout_ms <= high_ms:
            return JoinResult(ErrorCode.invalid_session_timeout, member_id=member_id)
        request = _JoinRequest(
            group_instance_id,
            protocol_type,
            tuple((name, bytes(meta)) for name, meta in protocols),
            session_timeout_ms,
            rebalance_timeout_ms if rebalance_timeout_ms > 0 else session_timeout_ms,
            client_id,
            client_host,
        )
        outcome = self._join(group_id, member_id, request, require_known_member_id)
        return outcome if isinstance(outcome, JoinResult) else await outcome.wait()

    def _join(
        self, group_id: str, member_id: str, request: _JoinRequest, require_known_member_id: bool
    ) -> JoinResult | Reply[JoinResult]:
        group = self._groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(UNKNOWN_MEMBER_ID, member_id=member_id)
            group = Group(group_id)
        names = {name for name, _ in request.protocols}
        if not group.supports(request.protocol_type, names):
            return JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        if not member_id:
            return self._join_new_member(group, request, require_known_member_id)
        return self._join_known_member(group, member_id, request)

    def _join_new_member(
        self, group: Group, request: _JoinRequest, require_known_member_id: bool
    ) -> JoinResult | Reply[JoinResult]:
        now_ms = self._clock_ms()
        prefix = request.group_instance_id or request.client_id
        member_id = f"{prefix}-{uuid.uuid4()}"
        if request.group_instance_id is not None:
            return self._join_static_member(group, member_id, request, now_ms)
        if require_known_member_id:
            group.pending_members[member_id] = now_ms + request.session_timeout_ms
            self._groups[group.group_id] = group
            return JoinResult(MEMBER_ID_REQUIRED, member_id=member_id)
        return self._add_member(group, request.new_member(member_id, now_ms), request)

    def _join_static_member(
        self, group: Group, member_id: str, request: _JoinRequest, now_ms: int
    ) -> Reply[JoinResult]:
        """Basic KIP-345: a returning instance replaces its old member id, then a rebalance."""
        assert request.group_instance_id is not None
        member = request.new_member(member_id, now_ms)
        old_member_id = group.static_members.get(request.group_instance_id)
        if old_member_id is None:
            return self._add_member(group, member, request)
        old = group.replace_static(old_member_id, member)
        old.answer_join(JoinResult(FENCED_INSTANCE_ID, member_id=old_member_id))
        old.answer_sync(SyncResult(FENCED_INSTANCE_ID))
        reply = member.join_reply = Reply()
        self._rebalance(group, f"static member {request.group_instance_id} rejoined")
        return reply

    def _join_known_member(
        self, group: Group, member_id: str, request: _JoinRequest
    ) -> JoinResult | Reply[JoinResult]:
        if member_id in group.pending_members:
            return self._add_member(group, request.new_member(member_id, self._clock_ms()), request)
        error = group.member_error(member_id, request.group_instance_id)
        instance_id = request.group_instance_id
        if error == ErrorCode.none and instance_id and instance_id not in group.static_members:
            error = UNKNOWN_MEMBER_ID  # an unknown static instance must rejoin with an empty id
        if error != ErrorCode.none:
            return JoinResult(error, member_id=member_id)
        member = group.members[member_id]
        unchanged = member.protocols == request.protocols
        if group.state == GroupState.COMPLETING_REBALANCE and unchanged:
            return group.join_result(member_id)  # a retry of a lost JoinGroup response
        if group.state == GroupState.STABLE and unchanged and member_id != group.leader:
            return group.join_result(member_id)  # nothing changed: go straight to SyncGroup
        return self._update_member(group, member, request)

    def _add_member(self, group: Group, member: Member, request: _JoinRequest) -> Reply[JoinResult]:
        reply = member.join_reply = Reply()
        group.add(member, request.protocol_type)
        self._groups[group.group_id] = group
        self._rebalance(group, f"member {member.member_id} joined")
        return reply

    def _update_member(
        self, group: Group, member: Member, request: _JoinRequest
    ) -> Reply[JoinResult]:
        member.protocols = request.protocols
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        reply = member.join_reply = member.join_reply or Reply()  # a duplicate shares the answer
        self._rebalance(group, f"member {member.member_id} rejoined")
        return reply

    # -- rebalance ---------------------------------------------------------------------------
    def _rebalance(self, group: Group, reason: str) -> None:
        """Kafka's maybePrepareRebalance, then complete the join if nobody is missing."""
        if group.state in (GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            log.info(
                "group %s rebalancing (generation %d): %s", group.group_id, group.generation, reason
            )
            group.prepare_rebalance(self._clock_ms(), self._initial_delay_ms)
        self._maybe_complete_join(group)

    def _maybe_complete_join(self, group: Group) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            return
        now_ms = self._clock_ms()
        if now_ms < group.join_not_before_ms:
            return
        if not group.all_joined() and now_ms < group.rebalance_deadline_ms:
            return
        if group.complete_join(now_ms) and group.state == GroupState.EMPTY:
            self._persist_quietly(group)
        if group.state == GroupState.COMPLETING_REBALANCE:
            log.info(
                "group %s generation %d: %d members, protocol %s",
                group.group_id,
                group.generation,
                len(group.members),
                group.protocol,
            )

    # -- SyncGroup ---------------------------------------------------------------------------
    async def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        assignments: Mapping[str, bytes],
        *,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        """Wait for the leader's assignments (or store them, from the leader); get ours."""
        if not group_id:
            return SyncResult(ErrorCode.invalid_group_id)
        group = self._groups.get(group_id)
        if group is None:
            return SyncResult(UNKNOWN_MEMBER_ID)
        error = self._sync_error(
            group, generation_id, member_id, group_instance_id, protocol_type, protocol_name
        )
        if error != ErrorCode.none:
            return SyncResult(error)
        member = group.members[member_id]
        group.pending_sync.discard(member_id)
        if group.state == GroupState.STABLE:
            member.last_heartbeat_ms = self._clock_ms()
            return group.sync_result(member)
        assert group.state == GroupState.COMPLETING_REBALANCE, group.state
        reply = member.sync_reply = member.sync_reply or Reply()
        if member_id == group.leader:
            self._install_assignment(group, group.full_assignment(assignments))
        return await reply.wait()

    @staticmethod
    def _sync_error(
        group: Group,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
    ) -> int:
        """Kafka's doSyncGroup checks, in its order."""
        error = group.member_error(member_id, group_instance_id)
        if error != ErrorCode.none:
            return error
        if generation_id != group.generation:
            return ILLEGAL_GENERATION
        if protocol_type is not None and protocol_type != group.protocol_type:
            return INCONSISTENT_GROUP_PROTOCOL
        if protocol_name is not None and protocol_name != group.protocol:
            return INCONSISTENT_GROUP_PROTOCOL
        if group.state == GroupState.PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return ErrorCode.none

    def _install_assignment(self, group: Group, assignment: dict[str, bytes]) -> None:
        """Store the generation with its assignment first; only then is the group Stable."""
        record = storage.group_value(group.to_record(assignment))
        try:
            self._store.append([(storage.group_key(group.group_id), record)])
        except OSError as exc:
            log.warning("group %s: storing assignment failed: %s", group.group_id, exc)
            group.fail_syncs(ErrorCode.coordinator_not_available)
            self._rebalance(group, "storing the assignment failed")
            return
        group.install_assignment(assignment, self._clock_ms())

    # -- Heartbeat and LeaveGroup ------------------------------------------------------------
    def heartbeat(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None = None,
    ) -> int:
        """Refresh the member's session; REBALANCE_IN_PROGRESS tells it to rejoin."""
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.invalid_group_id if not group_id else UNKNOWN_MEMBER_ID
        error = group.member_error(member_id, group_instance_id)
        if error != ErrorCode.none:
            return error
        if generation_id != group.generation:
            return ILLEGAL_GENERATION
        group.members[member_id].last_heartbeat_ms = self._clock_ms()
        if group.state == GroupState.PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return ErrorCode.none

    def leave_group(self, group_id: str, members: Sequence[MemberIdentity]) -> LeaveResult:
        """Remove members and rebalance the rest."""
        group = self._groups.get(group_id)
        results = tuple(
            MemberLeaveResult(member_id, instance_id, self._leave(group, member_id, instance_id))
            for member_id, instance_id in members
        )
        return LeaveResult(ErrorCode.invalid_group_id if not group_id else ErrorCode.none, results)

    def _leave(self, group: Group | None, member_id: str, group_instance_id: str | None) -> int:
        if group is None:
            return UNKNOWN_MEMBER_ID
        if group_instance_id is not None:
            current = group.static_members.get(group_instance_id)
            if current is None:
                return UNKNOWN_MEMBER_ID
            if member_id and member_id != current:
                return FENCED_INSTANCE_ID
            member_id = current
        elif member_id in group.pending_members:
            del group.pending_members[member_id]
            self._maybe_complete_join(group)
            return ErrorCode.none
        elif member_id not in group.members:
            return UNKNOWN_MEMBER_ID
        self._remove_members(group, [member_id], "left the group")
        return ErrorCode.none

    def _remove_members(self, group: Group, member_ids: Sequence[str], reason: str) -> None:
        for member_id in member_ids:
            member = group.remove(member_id)
            member.answer_join(JoinResult(UNKNOWN_MEMBER_ID, member_id=member_id))
            member.answer_sync(SyncResult(UNKNOWN_MEMBER_ID))
        if member_ids:
            self._rebalance(group, f"{', '.join(member_ids)} {reason}")

    # -- offsets -----------------------------------------------------------------------------
    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Mapping[tuple[str, int], OffsetAndMetadata],
        *,
        group_instance_id: str | None = None,
    ) -> dict[tuple[str, int], int]:
        """Store offsets durably; an error per partition.

        generation_id -1 with no member id is a simple commit (admin tools, manual
        assignment), allowed while the group has no members, as in Kafka.
        """
        group = self._groups.get(group_id)
        if group is None and generation_id >= 0:
            return dict.fromkeys(offsets, ILLEGAL_GENERATION)
        group = group or Group(group_id)
        error = self._commit_error(group, generation_id, member_id, group_instance_id)
        if error != ErrorCode.none:
            return dict.fromkeys(offsets, error)
        errors = {tp: self._metadata_error(value) for tp, value in offsets.items()}
        accepted = {tp: v for tp, v in offsets.items() if errors[tp] == ErrorCode.none}
        if not self._store_offsets(group_id, accepted):
            return dict.fromkeys(offsets, ErrorCode.coordinator_not_available)
        self._groups.setdefault(group_id, group).offsets.update(accepted)
        if member_id in group.members:
            group.members[member_id].last_heartbeat_ms = self._clock_ms()
        return errors

    @staticmethod
    def _commit_error(
        group: Group, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> int:
        """Kafka's validateOffsetCommit (commits are fine while PreparingRebalance)."""
        if generation_id >= 0 or member_id or group_instance_id is not None:
            error = group.member_error(member_id, group_instance_id)
            if error != ErrorCode.none:
                return error
            if generation_id != group.generation:
                return ILLEGAL_GENERATION
            if group.state == GroupState.COMPLETING_REBALANCE:
                return REBALANCE_IN_PROGRESS
            return ErrorCode.none
        if group.state != GroupState.EMPTY:
            return UNKNOWN_MEMBER_ID  # a simple commit while the group is managed
        return ErrorCode.none

    def _metadata_error(self, value: OffsetAndMetadata) -> int:
        if len(value.metadata.encode()) > self._max_metadata_bytes:
            return ErrorCode.offset_metadata_too_large
        return ErrorCode.none

    def _store_offsets(
        self, group_id: str, offsets: Mapping[tuple[str, int], OffsetAndMetadata]
    ) -> bool:
        records: list[StoreRecord] = [
            (storage.offset_key(group_id, topic, partition), storage.offset_value(value))
            for (topic, partition), value in offsets.items()
        ]
        if not records:
            return True
        try:
            self._store.append(records)
        except OSError as exc:
            log.warning("group %s: storing offsets failed: %s", group_id, exc)
            return False
        return True

    def fetch_offsets(
        self, group_id: str, partitions: Sequence[tuple[str, int]] | None
    ) -> dict[tuple[str, int], OffsetAndMetadata | None]:
        """Committed offsets (None = nothing committed); partitions None = all of the group's."""
        group = self._groups.get(group_id)
        committed = group.offsets if group else {}
        if partitions is None:
            return dict(committed)
        return {tp: committed.get(tp) for tp in partitions}

    def delete_offsets_for_topic(self, topic: str) -> None:
        """The topic was deleted: forget (and tombstone) every group's offsets for it."""
        tombstones: list[StoreRecord] = []
        for group in self._groups.values():
            for key in [k for k in group.offsets if k[0] == topic]:
                del group.offsets[key]
                tombstones.append((storage.offset_key(group.group_id, *key), None))
        if tombstones:
            self._store.append(tombstones)

    # -- groups as a whole -------------------------------------------------------------------
    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) for every group we know, members or not."""
        return [(g.group_id, g.protocol_type or "", g.state.value) for g in self._groups.values()]

    def describe_group(self, group_id: str) -> GroupDescription:
        """Kafka's group summary; an unknown group is Dead with no members."""
        group = self._groups.get(group_id) or Group(group_id, state=GroupState.DEAD)
        stable = group.state == GroupState.STABLE
        protocol = group.protocol if stable and group.protocol else ""
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata_for(protocol) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            group_id, group.state.value, group.protocol_type or "", protocol, members
        )

    def delete_groups(self, group_ids: Sequence[str]) -> dict[str, int]:
        """DeleteGroups: only groups without members; their offsets go too (tombstones)."""
        return {group_id: self._delete_group(group_id) for group_id in group_ids}

    def _delete_group(self, group_id: str) -> int:
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.group_id_not_found
        if group.state != GroupState.EMPTY or group.members:
            return ErrorCode.non_empty_group
        if not self._forget(group, list(group.offsets)):
            return ErrorCode.coordinator_not_available
        return ErrorCode.none

    def _forget(self, group: Group, partitions: Sequence[tuple[str, int]]) -> bool:
        """Tombstone these offsets, and the group itself once it has neither members nor offsets.

        False (nothing changed) when the store refused the tombstones.
        """
        dead = group.state == GroupState.EMPTY and set(partitions) >= set(group.offsets)
        tombstones: list[StoreRecord] = [
            (storage.offset_key(group.group_id, topic, partition), None)
            for topic, partition in partitions
        ]
        if dead:
            tombstones.append((storage.group_key(group.group_id), None))
        try:
            self._store.append(tombstones)
        except OSError as exc:
            log.warning("group %s: writing tombstones failed: %s", group.group_id, exc)
            return False
        for partition in partitions:
            del group.offsets[partition]
        if dead:
            group.transition(GroupState.DEAD, self._clock_ms())
            del self._groups[group.group_id]
        return True

    def _expire_offsets(self, now_ms: int) -> None:
        """Kafka's offsets.retention.minutes: an Empty group's offsets go `retention` after it
        emptied (or, for groups that never had members, after each commit); then the group."""
        for group in list(self._groups.values()):
            if group.state != GroupState.EMPTY or group.pending_members:
                continue
            expired = group.expired_offsets(now_ms, self._offsets_retention_ms)
            if expired or not group.offsets:
                self._forget(group, expired)

    def _persist_quietly(self, group: Group) -> None:
        """Kafka stores an emptied group's new generation but only logs a failure."""
        record = storage.group_value(group.to_record())
        try:
            self._store.append([(storage.group_key(group.group_id), record)])
        except OSError as exc:
            log.warning("group %s: storing metadata failed: %s", group.group_id, exc)

    # -- time --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Expire silent members, KIP-394 ids and old offsets; end rebalances that are due."""
        now_ms = self._clock_ms()
        for group in list(self._groups.values()):
            self._expire(group, now_ms)
            self._maybe_complete_join(group)
        if now_ms >= self._next_retention_check_ms:
            self._next_retention_check_ms = now_ms + self._retention_check_interval_ms
            self._expire_offsets(now_ms)

    def _expire(self, group: Group, now_ms: int) -> None:
        for member_id in [m for m, expiry in group.pending_members.items() if now_ms >= expiry]:
            del group.pending_members[member_id]
        silent = [m.member_id for m in group.members.values() if m.session_expired(now_ms)]
        self._remove_members(group, silent, "session timed out")
        syncing = group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
        if syncing and group.pending_sync and now_ms >= group.sync_deadline_ms:
            self._remove_members(group, sorted(group.pending_sync), "never sent SyncGroup")
