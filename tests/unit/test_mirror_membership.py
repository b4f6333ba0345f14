"""Partition ownership among a flow's workers: owner_index, assign, parse_assignment."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.worker.membership import Assignment, assign, owner_index, parse_assignment

topics = st.text(min_size=1, max_size=20)
partitions = st.integers(0, 10_000)
counts = st.integers(1, 64)


def test_owner_index_is_pinned_across_processes_and_versions() -> None:
    # Workers of different processes (and releases, during a rolling upgrade) must agree:
    # crc32("orders") = 3845127662, crc32("payments") = 1708301106, never hash().
    assert [owner_index("orders", p, 3) for p in range(6)] == [2, 0, 1, 2, 0, 1]
    assert [owner_index("payments", p, 5) for p in range(5)] == [1, 2, 3, 4, 0]
    assert owner_index("", 7, 4) == 3
    assert all(owner_index("orders", p, 1) == 0 for p in range(10))


@settings(max_examples=100, deadline=None)
@given(topics, partitions, counts)
def test_owner_index_is_stable_and_in_range(topic: str, partition: int, count: int) -> None:
    index = owner_index(topic, partition, count)
    assert 0 <= index < count
    assert owner_index(topic, partition, count) == index


@settings(max_examples=100, deadline=None)
@given(topics, st.integers(1, 12), st.integers(1, 6))
def test_a_topics_partitions_go_round_robin(topic: str, count: int, per_member: int) -> None:
    owners = [owner_index(topic, p, count) for p in range(count * per_member)]
    assert Counter(owners) == {index: per_member for index in range(count)}
    for previous, owner in pairwise(owners):
        assert owner == (previous + 1) % count


def test_topics_start_at_different_members() -> None:
    firsts = Counter(owner_index(f"topic-{i}", 0, 4) for i in range(200))
    assert set(firsts) == {0, 1, 2, 3}
    assert min(firsts.values()) > 20  # single-partition topics do not all land on member 0


def test_owner_index_rejects_an_empty_group() -> None:
    with pytest.raises(AssertionError):
        owner_index("orders", 0, 0)


def test_assign_gives_sorted_members_consecutive_indexes() -> None:
    assignments = assign(["m-c", "m-a", "m-b"])
    assert set(assignments) == {"m-a", "m-b", "m-c"}
    assert {m: json.loads(data) for m, data in assignments.items()} == {
        "m-a": {"index": 0, "count": 3},
        "m-b": {"index": 1, "count": 3},
        "m-c": {"index": 2, "count": 3},
    }
    assert parse_assignment(assignments["m-b"], generation=7) == Assignment(1, 3, 7)
    assert assign([]) == {}


@settings(max_examples=60, deadline=None)
@given(st.sets(st.text(min_size=1, max_size=12), min_size=1, max_size=10), st.integers(0, 2**31))
def test_assign_round_trips_through_parse_assignment(members: set[str], generation: int) -> None:
    shuffled = sorted(members, key=lambda m: m[::-1])  # the order join_group reports
    parsed = {m: parse_assignment(data, generation) for m, data in assign(shuffled).items()}
    assert set(parsed) == members
    ordered = sorted(members)
    for member, assignment in parsed.items():
        assert assignment == Assignment(ordered.index(member), len(members), generation)


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.text(min_size=1, max_size=8), min_size=1, max_size=12),
    st.lists(st.tuples(topics, partitions), min_size=1, max_size=20),
)
def test_every_partition_is_owned_by_exactly_one_member(
    members: set[str], topic_partitions: list[tuple[str, int]]
) -> None:
    assignments = [parse_assignment(data, 1) for data in assign(list(members)).values()]
    for topic, partition in topic_partitions:
        owners = [a for a in assignments if a.owns(topic, partition)]
        assert len(owners) == 1
        assert owners[0].index == owner_index(topic, partition, len(members))
