"""Simulated consumers running the client side of the protocol against one coordinator.

Each client loops join -> sync -> heartbeat, rejoining on REBALANCE_IN_PROGRESS and
resetting its id on UNKNOWN_MEMBER_ID, as librdkafka does. Members come, leave and crash;
the group must settle each time with one generation and every member assigned.
"""

from __future__ import annotations

import anyio
import pytest
from kio.schema.errors import ErrorCode

from broker.groups import GroupCoordinator
from tests.unit.test_groups_membership import Clock, anyio_backend, coordinator, join

__all__ = ["anyio_backend"]

FAKE_MS_PER_STEP = 50


class Client:
    def __init__(self, gc: GroupCoordinator) -> None:
        self.gc = gc
        self.member_id = ""
        self.generation = -1
        self.assignment = b""
        self.scope = anyio.CancelScope()

    async def run(self, leave: bool) -> None:
        with self.scope:
            try:
                while True:
                    if await self._rebalance():
                        await self._heartbeat_until_told_otherwise()
            finally:
                if leave and self.member_id:
                    self.gc.leave_group("g", [(self.member_id, None)])

    async def _rebalance(self) -> bool:
        joined = await join(self.gc, self.member_id, require_known=True)
        if joined.error in (ErrorCode.member_id_required, ErrorCode.none):
            self.member_id = joined.member_id
        elif joined.error == ErrorCode.unknown_member_id:
            self.member_id = ""
        if joined.error != ErrorCode.none:
            return False
        plan = {m.member_id: m.member_id.encode() for m in joined.members}
        synced = await self.gc.sync_group("g", joined.generation_id, self.member_id, plan)
        if synced.error == ErrorCode.unknown_member_id:
            self.member_id = ""
        self.generation, self.assignment = joined.generation_id, synced.assignment
        return synced.error == ErrorCode.none

    async def _heartbeat_until_told_otherwise(self) -> None:
        while True:
            await anyio.sleep(0.001)
            error = self.gc.heartbeat("g", self.generation, self.member_id)
            if error != ErrorCode.none:
                if error in (ErrorCode.unknown_member_id, ErrorCode.illegal_generation):
                    self.member_id = ""
                return


async def settled(gc: GroupCoordinator, clients: list[Client]) -> None:
    with anyio.fail_after(10):
        while True:
            described = gc.describe_group("g")
            ids = {m.member_id for m in described.members}
            if described.state == "Stable" and ids == {c.member_id for c in clients}:
                generations = {c.generation for c in clients}
                assigned = all(c.assignment == c.member_id.encode() for c in clients)
                if len(generations) == 1 and assigned:
                    return
            await anyio.sleep(0.001)


@pytest.mark.anyio
async def test_clients_settle_through_joins_leaves_and_a_crash() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=300)

    async def time_passes() -> None:
        while True:
            await anyio.sleep(0.001)
            clock.advance(FAKE_MS_PER_STEP, gc)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(time_passes)
        clients = [Client(gc) for _ in range(5)]
        for client in clients:
            tasks.start_soon(client.run, client is not clients[4])
        await settled(gc, clients)

        for leaver in clients[:2]:
            leaver.scope.cancel()
        clients[4].scope.cancel()  # crashes: no LeaveGroup, its session must run out
        await settled(gc, clients[2:4])

        late = Client(gc)
        tasks.start_soon(late.run, True)
        await settled(gc, [*clients[2:4], late])
        assert gc.describe_group("g").members[0].assignment
        tasks.cancel_scope.cancel()
    assert gc.describe_group("g").state == "Empty", "the last ones left on the way out"
