"""Committed offsets, the records behind them, and recovery into a new coordinator."""

from __future__ import annotations

import anyio
import pytest
from kio.schema.errors import ErrorCode

from broker.groups import GroupCoordinator, OffsetAndMetadata, storage
from tests.unit.test_groups_membership import (
    SESSION_MS,
    Clock,
    ListStore,
    anyio_backend,
    coordinator,
    form_group,
    join,
)

__all__ = ["anyio_backend"]  # the fixture, re-exported so this module runs on both backends

TP = ("orders", 0)


def reloaded(store: ListStore, clock: Clock | None = None) -> GroupCoordinator:
    gc = coordinator(store, clock)
    gc.load()
    return gc


async def stable_member(gc: GroupCoordinator) -> str:
    joined = await join(gc)
    synced = await gc.sync_group("g", joined.generation_id, joined.member_id, {})
    assert synced.error == ErrorCode.none
    return joined.member_id


@pytest.mark.anyio
async def test_commit_and_fetch_in_a_stable_group() -> None:
    gc = coordinator()
    member = await stable_member(gc)
    offsets = {TP: OffsetAndMetadata(42, 3, "meta", 7), ("orders", 1): OffsetAndMetadata(9)}
    assert gc.commit_offsets("g", 1, member, offsets) == dict.fromkeys(offsets, 0)
    assert gc.fetch_offsets("g", [TP, ("orders", 5)]) == {TP: offsets[TP], ("orders", 5): None}
    assert gc.fetch_offsets("g", None) == offsets
    assert gc.fetch_offsets("unknown", [TP]) == {TP: None}


@pytest.mark.anyio
async def test_commit_errors_follow_kafka() -> None:
    gc = coordinator()
    member = await stable_member(gc)
    value = {TP: OffsetAndMetadata(1)}
    assert gc.commit_offsets("g", 0, member, value) == {TP: ErrorCode.illegal_generation}
    assert gc.commit_offsets("g", 1, "nobody", value) == {TP: ErrorCode.unknown_member_id}
    assert gc.commit_offsets("g", -1, "", value) == {TP: ErrorCode.unknown_member_id}, (
        "a simple commit is refused while the group has members"
    )
    assert gc.commit_offsets("g", 1, member, value, group_instance_id="pod-1") == {TP: 0}
    assert gc.commit_offsets("new", 3, "", value) == {TP: ErrorCode.illegal_generation}
    assert gc.fetch_offsets("g", None) == {TP: OffsetAndMetadata(1)}


def test_simple_commits_need_no_membership() -> None:
    gc = coordinator()
    assert gc.commit_offsets("standalone", -1, "", {TP: OffsetAndMetadata(5)}) == {TP: 0}
    assert gc.fetch_offsets("standalone", None) == {TP: OffsetAndMetadata(5)}
    assert gc.list_groups() == [("standalone", "", "Empty")]
    assert gc.commit_offsets("standalone", -1, "someone", {TP: OffsetAndMetadata(6)}) == {
        TP: ErrorCode.unknown_member_id
    }


@pytest.mark.anyio
async def test_commits_are_accepted_while_preparing_but_not_while_completing() -> None:
    clock = Clock()
    gc = coordinator(clock=clock, initial_delay_ms=100)
    first, second = await form_group(gc, clock, 2)
    gc.leave_group("g", [(second, None)])
    assert gc.describe_group("g").state == "PreparingRebalance"
    assert gc.commit_offsets("g", 1, first, {TP: OffsetAndMetadata(10)}) == {TP: 0}, (
        "consumers commit in onPartitionsRevoked, after the rebalance started"
    )
    rejoined = await join(gc, first)
    assert gc.describe_group("g").state == "CompletingRebalance"
    assert gc.commit_offsets("g", 2, first, {TP: OffsetAndMetadata(11)}) == {
        TP: ErrorCode.rebalance_in_progress
    }
    assert rejoined.generation_id == 2
    assert gc.fetch_offsets("g", [TP]) == {TP: OffsetAndMetadata(10)}


@pytest.mark.anyio
async def test_a_commit_counts_as_a_heartbeat() -> None:
    clock = Clock()
    gc = coordinator(clock=clock)
    member = await stable_member(gc)
    clock.advance(SESSION_MS - 1, gc)
    assert gc.commit_offsets("g", 1, member, {TP: OffsetAndMetadata(1)}) == {TP: 0}
    clock.advance(SESSION_MS - 1, gc)
    assert gc.heartbeat("g", 1, member) == ErrorCode.none


def test_oversized_metadata_is_refused_for_that_partition_only() -> None:
    gc = GroupCoordinator(ListStore(), clock_ms=Clock(), max_metadata_bytes=4)
    result = gc.commit_offsets(
        "g", -1, "", {TP: OffsetAndMetadata(1, metadata="12345"), ("b", 0): OffsetAndMetadata(2)}
    )
    assert result == {TP: ErrorCode.offset_metadata_too_large, ("b", 0): 0}
    assert gc.fetch_offsets("g", None) == {("b", 0): OffsetAndMetadata(2)}


@pytest.mark.anyio
async def test_a_failed_store_append_commits_nothing() -> None:
    store = ListStore()
    gc = coordinator(store)
    member = await stable_member(gc)
    store.fail = True
    assert gc.commit_offsets("g", 1, member, {TP: OffsetAndMetadata(1)}) == {
        TP: ErrorCode.coordinator_not_available
    }
    assert gc.fetch_offsets("g", [TP]) == {TP: None}


@pytest.mark.anyio
async def test_a_failed_assignment_store_fails_the_sync_and_rebalances() -> None:
    store = ListStore()
    gc = coordinator(store)
    joined = await join(gc)
    store.fail = True
    synced = await gc.sync_group("g", 1, joined.member_id, {joined.member_id: b"x"})
    assert synced.error == ErrorCode.coordinator_not_available
    assert gc.heartbeat("g", 1, joined.member_id) == ErrorCode.rebalance_in_progress
    store.fail = False
    again = await join(gc, joined.member_id)
    assert again.generation_id == 2


@pytest.mark.anyio
async def test_offsets_and_group_survive_a_restart() -> None:
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock, initial_delay_ms=100)
    first, second = await form_group(gc, clock, 2)
    offsets = {TP: OffsetAndMetadata(42, 3, "meta", 7)}
    assert gc.commit_offsets("g", 1, first, offsets) == {TP: 0}
    assert gc.commit_offsets("solo", -1, "", {("t", 1): OffsetAndMetadata(5)}) == {("t", 1): 0}

    restarted = reloaded(store, clock)
    assert restarted.fetch_offsets("g", [TP]) == offsets
    assert restarted.fetch_offsets("solo", None) == {("t", 1): OffsetAndMetadata(5)}
    described = restarted.describe_group("g")
    assert described.state == "Stable" and {m.member_id for m in described.members} == {
        first,
        second,
    }
    assert {m.member_id: m.assignment for m in described.members} == {
        first: first.encode(),
        second: second.encode(),
    }
    assert restarted.heartbeat("g", 1, first) == ErrorCode.none, "members carry on as in Kafka"
    assert restarted.commit_offsets("g", 1, first, {TP: OffsetAndMetadata(43)}) == {TP: 0}
    clock.advance(SESSION_MS + 1, restarted)
    assert restarted.heartbeat("g", 1, first) == ErrorCode.unknown_member_id
    assert restarted.describe_group("g").state == "Empty"
    assert (await join(restarted, "")).generation_id == 3, "generations keep counting"
    assert reloaded(store).fetch_offsets("g", [TP]) == {TP: OffsetAndMetadata(43)}


@pytest.mark.anyio
async def test_the_store_holds_kafka_group_records() -> None:
    store = ListStore()
    gc = coordinator(store)
    member = await stable_member(gc)
    key, value = store.records[-1]
    assert storage.decode_key(key) == "g"
    assert value is not None
    record = storage.decode_group_value(value)
    assert (record.protocol_type, record.generation, record.protocol, record.leader) == (
        "consumer",
        1,
        "range",
        member,
    )
    assert [(m.member_id, m.client_id, m.subscription) for m in record.members] == [
        (member, "client", b"range-meta")
    ]
    gc.leave_group("g", [(member, None)])
    emptied = storage.decode_group_value(store.records[-1][1] or b"")
    assert (emptied.generation, emptied.members, emptied.protocol) == (2, (), None)


def test_deleted_topics_lose_their_offsets() -> None:
    store = ListStore()
    gc = coordinator(store)
    gc.commit_offsets("g", -1, "", {TP: OffsetAndMetadata(1), ("keep", 0): OffsetAndMetadata(2)})
    gc.delete_offsets_for_topic("orders")
    assert store.records[-1] == (storage.offset_key("g", "orders", 0), None)
    assert reloaded(store).fetch_offsets("g", None) == {("keep", 0): OffsetAndMetadata(2)}


@pytest.mark.anyio
async def test_delete_groups_tombstones_empty_groups_only() -> None:
    store = ListStore()
    gc = coordinator(store)
    await stable_member(gc)
    gc.commit_offsets("idle", -1, "", {TP: OffsetAndMetadata(1)})
    assert gc.delete_groups(["g", "idle", "ghost"]) == {
        "g": ErrorCode.non_empty_group,
        "idle": ErrorCode.none,
        "ghost": ErrorCode.group_id_not_found,
    }
    assert store.records[-2:] == [
        (storage.offset_key("idle", *TP), None),
        (storage.group_key("idle"), None),
    ]
    assert gc.describe_group("idle").state == "Dead"
    assert [g for g, _, _ in reloaded(store).list_groups()] == ["g"]


def test_unreadable_records_are_skipped_on_load() -> None:
    store = ListStore()
    store.records += [(b"\x00\x07junk", b""), (storage.offset_key("g", *TP), b"\x00\x09")]
    store.records.append((storage.offset_key("g", *TP), storage.offset_value(OffsetAndMetadata(3))))
    assert reloaded(store).fetch_offsets("g", None) == {TP: OffsetAndMetadata(3)}


@pytest.mark.anyio
async def test_commits_from_many_tasks_all_land() -> None:
    store = ListStore()
    gc = coordinator(store)

    async def commit(partition: int) -> None:
        await anyio.sleep(0)
        result = gc.commit_offsets("g", -1, "", {("t", partition): OffsetAndMetadata(partition)})
        assert result == {("t", partition): 0}

    async with anyio.create_task_group() as tasks:
        for partition in range(50):
            tasks.start_soon(commit, partition)
    assert len(reloaded(store).fetch_offsets("g", None)) == 50


@pytest.mark.anyio
async def test_offsets_of_an_emptied_group_expire_after_the_retention() -> None:
    store, clock = ListStore(), Clock()
    gc = GroupCoordinator(
        store, clock_ms=clock, offsets_retention_ms=60_000, retention_check_interval_ms=1_000
    )
    member = await stable_member(gc)
    gc.commit_offsets("g", 1, member, {TP: OffsetAndMetadata(1, commit_timestamp_ms=clock())})
    for _ in range(12):  # a live member's offsets never expire
        clock.advance(SESSION_MS // 2, gc)
        assert gc.heartbeat("g", 1, member) == ErrorCode.none
    gc.leave_group("g", [(member, None)])
    clock.advance(59_000, gc)
    assert gc.fetch_offsets("g", [TP]) == {TP: OffsetAndMetadata(1, commit_timestamp_ms=1_000_000)}
    clock.advance(1_000, gc)
    assert gc.fetch_offsets("g", None) == {} and gc.list_groups() == []
    assert store.records[-2:] == [
        (storage.offset_key("g", *TP), None),
        (storage.group_key("g"), None),
    ]
    assert reloaded(store).list_groups() == []


def test_simple_commits_expire_one_by_one() -> None:
    clock = Clock()
    gc = GroupCoordinator(
        ListStore(), clock_ms=clock, offsets_retention_ms=60_000, retention_check_interval_ms=1
    )
    gc.commit_offsets("s", -1, "", {("a", 0): OffsetAndMetadata(1, commit_timestamp_ms=clock())})
    clock.advance(30_000, gc)
    gc.commit_offsets("s", -1, "", {("b", 0): OffsetAndMetadata(2, commit_timestamp_ms=clock())})
    clock.advance(30_000, gc)
    assert list(gc.fetch_offsets("s", None)) == [("b", 0)]
    clock.advance(30_000, gc)
    assert gc.describe_group("s").state == "Dead"
