"""The verifier: quiet on clean histories, and each check proven to fire on a broken one.

Clean histories come from a seeded model of a correct system (`history_sim`); each mutation
breaks one thing the way a faulty system would (a record dropped from every read, a value at
a second offset, two polls reordered, a poll skipped, a different value at one offset, a group
re-reading or skipping after a move, a record never polled, a record a failover lost, a
mirror's copy changed) and must be named as exactly its anomaly — no other class may fire.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chaos.checks.mirrors import MirrorPair
from chaos.findings import Anomaly
from chaos.invariants import METRICS, Invariant, InvariantError
from chaos.model import (
    Assignment,
    Commit,
    Event,
    EventKind,
    History,
    Outcome,
    PartitionContents,
    Poll,
    Send,
    SendStatus,
    StoredRecord,
)
from chaos.verifier import Scope, Verdict, verify
from tests.unit.history_sim import EAST, WEST, Entry, World, build, simulate

Mutated = tuple[list[Entry], list[PartitionContents]]
Mutation = Callable[[World, random.Random], Mutated | None]

EVERY_INVARIANT = tuple(
    Invariant.parse(text)
    for text in (
        *(f"no {anomaly.value}" for anomaly in Anomaly),
        "rpo_records == reported_rpo_records",
        "mirror_lag_offsets == 0",
        "records_lost == 0",
    )
)


def judge(world: World, mutated: Mutated | None = None) -> Verdict:
    entries, contents = mutated or (world.entries, world.contents())
    scope = Scope(invariants=EVERY_INVARIANT, mirrors=(world.mirror,))
    return verify(build(entries, contents), scope)


def fired(verdict: Verdict) -> set[str]:
    return {name for name, count in verdict.anomalies.items() if count}


# Mutations: each returns the broken (entries, contents), or None when the world has no
# record it applies to.


def _acked(world: World) -> set[str]:
    return {e.value for e in world.entries if isinstance(e, Outcome) and e.status is SendStatus.OK}


def _sent_in(world: World, region: str) -> list[str]:
    acked = _acked(world)
    return [
        e.value
        for e in world.entries
        if isinstance(e, Send) and e.region == region and e.value in acked
    ]


def _without(contents: list[PartitionContents], value: str) -> list[PartitionContents]:
    return [replace(c, records=tuple(r for r in c.records if r.value != value)) for c in contents]


def _periods(entries: list[Entry]) -> list[list[int]]:
    """Indices of each consumer's polls of a partition between assignment changes."""
    current: dict[tuple[str, str, str, int], list[int]] = {}
    found: list[list[int]] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, Assignment | Poll):
            key = (entry.consumer, entry.group, entry.topic, entry.partition)
            if isinstance(entry, Assignment):
                current.pop(key, None)
            elif key in current:
                current[key].append(i)
            else:
                current[key] = [i]
                found.append(current[key])
    return found


def drop_acked(world: World, rng: random.Random) -> Mutated | None:
    """An acknowledged record gone from every read: lost-write."""
    candidates = _sent_in(world, WEST if world.switched else EAST)
    if not candidates:
        return None
    value = rng.choice(candidates)
    entries = [e for e in world.entries if not (isinstance(e, Poll) and e.value == value)]
    return entries, _without(world.contents(), value)


def duplicate_value(world: World, rng: random.Random) -> Mutated | None:
    """A value written again at the end of its partition: duplicate."""
    logged = [(tp, key, value) for tp, log in world.logs.items() for key, value in log]
    if not logged:
        return None
    tp, key, value = rng.choice(logged)
    contents = [
        replace(
            c,
            end_offset=c.end_offset + 1,
            records=(*c.records, StoredRecord(c.end_offset, key, value)),
        )
        if c.topic_partition == tp
        else c
        for c in world.contents()
    ]
    return world.entries, contents


def swap_polls(world: World, rng: random.Random) -> Mutated | None:
    """Two successive polls of a consumer in the wrong order: nonmonotonic-poll."""
    periods = [p for p in _periods(world.entries) if len(p) >= 2]
    if not periods:
        return None
    period = rng.choice(periods)
    i = rng.randrange(len(period) - 1)
    entries = list(world.entries)
    a, b = period[i], period[i + 1]
    entries[a], entries[b] = entries[b], entries[a]
    return entries, world.contents()


def skip_poll(world: World, rng: random.Random) -> Mutated | None:
    """A consumer passes over a record the other group reads: poll-skip."""
    periods = [p for p in _periods(world.entries) if len(p) >= 3]
    if not periods:
        return None
    period = rng.choice(periods)
    dropped = period[rng.randrange(1, len(period) - 1)]
    return [e for i, e in enumerate(world.entries) if i != dropped], world.contents()


def change_polled_value(world: World, rng: random.Random) -> Mutated | None:
    """A poll sees another value at a known offset: inconsistent-offsets."""
    polls = [(i, e) for i, e in enumerate(world.entries) if isinstance(e, Poll)]
    if not polls:
        return None
    i, poll = rng.choice(polls)
    entries = list(world.entries)
    entries[i] = replace(poll, value="phantom")
    return entries, world.contents()


def _resumes(world: World) -> list[tuple[int, Poll, int]]:
    """(index, poll) of each period's first poll, with the group's commit before it if > 0."""
    found = []
    for period in _periods(world.entries):
        first = world.entries[period[0]]
        assert isinstance(first, Poll)
        commits = [
            e.offset
            for e in world.entries[: period[0]]
            if isinstance(e, Commit)
            and (e.group, e.topic, e.partition) == (first.group, first.topic, first.partition)
        ]
        if commits and commits[-1] > 0:
            found.append((period[0], first, commits[-1]))
    return found


def _read_again(world: World, at: int, first: Poll, committed: int, records: int) -> Mutated:
    log = world.logs[(first.topic, first.partition)]
    again = [
        replace(first, offset=offset, key=log[offset][0], value=log[offset][1])
        for offset in range(max(0, committed - records), committed)
    ]
    return [*world.entries[:at], *again, *world.entries[at:]], world.contents()


def reread_after_resume(world: World, rng: random.Random) -> Mutated | None:
    """A group resumes below its committed offset: reread, once per record."""
    resumes = _resumes(world)
    if not resumes:
        return None
    return _read_again(world, *rng.choice(resumes), records=rng.randint(1, 3))


def miss_after_resume(world: World, rng: random.Random) -> Mutated | None:
    """A group resumes above its committed offset: missed, once per record."""
    periods = [p for p in _periods(world.entries) if len(p) >= 2]
    if not periods:
        return None
    period = rng.choice(periods)
    dropped = set(period[: rng.randint(1, len(period) - 1)])
    return [e for i, e in enumerate(world.entries) if i not in dropped], world.contents()


def never_poll_last(world: World, rng: random.Random) -> Mutated | None:
    """The newest acknowledged record of a partition, never reached by any group: unseen."""
    acked = _acked(world)
    last = [(tp, len(log) - 1) for tp, log in world.logs.items() if log and log[-1][1] in acked]
    if not last:
        return None
    (topic, partition), offset = rng.choice(last)
    entries: list[Entry] = []
    for e in world.entries:
        if isinstance(e, Poll | Commit) and (e.topic, e.partition) == (topic, partition):
            if isinstance(e, Poll) and e.offset == offset:
                continue
            if isinstance(e, Commit) and e.offset > offset:
                e = replace(e, offset=offset)
        entries.append(e)
    return entries, world.contents()


def lose_in_switchover(world: World, rng: random.Random) -> Mutated | None:
    """A record acknowledged by east never reached west: rpo-loss."""
    candidates = _sent_in(world, EAST)
    if not world.switched or not candidates:
        return None
    value = rng.choice(candidates)
    entries = [
        e
        for e in world.entries
        if not (isinstance(e, Poll) and e.value == value and e.region == WEST)
    ]
    return entries, _without(world.contents(), value)


def change_mirror_copy(world: World, rng: random.Random) -> Mutated | None:
    """The mirror's copy of a record differs from its source: mirror-divergence."""
    contents = world.contents()
    targets = [i for i, c in enumerate(contents) if c.region == world.mirror.target and c.records]
    if not targets:
        return None
    i = rng.choice(targets)
    records = list(contents[i].records)
    j = rng.randrange(len(records))
    records[j] = replace(records[j], value="changed")
    contents[i] = replace(contents[i], records=tuple(records))
    return world.entries, contents


MUTATIONS: dict[Anomaly, Mutation] = {
    Anomaly.LOST_WRITE: drop_acked,
    Anomaly.DUPLICATE: duplicate_value,
    Anomaly.NONMONOTONIC_POLL: swap_polls,
    Anomaly.POLL_SKIP: skip_poll,
    Anomaly.INCONSISTENT_OFFSETS: change_polled_value,
    Anomaly.REREAD: reread_after_resume,
    Anomaly.MISSED: miss_after_resume,
    Anomaly.UNSEEN: never_poll_last,
    Anomaly.RPO_LOSS: lose_in_switchover,
    Anomaly.MIRROR_DIVERGENCE: change_mirror_copy,
}


@pytest.mark.parametrize("switchover_at", [None, 25])
@pytest.mark.parametrize("seed", range(5))
def test_clean_histories_have_no_findings_and_keep_every_invariant(
    seed: int, switchover_at: int | None
) -> None:
    world = simulate(seed, 60, switchover_at)
    verdict = judge(world)
    assert verdict.findings == ()
    assert verdict.passed, verdict.invariants
    assert verdict.metrics["records_acked"] == len(_acked(world))


@pytest.mark.parametrize("anomaly", list(MUTATIONS))
def test_each_mutation_is_named_as_exactly_its_anomaly(anomaly: Anomaly) -> None:
    for seed in range(50):
        world = simulate(seed, 60, 25)
        mutated = MUTATIONS[anomaly](world, random.Random(seed))
        if mutated is not None:
            verdict = judge(world, mutated)
            assert fired(verdict) == {anomaly.value}, verdict.findings
            assert not verdict.passed
            return
    pytest.fail(f"no world to apply the {anomaly} mutation to")


def test_lost_write_names_the_record() -> None:
    world = simulate(3, 60, None)
    entries, contents = drop_acked(world, random.Random(1)) or pytest.fail("no acked record")
    (finding,) = judge(world, (entries, contents)).findings
    value = finding.value
    outcome = next(e for e in world.entries if isinstance(e, Outcome) and e.value == value)
    send = next(e for e in world.entries if isinstance(e, Send) and e.value == value)
    assert (finding.topic, finding.partition, finding.offset) == (
        send.topic,
        outcome.partition,
        outcome.offset,
    )
    assert finding.anomaly is Anomaly.LOST_WRITE and finding.region == EAST
    assert "holds nothing" in finding.detail


def test_a_group_rereading_after_it_moved_counts_each_record_again() -> None:
    world = simulate(7, 80, 30)
    at, first, committed = next(r for r in _resumes(world) if r[1].region == WEST and r[2] >= 3)
    verdict = judge(world, _read_again(world, at, first, committed, records=3))
    assert verdict.anomalies["reread"] == 3
    assert fired(verdict) == {"reread"}
    for finding in verdict.findings:
        assert (finding.region, finding.actor, finding.topic) == (WEST, first.group, first.topic)
        assert committed - 3 <= finding.offset < committed


# Small hand-written histories for what the model does not produce.


def _send(seq: int, value: str, region: str = EAST, at_ms: int = 0) -> Send:
    return Send(seq, "p", region, "t", None, value, at_ms or seq)


def _ack(seq: int, value: str, offset: int, at_ms: int = 0) -> Outcome:
    return Outcome(seq, value, SendStatus.OK, 0, offset, at_ms or seq)


def _poll(seq: int, offset: int, value: str, consumer: str = "c", region: str = EAST) -> Poll:
    return Poll(seq, consumer, "g", region, "t", 0, offset, None, value, seq)


def _contents(region: str, values: list[str]) -> PartitionContents:
    records = tuple(StoredRecord(o, None, v) for o, v in enumerate(values))
    return PartitionContents(region, "t", 0, 0, len(values), records)


def test_without_a_final_read_a_record_is_lost_when_consumers_read_past_it() -> None:
    history = History(
        sends=(_send(1, "a"), _send(2, "b"), _send(3, "c")),
        outcomes=(_ack(4, "a", 0), _ack(5, "b", 1), _ack(6, "c", 2)),
        polls=(_poll(7, 0, "a"), _poll(8, 2, "c")),
    )
    verdict = verify(history)
    assert [(f.anomaly, f.offset, f.value) for f in verdict.findings] == [
        (Anomaly.LOST_WRITE, 1, "b")
    ]
    tail_only = replace(history, polls=(_poll(7, 0, "a"), _poll(8, 1, "b")))
    assert [(f.anomaly, f.value) for f in verify(tail_only).findings] == [(Anomaly.UNSEEN, "c")]


def test_a_different_record_at_an_acked_offset_is_lost_and_inconsistent() -> None:
    history = History(
        sends=(_send(1, "a"),),
        outcomes=(_ack(2, "a", 0),),
        contents=(_contents(EAST, ["other"]),),
    )
    assert fired(verify(history)) == {"lost-write", "inconsistent-offsets"}


def _forced_failover(reported_rpo: int) -> History:
    """East acks a..e; west has copied a..c when east is lost; west then acks x, y at 3, 4."""
    report = {
        "operation": "failover",
        "from": EAST,
        "to": WEST,
        "outcome": "done",
        "rpo_records": reported_rpo,
        "rto_seconds": 3.0,
    }
    values = ["a", "b", "c", "d", "e"]
    return History(
        sends=(
            *(_send(i + 1, v, EAST, at_ms=100 + 10 * i) for i, v in enumerate(values)),
            _send(20, "x", WEST, at_ms=5_000),
            _send(21, "y", WEST, at_ms=5_001),
        ),
        outcomes=(
            *(_ack(6 + i, v, i, at_ms=101 + 10 * i) for i, v in enumerate(values)),
            _ack(22, "x", 3, at_ms=5_100),
            _ack(23, "y", 4, at_ms=5_101),
        ),
        polls=(
            *(_poll(11 + i, i, v) for i, v in enumerate(values)),  # east's consumer saw all
            _poll(24, 3, "x", consumer="c2", region=WEST),
            _poll(25, 4, "y", consumer="c2", region=WEST),
        ),
        events=(
            Event(
                16,
                EventKind.FAILOVER_STARTED,
                1_000,
                {"operation": "failover", "from": EAST, "to": WEST},
            ),
            Event(17, EventKind.FAILOVER_FINISHED, 4_000, report),
        ),
        contents=(_contents(WEST, ["a", "b", "c", "x", "y"]),),
    )


def test_forced_failover_loss_is_rpo_loss_measured_against_the_report() -> None:
    invariants = tuple(
        Invariant.parse(t)
        for t in ("no lost-write", "no inconsistent-offsets", "rpo_records == reported_rpo_records")
    )
    verdict = verify(_forced_failover(reported_rpo=2), Scope(invariants=invariants))
    assert fired(verdict) == {"rpo-loss"}
    assert sorted((f.offset, f.value) for f in verdict.findings) == [(3, "d"), (4, "e")]
    (failover,) = verdict.failovers
    assert (failover.rpo_records, failover.reported_rpo_records, failover.diverged_records) == (
        2,
        2,
        2,
    )
    assert failover.lost_first_acked_ms == 131 and failover.rpo_seconds == pytest.approx(0.01)
    assert failover.rto_seconds == pytest.approx((5_100 - 141) / 1000)
    assert verdict.metrics["records_lost"] == 2
    assert verdict.passed

    underreported = verify(_forced_failover(reported_rpo=1), Scope(invariants=invariants))
    assert not underreported.passed
    (failed,) = [r for r in underreported.invariants if not r.passed]
    assert failed.reason == "rpo_records = 2 (reported_rpo_records = 1)"


def test_without_the_failover_the_same_loss_is_lost_write_and_inconsistent() -> None:
    history = replace(_forced_failover(2), events=())
    assert fired(verify(history, Scope(primary=WEST))) == {"lost-write", "inconsistent-offsets"}


def test_mirror_behind_its_source_is_lag_not_divergence() -> None:
    history = History(contents=(_contents(EAST, ["a", "b", "c"]), _contents(WEST, ["a"])))
    verdict = verify(history, Scope(mirrors=(MirrorPair(EAST, WEST),)))
    assert verdict.findings == ()
    assert verdict.metrics["mirror_lag_offsets"] == 2
    ahead = History(contents=(_contents(EAST, ["a"]), _contents(WEST, ["a", "b"])))
    (finding,) = verify(ahead, Scope(mirrors=(MirrorPair(EAST, WEST),))).findings
    assert (finding.anomaly, finding.offset, finding.value, finding.region) == (
        Anomaly.MIRROR_DIVERGENCE,
        1,
        "b",
        WEST,
    )


def test_a_truncated_history_never_passes() -> None:
    assert verify(History()).passed
    assert not verify(History(truncated=True)).passed


def test_invariants_parse_check_and_refuse_unknown_names() -> None:
    metrics = dict.fromkeys(METRICS, 0) | {"rto_seconds": None, "records_acked": 10}
    assert Invariant.parse("no lost-write").check(metrics) is None
    assert Invariant.parse("records_acked >= 10").check(metrics) is None
    assert Invariant.parse("records_acked < 5").check(metrics) == "records_acked = 10"
    assert Invariant.parse("rto_seconds < 5").check(metrics) == "rto_seconds was not measured"
    for bad in ("no such-thing", "records_acked ~ 1", "lost-write", "rpo_records == bogus"):
        with pytest.raises(InvariantError):
            Invariant.parse(bad)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(0, 120),
    switchover_at=st.none() | st.integers(0, 120),
)
def test_random_clean_histories_have_no_anomaly(
    seed: int, steps: int, switchover_at: int | None
) -> None:
    verdict = judge(simulate(seed, steps, switchover_at))
    assert fired(verdict) == set(), verdict.findings
    assert verdict.passed


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(20, 120),
    switchover_at=st.none() | st.integers(0, 60),
    anomaly=st.sampled_from(list(MUTATIONS)),
)
def test_random_single_mutations_name_exactly_their_anomaly(
    seed: int, steps: int, switchover_at: int | None, anomaly: Anomaly
) -> None:
    world = simulate(seed, steps, switchover_at)
    mutated = MUTATIONS[anomaly](world, random.Random(seed))
    assume(mutated is not None)
    verdict = judge(world, mutated)
    assert fired(verdict) == {anomaly.value}, verdict.findings


def test_a_history_without_consumers_has_nothing_unseen() -> None:
    history = History(sends=(_send(1, "a"),), outcomes=(_ack(2, "a", 0),))
    assert Anomaly.UNSEEN.value not in fired(verify(history))


def test_losses_past_the_last_observation_are_counted_apart() -> None:
    """The report's manifest saw east's end at offset 4 (d lost); e was written after that
    observation: measured 2, of which 1 observed — what the report could name."""
    history = _forced_failover(reported_rpo=1)
    finished = history.events[-1]
    manifest = [{"topic": "t", "partition": 0, "first_offset": 3, "last_offset": 3,
                 "records": 1}]  # fmt: skip
    report = {**finished.detail, "loss_manifest": manifest}
    history = replace(history, events=(*history.events[:-1], replace(finished, detail=report)))
    verdict = verify(history, Scope(invariants=(
        Invariant.parse("rpo_observed_records == reported_rpo_records"),
        Invariant.parse("rpo_records == 2"),
    )))  # fmt: skip
    (measure,) = verdict.failovers
    assert (measure.rpo_records, measure.unobserved_rpo_records) == (2, 1)
    assert verdict.passed, verdict.invariants
