"""The group coordinator driven directly, on asyncio and trio, with a controllable clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.groups import GroupCoordinator, OffsetAndMetadata, storage
from broker.groups.coordinator import (
    ILLEGAL_GENERATION,
    MEMBER_ID_REQUIRED,
    NONE,
    REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class ListStore:
    """Keeps records in memory in append order (the broker's store is a log partition)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        self.records.extend(records)

    def load(self) -> Iterable[tuple[bytes, bytes | None]]:
        return list(self.records)


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def __call__(self) -> int:
        return self.now_ms


def coordinator(
    store: ListStore | None = None, clock: Clock | None = None, initial_delay_ms: int = 0
) -> GroupCoordinator:
    return GroupCoordinator(
        store or ListStore(), clock_ms=clock or Clock(), initial_rebalance_delay_ms=initial_delay_ms
    )


async def join(
    gc: GroupCoordinator, member_id: str = "", protocols: tuple[str, ...] = ("range",)
) -> object:
    return await gc.join_group(
        "g",
        member_id,
        None,
        "consumer",
        [(p, p.encode()) for p in protocols],
        10_000,
        10_000,
        "client",
        "127.0.0.1",
        require_known_member_id=False,
    )


@pytest.mark.anyio
async def test_single_member_join_sync_heartbeat() -> None:
    gc = coordinator()
    result = await join(gc)
    assert result.error == NONE and result.leader == result.member_id and result.generation_id == 1  # type: ignore[attr-defined]
    sync = await gc.sync_group("g", 1, result.member_id, {result.member_id: b"plan"})  # type: ignore[attr-defined]
    assert (sync.error, sync.assignment) == (NONE, b"plan")
    assert gc.heartbeat("g", 1, result.member_id) == NONE  # type: ignore[attr-defined]
    assert gc.heartbeat("g", 0, result.member_id) == ILLEGAL_GENERATION  # type: ignore[attr-defined]
    assert gc.heartbeat("g", 1, "stranger") == UNKNOWN_MEMBER_ID


@pytest.mark.anyio
async def test_member_id_required_then_rejoin() -> None:
    gc = coordinator()
    first = await gc.join_group(
        "g",
        "",
        None,
        "consumer",
        [("range", b"")],
        10_000,
        10_000,
        "c",
        "h",
        require_known_member_id=True,
    )
    assert first.error == MEMBER_ID_REQUIRED and first.member_id.startswith("c-")
    second = await gc.join_group(
        "g",
        first.member_id,
        None,
        "consumer",
        [("range", b"")],
        10_000,
        10_000,
        "c",
        "h",
        require_known_member_id=True,
    )
    assert second.error == NONE and second.member_id == first.member_id


@pytest.mark.anyio
async def test_three_members_one_generation_then_one_leaves() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    results: list[object] = []

    async def first_join() -> None:
        results.append(await join(gc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(first_join)
            await anyio.sleep(0.05)
            assert not results, "the initial rebalance delay holds the first joiners"
            clock.now_ms += 101
            gc.tick()
    generations = {r.generation_id for r in results}  # type: ignore[attr-defined]
    assert generations == {1} and all(r.error == NONE for r in results)  # type: ignore[attr-defined]
    leader = next(r for r in results if r.members)  # type: ignore[attr-defined]
    assert len(leader.members) == 3  # type: ignore[attr-defined]
    ids = [r.member_id for r in results]  # type: ignore[attr-defined]
    assignments = {member_id: member_id.encode() for member_id in ids}
    synced: dict[str, bytes] = {}

    async def sync(member_id: str) -> None:
        plan = assignments if member_id == leader.member_id else {}  # type: ignore[attr-defined]
        reply = await gc.sync_group("g", 1, member_id, plan)
        synced[member_id] = reply.assignment

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for member_id in ids:
                tasks.start_soon(sync, member_id)
    assert synced == assignments
    assert gc.leave_group("g", [ids[0]]) == {ids[0]: NONE}
    assert gc.heartbeat("g", 1, ids[1]) == REBALANCE_IN_PROGRESS


@pytest.mark.anyio
async def test_silent_member_is_expelled_after_session_timeout() -> None:
    clock = Clock()
    gc = coordinator(clock=clock)
    result = await join(gc)
    await gc.sync_group("g", 1, result.member_id, {})  # type: ignore[attr-defined]
    clock.now_ms += 10_001
    gc.tick()
    assert gc.describe_group("g").state == "Empty"
    assert gc.heartbeat("g", 1, result.member_id) == UNKNOWN_MEMBER_ID  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_offsets_commit_fetch_and_survive_reload() -> None:
    store = ListStore()
    gc = coordinator(store)
    result = await join(gc)
    await gc.sync_group("g", 1, result.member_id, {})  # type: ignore[attr-defined]
    offsets = {("t", 0): OffsetAndMetadata(42, 3, "meta", 7)}
    assert gc.commit_offsets("g", 1, result.member_id, offsets) == {("t", 0): NONE}  # type: ignore[attr-defined]
    assert gc.commit_offsets("g", 0, result.member_id, offsets) == {("t", 0): ILLEGAL_GENERATION}  # type: ignore[attr-defined]
    assert gc.commit_offsets("g", -1, "", offsets) == {("t", 0): UNKNOWN_MEMBER_ID}, (
        "group has members"
    )
    assert gc.commit_offsets("standalone", -1, "", {("t", 1): OffsetAndMetadata(5)}) == {
        ("t", 1): NONE
    }
    reloaded = coordinator(store)
    reloaded.load()
    assert reloaded.fetch_offsets("g", [("t", 0), ("t", 9)]) == {
        ("t", 0): offsets[("t", 0)],
        ("t", 9): None,
    }
    assert reloaded.fetch_offsets("standalone", None) == {("t", 1): OffsetAndMetadata(5)}
    reloaded.delete_offsets_for_topic("t")
    again = coordinator(store)
    again.load()
    assert again.fetch_offsets("g", None) == {}


def test_offset_commit_key_layout_matches_kafka() -> None:
    key = storage.offset_key("grp", "tp", 7)
    assert key == b"\x00\x01" + b"\x00\x03grp" + b"\x00\x02tp" + b"\x00\x00\x00\x07"
    value = storage.offset_value(OffsetAndMetadata(5, -1, "", 9))
    assert value == b"\x00\x03" + (5).to_bytes(8, "big") + b"\xff\xff\xff\xff" + b"\x00\x00" + (
        9
    ).to_bytes(8, "big")


@given(
    st.text(max_size=20),
    st.text(max_size=20),
    st.integers(0, 2**31 - 1),
    st.integers(-1, 2**62),
    st.integers(-1, 2**31 - 1),
    st.text(max_size=30),
)
def test_storage_round_trips(
    group: str, topic: str, partition: int, offset: int, epoch: int, meta: str
) -> None:
    assert storage.decode_key(storage.offset_key(group, topic, partition)) == (
        group,
        topic,
        partition,
    )
    value = OffsetAndMetadata(offset, epoch, meta, 123)
    assert storage.decode_offset_value(storage.offset_value(value)) == value
    assert storage.decode_key(storage.group_key(group)) == group
