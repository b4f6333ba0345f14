"""Workers of one flow share its partitions through a Kafka consumer group on the target.

The group's leader gives each member an (index, count) pair; a member owns the
partitions `owner_index(topic, partition, count) == index`. Ownership depends only on
the names, so members that discover topics at different moments still agree, and new
topics need no rebalance. A member that loses the group (rebalance, dead coordinator,
heartbeats failing for a session timeout) gives up its partitions before rejoining, so
no two workers ever write one target partition at the same time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.groups import find_coordinator, heartbeat, join_group, leave_group, sync_group
from broker.protocol.errors import ErrorCode
from mirror.backoff import Backoff

log = logging.getLogger(__name__)

PROTOCOL_TYPE = "regionlink-mirror"
PROTOCOL_NAME = "name-hash"


@dataclass(frozen=True)
class Assignment:
    index: int
    count: int
    generation: int

    def owns(self, topic: str, partition: int) -> bool:
        return owner_index(topic, partition, self.count) == self.index


def owner_index(topic: str, partition: int, count: int) -> int:
    """Partitions of one topic go round-robin, starting at a topic-dependent member."""
    assert count > 0
    return (zlib.crc32(topic.encode()) + partition) % count


def assign(member_ids: list[str]) -> dict[str, bytes]:
    """The leader's assignment: members sorted by id get indexes 0..n-1."""
    ordered = sorted(member_ids)
    return {
        member: json.dumps({"index": i, "count": len(ordered)}).encode()
        for i, member in enumerate(ordered)
    }


def parse_assignment(data: bytes, generation: int) -> Assignment:
    decoded = json.loads(data)
    return Assignment(int(decoded["index"]), int(decoded["count"]), generation)


_FORGET_MEMBER_ERRORS = frozenset(
    {ErrorCode.unknown_member_id, ErrorCode.illegal_generation, ErrorCode.fenced_instance_id}
)
OnAssignment = Callable[[Assignment | None], Awaitable[None]]


class Membership:
    """Runs the join/sync/heartbeat cycle and reports assignment changes."""

    def __init__(
        self,
        client: KafkaClient,
        group_id: str,
        on_assignment: OnAssignment,
        session_timeout_s: float = 10.0,
        heartbeat_interval_s: float = 1.0,
        instance_id: str | None = None,
    ) -> None:
        self.client = client
        self.group_id = group_id
        self.on_assignment = on_assignment
        self.session_timeout_s = session_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.instance_id = instance_id  # static membership: a restart replaces the old member
        self.member_id = ""
        self.assignment: Assignment | None = None
        self._coordinator: int | None = None

    async def run(self) -> None:
        backoff = Backoff(initial_s=0.2, max_s=5.0)
        try:
            while True:
                try:
                    await self._join_and_hold()
                    backoff.reset()
                except (KafkaError, KafkaConnectionError) as exc:
                    await self._revoke()
                    if isinstance(exc, KafkaError) and exc.code in _FORGET_MEMBER_ERRORS:
                        self.member_id = ""
                    self._coordinator = None
                    delay_s = backoff.next_delay_s()
                    log.warning("group %s: %s; rejoining in %.1fs", self.group_id, exc, delay_s)
                    await anyio.sleep(delay_s)
        finally:
            with anyio.CancelScope(shield=True):
                await self._leave()

    async def _join_and_hold(self) -> None:
        if self._coordinator is None:
            self._coordinator = await find_coordinator(self.client, self.group_id)
        session_ms = int(self.session_timeout_s * 1000)
        joined = await join_group(
            self.client,
            self._coordinator,
            self.group_id,
            self.member_id,
            PROTOCOL_TYPE,
            [(PROTOCOL_NAME, b"")],
            session_ms,
            session_ms,
            self.instance_id,
        )
        self.member_id = joined.member_id
        assignments: dict[str, bytes] = {}
        if joined.leader == joined.member_id:
            assignments = assign([m for m, _ in joined.members])
        data = await sync_group(
            self.client,
            self._coordinator,
            self.group_id,
            joined.generation_id,
            self.member_id,
            assignments,
            self.instance_id,
        )
        self.assignment = parse_assignment(data, joined.generation_id)
        log.info(
            "group %s: member %d of %d (generation %d)",
            self.group_id,
            self.assignment.index,
            self.assignment.count,
            joined.generation_id,
        )
        await self.on_assignment(self.assignment)
        await self._heartbeat_until_rebalance(joined.generation_id)
        await self._revoke()

    async def _heartbeat_until_rebalance(self, generation: int) -> None:
        assert self._coordinator is not None
        last_ok_s = time.monotonic()
        while True:
            await anyio.sleep(self.heartbeat_interval_s)
            try:
                error = await heartbeat(
                    self.client,
                    self._coordinator,
                    self.group_id,
                    generation,
                    self.member_id,
                    self.instance_id,
                )
            except KafkaConnectionError:
                if time.monotonic() - last_ok_s > self.session_timeout_s:
                    raise  # we may have been evicted: stop writing before anyone takes over
                continue
            if error == 0:
                last_ok_s = time.monotonic()
                continue
            if error in _FORGET_MEMBER_ERRORS:
                self.member_id = ""
            log.info("group %s: heartbeat says %s; rejoining", self.group_id, ErrorCode(error).name)
            return

    async def _revoke(self) -> None:
        if self.assignment is not None:
            self.assignment = None
            await self.on_assignment(None)

    async def _leave(self) -> None:
        if self._coordinator is None or not self.member_id:
            return
        with anyio.move_on_after(2):
            with contextlib.suppress(KafkaError, KafkaConnectionError):
                await leave_group(
                    self.client, self._coordinator, self.group_id, self.member_id, self.instance_id
                )
