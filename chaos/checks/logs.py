"""Each partition's log as the history shows it, and the checks over a log alone.

As in Jepsen's Kafka checker (`version-orders`), a partition's log is every claim that a value
sits at an offset: acknowledgements, polls by anyone, and here also the final read of the
primary region. With mirror topics an offset names the same record in every region, so claims
from all regions meet in one log per (topic, partition). The log keeps only offsets that hold
a known value and numbers them densely, so gaps (transaction markers, mirrored gaps) are not
holes. On that log:

- inconsistent-offsets: an offset with two values;
- duplicate: a value at two offsets;
- lost-write: an acknowledged value missing at its offset from the primary's final read (when
  the runner read it), or else never polled although consumers read past its offset (Jepsen's
  bound: a reader of offset n should have seen everything acknowledged below n);
- unseen: acknowledged, not shown lost, never polled.

Values a failover lost (`excluded`) are left out of every log: `chaos.checks.failovers` counts
them against the failover's reported RPO instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass

from chaos.findings import Anomaly, Finding
from chaos.model import History, PartitionContents, SendStatus, TopicPartition


@dataclass(frozen=True, slots=True)
class Acked:
    """A send and its acknowledgement, joined by value."""

    value: str
    topic: str
    partition: int
    offset: int
    region: str
    producer: str
    sent_ms: int
    acked_ms: int


def acknowledged(history: History) -> dict[str, Acked]:
    sends = {send.value: send for send in history.sends}
    acked: dict[str, Acked] = {}
    for outcome in history.outcomes:
        send = sends.get(outcome.value)
        if send is None or outcome.status is not SendStatus.OK:
            continue
        assert outcome.partition is not None and outcome.offset is not None, outcome
        acked[outcome.value] = Acked(
            outcome.value,
            send.topic,
            outcome.partition,
            outcome.offset,
            send.region,
            send.producer,
            send.sent_ms,
            outcome.time_ms,
        )
    return acked


@dataclass(frozen=True)
class PartitionLog:
    offsets: tuple[int, ...]  # ascending: offsets where some value is known
    values: Mapping[int, frozenset[str]]
    index: Mapping[int, int]  # offset -> its position in `offsets`

    @classmethod
    def of(cls, claims: Mapping[int, set[str]]) -> PartitionLog:
        offsets = tuple(sorted(claims))
        return cls(
            offsets,
            {offset: frozenset(claims[offset]) for offset in offsets},
            {offset: i for i, offset in enumerate(offsets)},
        )

    def between(self, first: int, end: int) -> Iterator[tuple[int, str]]:
        """(offset, value) at positions first .. end - 1, in log order."""
        for offset in self.offsets[max(first, 0) : end]:
            for value in sorted(self.values[offset]):
                yield offset, value


def primary_contents(
    history: History, primary: str | None
) -> dict[TopicPartition, PartitionContents]:
    return {c.topic_partition: c for c in history.contents if c.region == primary}


def build_logs(
    history: History,
    acked: Mapping[str, Acked],
    primary: Mapping[TopicPartition, PartitionContents],
    excluded: Set[str],
) -> dict[TopicPartition, PartitionLog]:
    claims: defaultdict[TopicPartition, defaultdict[int, set[str]]] = defaultdict(
        lambda: defaultdict(set)
    )
    for a in acked.values():
        claims[(a.topic, a.partition)][a.offset].add(a.value)
    for poll in history.polls:
        claims[(poll.topic, poll.partition)][poll.offset].add(poll.value)
    for contents in primary.values():
        for record in contents.records:
            claims[contents.topic_partition][record.offset].add(record.value)
    for offsets in claims.values():
        for values in offsets.values():
            values -= excluded
    return {tp: PartitionLog.of({o: v for o, v in c.items() if v}) for tp, c in claims.items()}


def inconsistent_offsets(logs: Mapping[TopicPartition, PartitionLog]) -> Iterator[Finding]:
    for (topic, partition), log in logs.items():
        for offset in log.offsets:
            values = sorted(log.values[offset])
            if len(values) > 1:
                yield Finding(
                    Anomaly.INCONSISTENT_OFFSETS,
                    topic,
                    partition,
                    offset,
                    values[0],
                    detail="values: " + ", ".join(values),
                )


def duplicates(logs: Mapping[TopicPartition, PartitionLog]) -> Iterator[Finding]:
    for (topic, partition), log in logs.items():
        where: defaultdict[str, list[int]] = defaultdict(list)
        for offset, value in log.between(0, len(log.offsets)):
            where[value].append(offset)
        for value, offsets in where.items():
            if len(offsets) > 1:
                yield Finding(
                    Anomaly.DUPLICATE,
                    topic,
                    partition,
                    offsets[0],
                    value,
                    detail="at offsets " + ", ".join(map(str, offsets)),
                )


def polled_values(history: History) -> set[str]:
    return {poll.value for poll in history.polls}


def lost_writes(
    history: History,
    acked: Mapping[str, Acked],
    primary: Mapping[TopicPartition, PartitionContents],
    excluded: Set[str],
) -> Iterator[Finding]:
    polled = polled_values(history)
    read_up_to = _highest_polled_offsets(history, excluded)
    at = {tp: {r.offset: r.value for r in c.records} for tp, c in primary.items()}
    for a in acked.values():
        if a.value in excluded:
            continue
        tp = (a.topic, a.partition)
        contents = primary.get(tp)
        if contents is not None and a.offset >= contents.start_offset:
            there = at[tp].get(a.offset)
            if there != a.value:
                held = "nothing" if there is None else repr(there)
                yield _lost(a, f"the primary {contents.region} holds {held} at its offset")
        elif a.value not in polled and read_up_to.get(tp, -1) > a.offset:
            yield _lost(a, f"never polled, though consumers read up to offset {read_up_to[tp]}")


def _lost(a: Acked, why: str) -> Finding:
    return Finding(
        Anomaly.LOST_WRITE,
        a.topic,
        a.partition,
        a.offset,
        a.value,
        region=a.region,
        actor=a.producer,
        detail=f"acked in {a.region}; {why}",
    )


def _highest_polled_offsets(history: History, excluded: Set[str]) -> dict[TopicPartition, int]:
    highest: dict[TopicPartition, int] = {}
    for poll in history.polls:
        if poll.value not in excluded:
            tp = (poll.topic, poll.partition)
            highest[tp] = max(highest.get(tp, -1), poll.offset)
    return highest


def unseen(
    history: History, acked: Mapping[str, Acked], not_unseen: Iterable[str]
) -> Iterator[Finding]:
    """Acknowledged values no one polled, other than `not_unseen` (lost, or lost in a failover).
    A workload without consumer groups (no assignment, no poll in the history) reads
    nothing: no value can be unseen."""
    if not (history.assignments or history.polls):
        return
    skip = polled_values(history) | set(not_unseen)
    for a in acked.values():
        if a.value not in skip:
            yield Finding(
                Anomaly.UNSEEN,
                a.topic,
                a.partition,
                a.offset,
                a.value,
                region=a.region,
                actor=a.producer,
                detail="acked, never polled",
            )
