"""Group membership driven directly on asyncio and trio: joins, syncs, heartbeats, rebalances.

Time is a fake clock the tests move; `tick()` plays the broker's timer loop. The helpers
here are shared with test_groups_offsets.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import anyio
import pytest
from kio.schema.errors import ErrorCode

from broker.groups import GroupCoordinator, JoinResult, SyncResult

SESSION_MS = 10_000
PROTOCOLS = (("range", b"range-meta"),)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class ListStore:
    """The offsets topic as a list; `fail` makes appends raise like a full disk."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.fail = False

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.records.extend(records)

    def load(self) -> Iterable[tuple[bytes, bytes | None]]:
        return list(self.records)


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int, gc: GroupCoordinator) -> None:
        self.now_ms += ms
        gc.tick()


def coordinator(
    store: ListStore | None = None, clock: Clock | None = None, initial_delay_ms: int = 0
) -> GroupCoordinator:
    return GroupCoordinator(
        store if store is not None else ListStore(),
        clock_ms=clock or Clock(),
        initial_rebalance_delay_ms=initial_delay_ms,
    )


async def join(
    gc: GroupCoordinator,
    member_id: str = "",
    *,
    group: str = "g",
    protocols: Sequence[tuple[str, bytes]] = PROTOCOLS,
    protocol_type: str = "consumer",
    instance: str | None = None,
    require_known: bool = False,
    session_ms: int = SESSION_MS,
    rebalance_ms: int = SESSION_MS,
) -> JoinResult:
    return await gc.join_group(
        group,
        member_id,
        instance,
        protocol_type,
        protocols,
        session_ms,
        rebalance_ms,
        "client",
        "10.0.0.1",
        require_known,
    )


async def parked(gc: GroupCoordinator, count: int, group: str = "g") -> None:
    """Wait until `count` members are in the group (their calls parked on the coordinator)."""
    with anyio.fail_after(5):
        while len(gc.describe_group(group).members) < count:
            await anyio.sleep(0.001)
        await anyio.sleep(0.01)  # let every task reach its await


async def join_all(gc: GroupCoordinator, member_ids: Sequence[str]) -> dict[str, JoinResult]:
    """Concurrent JoinGroups; result by the member id each call got."""
    results: list[JoinResult] = []

    async def one(member_id: str) -> None:
        results.append(await join(gc, member_id))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for member_id in member_ids:
                tasks.start_soon(one, member_id)
    return {r.member_id: r for r in results}


async def sync_all(gc: GroupCoordinator, joined: dict[str, JoinResult]) -> dict[str, SyncResult]:
    """Everyone syncs, followers first; the leader assigns each member its own id."""
    leader = next(r for r in joined.values() if r.members)
    plan = {m.member_id: m.member_id.encode() for m in leader.members}
    results: dict[str, SyncResult] = {}

    async def one(result: JoinResult) -> None:
        mine = plan if result is leader else {}
        results[result.member_id] = await gc.sync_group(
            "g", result.generation_id, result.member_id, mine
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for result in joined.values():
                if result is not leader:
                    tasks.start_soon(one, result)
            await anyio.sleep(0.01)
            tasks.start_soon(one, leader)
    return results


async def form_group(gc: GroupCoordinator, clock: Clock, size: int) -> dict[str, JoinResult]:
    """`size` new members in one generation (needs an initial rebalance delay)."""
    results: list[JoinResult] = []

    async def one() -> None:
        results.append(await join(gc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for _ in range(size):
                tasks.start_soon(one)
            await parked(gc, size)
            clock.advance(1_000, gc)
    joined = {r.member_id: r for r in results}
    synced = await sync_all(gc, joined)
    assert all(s.error == ErrorCode.none for s in synced.values())
    return joined


@pytest.mark.anyio
async def test_single_member_join_sync_heartbeat() -> None:
    gc = coordinator()
    joined = await join(gc)
    assert (joined.error, joined.generation_id, joined.protocol_name) == (0, 1, "range")
    assert joined.leader == joined.member_id and joined.member_id.startswith("client-")
    assert [(m.member_id, m.metadata) for m in joined.members] == [
        (joined.member_id, b"range-meta")
    ]
    assert gc.describe_group("g").state == "CompletingRebalance"
    synced = await gc.sync_group(
        "g", 1, joined.member_id, {joined.member_id: b"plan"}, protocol_name="range"
    )
    assert (synced.error, synced.assignment, synced.protocol_name) == (0, b"plan", "range")
    assert gc.heartbeat("g", 1, joined.member_id) == ErrorCode.none
    described = gc.describe_group("g")
    assert (described.state, described.protocol, described.protocol_type) == (
        "Stable",
        "range",
        "consumer",
    )
    assert [(m.metadata, m.assignment, m.client_host) for m in described.members] == [
        (b"range-meta", b"plan", "10.0.0.1")
    ]
    assert gc.list_groups() == [("g", "consumer", "Stable")]


@pytest.mark.anyio
async def test_three_concurrent_joiners_share_one_generation_and_get_their_assignments() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=300)
    joined = await form_group(gc, clock, 3)
    assert len(joined) == 3
    assert {r.generation_id for r in joined.values()} == {1}
    assert len({r.leader for r in joined.values()}) == 1
    leaders = [r for r in joined.values() if r.members]
    assert len(leaders) == 1 and {m.member_id for m in leaders[0].members} == set(joined)
    described = gc.describe_group("g")
    assert described.state == "Stable"
    assert {m.member_id: m.assignment for m in described.members} == {
        member_id: member_id.encode() for member_id in joined
    }


@pytest.mark.anyio
async def test_initial_delay_holds_the_first_joiners() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=300)
    results: list[JoinResult] = []

    async def one() -> None:
        results.append(await join(gc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            await parked(gc, 1)
            clock.advance(299, gc)
            assert not results and gc.describe_group("g").state == "PreparingRebalance"
            clock.advance(1, gc)
    assert results[0].error == ErrorCode.none


@pytest.mark.anyio
async def test_a_leaving_member_triggers_a_rebalance_to_two() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=300)
    first, second, third = await form_group(gc, clock, 3)
    left = gc.leave_group("g", [(first, None)])
    assert left.error == ErrorCode.none and left.members[0].error == ErrorCode.none
    assert gc.describe_group("g").state == "PreparingRebalance"
    assert gc.heartbeat("g", 1, second) == ErrorCode.rebalance_in_progress
    assert gc.heartbeat("g", 1, first) == ErrorCode.unknown_member_id
    rejoined = await join_all(gc, [second, third])
    assert {r.generation_id for r in rejoined.values()} == {2}
    leader = next(r for r in rejoined.values() if r.members)
    assert {m.member_id for m in leader.members} == {second, third}
    synced = await sync_all(gc, rejoined)
    assert {k: v.assignment for k, v in synced.items()} == {
        second: second.encode(),
        third: third.encode(),
    }


@pytest.mark.anyio
async def test_the_last_member_leaving_empties_the_group() -> None:
    gc = coordinator()
    joined = await join(gc)
    await gc.sync_group("g", 1, joined.member_id, {})
    assert gc.leave_group("g", [(joined.member_id, None)]).members[0].error == 0
    described = gc.describe_group("g")
    assert (described.state, described.members) == ("Empty", ())
    assert gc.list_groups() == [("g", "consumer", "Empty")]


@pytest.mark.anyio
async def test_a_silent_member_is_expelled_after_its_session_timeout() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=300)
    quiet, chatty = await form_group(gc, clock, 2)
    clock.advance(6_000, gc)
    assert gc.heartbeat("g", 1, chatty) == ErrorCode.none
    clock.advance(SESSION_MS - 6_000, gc)
    assert gc.describe_group("g").state == "Stable", "a session lasts session_timeout_ms"
    clock.advance(1, gc)
    assert gc.heartbeat("g", 1, quiet) == ErrorCode.unknown_member_id
    assert gc.heartbeat("g", 1, chatty) == ErrorCode.rebalance_in_progress
    rejoined = await join(gc, chatty)
    assert (rejoined.generation_id, [m.member_id for m in rejoined.members]) == (2, [chatty])


@pytest.mark.anyio
async def test_member_id_required_then_rejoin_with_it() -> None:
    gc = coordinator()
    first = await join(gc, require_known=True)
    assert first.error == ErrorCode.member_id_required
    assert first.member_id.startswith("client-") and len(first.member_id) > len("client-")
    second = await join(gc, first.member_id, require_known=True)
    assert (second.error, second.member_id, second.generation_id) == (0, first.member_id, 1)
    stranger = await join(gc, "client-made-up", require_known=True)
    assert stranger.error == ErrorCode.unknown_member_id


@pytest.mark.anyio
async def test_an_unclaimed_member_id_holds_the_rebalance_until_it_expires() -> None:
    clock = Clock()
    gc = coordinator(clock=clock)
    pending = await join(gc, require_known=True)
    assert pending.error == ErrorCode.member_id_required
    results: list[JoinResult] = []

    async def other() -> None:
        results.append(await join(gc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(other)
            await parked(gc, 1)
            assert not results, "Kafka waits for issued member ids to join"
            clock.advance(SESSION_MS, gc)
    assert results[0].error == ErrorCode.none and len(results[0].members) == 1
    late = await join(gc, pending.member_id, require_known=True)
    assert late.error == ErrorCode.unknown_member_id


@pytest.mark.anyio
async def test_generation_and_member_errors() -> None:
    gc = coordinator()
    joined = await join(gc)
    member = joined.member_id
    assert gc.heartbeat("g", 1, member) == ErrorCode.none  # CompletingRebalance: fine
    assert (await gc.sync_group("g", 2, member, {})).error == ErrorCode.illegal_generation
    assert (await gc.sync_group("g", 1, "nobody", {})).error == ErrorCode.unknown_member_id
    assert (await gc.sync_group("other", 1, member, {})).error == ErrorCode.unknown_member_id
    bad_protocol = await gc.sync_group("g", 1, member, {}, protocol_name="roundrobin")
    assert bad_protocol.error == ErrorCode.inconsistent_group_protocol
    assert (await gc.sync_group("g", 1, member, {})).error == ErrorCode.none
    assert gc.heartbeat("g", 0, member) == ErrorCode.illegal_generation
    assert gc.heartbeat("g", 1, "nobody") == ErrorCode.unknown_member_id
    assert gc.heartbeat("unknown-group", 1, member) == ErrorCode.unknown_member_id
    assert gc.heartbeat("", 1, member) == ErrorCode.invalid_group_id
    assert (await join(gc, "nobody")).error == ErrorCode.unknown_member_id
    assert (await join(gc, group="")).error == ErrorCode.invalid_group_id
    assert (await join(gc, session_ms=100)).error == ErrorCode.invalid_session_timeout
    assert [m.error for m in gc.leave_group("g", [("nobody", None)]).members] == [
        ErrorCode.unknown_member_id
    ]
    assert gc.leave_group("nope", [("x", None)]).members[0].error == ErrorCode.unknown_member_id


@pytest.mark.anyio
async def test_protocol_mismatches_are_inconsistent() -> None:
    gc = coordinator()
    joined = await join(gc)
    await gc.sync_group("g", 1, joined.member_id, {})
    other_type = await join(gc, protocol_type="connect")
    assert other_type.error == ErrorCode.inconsistent_group_protocol
    no_common = await join(gc, protocols=[("roundrobin", b"")])
    assert no_common.error == ErrorCode.inconsistent_group_protocol
    assert (await join(gc, group="h", protocols=[])).error == (
        ErrorCode.inconsistent_group_protocol
    )
    assert gc.describe_group("g").state == "Stable", "a refused joiner changes nothing"


@pytest.mark.anyio
async def test_protocol_is_chosen_by_vote_among_common_ones() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    preferences = [
        [("range", b"a"), ("roundrobin", b"b"), ("sticky", b"c")],
        [("roundrobin", b"d"), ("range", b"e")],
        [("sticky", b"f"), ("roundrobin", b"g"), ("range", b"h")],
    ]
    results: list[JoinResult] = []

    async def one(protocols: list[tuple[str, bytes]]) -> None:
        results.append(await join(gc, protocols=protocols))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for protocols in preferences:
                tasks.start_soon(one, protocols)
            await parked(gc, 3)
            clock.advance(100, gc)
    assert {r.protocol_name for r in results} == {"roundrobin"}, "sticky is not common to all"
    leader = next(r for r in results if r.members)
    assert sorted(m.metadata for m in leader.members) == [b"b", b"d", b"g"]


@pytest.mark.anyio
async def test_members_that_do_not_rejoin_in_time_are_dropped() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=300)
    joined = await form_group(gc, clock, 2)
    first = next(r.member_id for r in joined.values() if r.members)  # a leader's rejoin rebalances
    second = next(member_id for member_id in joined if member_id != first)
    results: list[JoinResult] = []

    async def rejoin() -> None:
        results.append(await join(gc, first, rebalance_ms=5_000))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(rejoin)
            await anyio.sleep(0.01)
            assert gc.describe_group("g").state == "PreparingRebalance"
            clock.advance(4_000, gc)
            assert gc.heartbeat("g", 1, second) == ErrorCode.rebalance_in_progress
            clock.advance(6_001, gc)  # the group's rebalance timeout is the largest: 10 s
    assert results[0].generation_id == 2
    assert [m.member_id for m in results[0].members] == [first]
    assert gc.heartbeat("g", 1, second) == ErrorCode.unknown_member_id


@pytest.mark.anyio
async def test_a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    results: list[JoinResult] = []

    async def one() -> None:
        results.append(await join(gc, rebalance_ms=5_000))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            tasks.start_soon(one)
            await parked(gc, 2)
            clock.advance(100, gc)
    leader = next(r for r in results if r.members)
    follower = next(r for r in results if not r.members)
    synced: list[SyncResult] = []

    async def follower_sync() -> None:
        synced.append(await gc.sync_group("g", 1, follower.member_id, {}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(follower_sync)
            await anyio.sleep(0.01)
            assert gc.heartbeat("g", 1, leader.member_id) == ErrorCode.none
            clock.advance(5_000, gc)
    assert synced[0].error == ErrorCode.rebalance_in_progress
    assert gc.heartbeat("g", 1, leader.member_id) == ErrorCode.unknown_member_id
    assert gc.heartbeat("g", 1, follower.member_id) == ErrorCode.rebalance_in_progress


@pytest.mark.anyio
async def test_a_new_member_sends_the_others_back_to_rejoin() -> None:
    gc = coordinator()
    first = await join(gc)
    synced: list[SyncResult] = []
    joined: list[JoinResult] = []

    async def newcomer() -> None:
        joined.append(await join(gc))

    async def rejoin_first() -> None:
        joined.append(await join(gc, first.member_id))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(newcomer)
            await parked(gc, 2)
            synced.append(await gc.sync_group("g", 1, first.member_id, {}))
            tasks.start_soon(rejoin_first)
    assert synced[0].error == ErrorCode.rebalance_in_progress
    assert {r.generation_id for r in joined} == {2} and len(joined) == 2


@pytest.mark.anyio
async def test_an_unchanged_follower_rejoining_a_stable_group_causes_no_rebalance() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    joined = await form_group(gc, clock, 2)
    follower = next(r for r in joined.values() if not r.members)
    again = await join(gc, follower.member_id)
    assert (again.error, again.generation_id, again.members) == (0, 1, ())
    assert gc.describe_group("g").state == "Stable"
    resync = await gc.sync_group("g", 1, follower.member_id, {})
    assert resync.assignment == follower.member_id.encode()


@pytest.mark.anyio
async def test_a_duplicate_join_while_parked_gets_the_same_answer() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    first = await join(gc, require_known=True)
    answers: list[JoinResult] = []

    async def one() -> None:
        answers.append(await join(gc, first.member_id, require_known=True))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            await parked(gc, 1)
            tasks.start_soon(one)
            await anyio.sleep(0.01)
            clock.advance(100, gc)
    assert answers[0] == answers[1] and answers[0].generation_id == 1


@pytest.mark.anyio
async def test_static_member_replaces_its_old_id_and_fences_it() -> None:
    gc = coordinator()
    first = await join(gc, instance="pod-0", require_known=True)
    assert first.error == ErrorCode.none and first.member_id.startswith("pod-0-")
    await gc.sync_group("g", 1, first.member_id, {first.member_id: b"p0"})
    second = await join(gc, instance="pod-0", require_known=True)
    assert second.error == ErrorCode.none and second.member_id != first.member_id
    assert gc.heartbeat("g", 2, first.member_id, "pod-0") == ErrorCode.fenced_instance_id
    assert (await join(gc, first.member_id, instance="pod-0")).error == (
        ErrorCode.fenced_instance_id
    )
    assert (await join(gc, second.member_id, instance="pod-9")).error == (
        ErrorCode.unknown_member_id
    )
    synced = await gc.sync_group("g", 2, second.member_id, {second.member_id: b"p0"})
    assert synced.assignment == b"p0"
    fenced = gc.leave_group("g", [(first.member_id, "pod-0")])
    assert fenced.members[0].error == ErrorCode.fenced_instance_id
    left = gc.leave_group("g", [("", "pod-0")])
    assert left.members[0].error == ErrorCode.none
    assert gc.describe_group("g").state == "Empty"


@pytest.mark.anyio
async def test_absent_static_member_keeps_its_place_at_the_join_deadline() -> None:
    clock = Clock()
    gc = coordinator(clock=clock)
    static = await join(gc, instance="pod-0")
    await gc.sync_group("g", 1, static.member_id, {})
    results: list[JoinResult] = []

    async def dynamic() -> None:
        results.append(await join(gc, session_ms=60_000, rebalance_ms=5_000))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(dynamic)
            await parked(gc, 2)
            assert gc.heartbeat("g", 1, static.member_id, "pod-0") == (
                ErrorCode.rebalance_in_progress
            )
            clock.advance(SESSION_MS, gc)  # the rebalance deadline (the larger timeout)
    newcomer = results[0]
    assert newcomer.leader == newcomer.member_id, "a member that rejoined leads"
    assert {m.group_instance_id for m in newcomer.members} == {"pod-0", None}


@pytest.mark.anyio
async def test_leave_result_lists_members_in_request_order() -> None:
    gc = coordinator()
    joined = await join(gc)
    result = gc.leave_group("g", [("ghost", None), (joined.member_id, None)])
    assert [(m.member_id, m.error) for m in result.members] == [
        ("ghost", ErrorCode.unknown_member_id),
        (joined.member_id, ErrorCode.none),
    ]
    assert result.error == ErrorCode.none and len(result.members) == 2


@pytest.mark.anyio
async def test_a_parked_join_is_answered_when_its_member_leaves() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    pending = await join(gc, require_known=True)
    answers: list[JoinResult] = []

    async def one() -> None:
        answers.append(await join(gc, pending.member_id, require_known=True))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            await parked(gc, 1)
            gc.leave_group("g", [(pending.member_id, None)])
    assert answers[0].error == ErrorCode.unknown_member_id


def test_describe_unknown_group_is_dead() -> None:
    gc = coordinator()
    described = gc.describe_group("nope")
    assert (described.state, described.protocol_type, described.members) == ("Dead", "", ())
    assert gc.list_groups() == []
