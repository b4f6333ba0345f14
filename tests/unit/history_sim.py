"""Clean drill histories from a seeded model of a correct system, for the verifier's tests.

The model keeps one log per partition (mirror topics: the same offsets in both regions),
producers that are acknowledged at the log's end (some sends refused, some written without an
answer), and consumer groups whose owners poll in order, commit their position, hand
partitions over on rebalances after committing on revoke, and at the end drain every log. A
planned switchover (RPO 0) moves producers and groups from east to west. Records are kept as
an ordered list of entries with seq 0 so a test can mutate the list (drop, insert, swap,
replace) and `build` numbers them afterwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from chaos.checks.mirrors import MirrorPair
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
    TopicPartition,
)

Entry = Send | Outcome | Poll | Commit | Assignment | Event
EAST, WEST = "east", "west"
GROUPS = ("g1", "g2")


@dataclass
class World:
    rng: random.Random
    partitions: tuple[TopicPartition, ...]
    consumers: int
    region: str = EAST
    time_ms: int = 1_000
    sent: int = 0
    switched: bool = False
    entries: list[Entry] = field(default_factory=list)
    logs: dict[TopicPartition, list[tuple[str, str]]] = field(default_factory=dict)
    owner: dict[tuple[str, TopicPartition], str] = field(default_factory=dict)
    position: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    committed: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)

    def now(self) -> int:
        self.time_ms += 1
        return self.time_ms

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)

    def produce(self, tp: TopicPartition) -> None:
        n = self.sent = self.sent + 1
        key, value = f"k{n % 3}", f"run:p{n % 2}:{n}"
        self.add(Send(0, f"p{n % 2}", self.region, tp[0], key, value, self.now()))
        fate = self.rng.random()
        if fate < 0.05:
            self.add(Outcome(0, value, SendStatus.ERROR, tp[1], None, self.now(), "refused"))
            return
        log = self.logs.setdefault(tp, [])
        log.append((key, value))
        if fate < 0.1:
            self.add(Outcome(0, value, SendStatus.UNKNOWN, tp[1], None, self.now(), "timed out"))
        else:
            self.add(Outcome(0, value, SendStatus.OK, tp[1], len(log) - 1, self.now()))

    def consumer(self, group: str, i: int) -> str:
        return f"{group}-c{i}@{self.region}"

    def assign(self, group: str, tp: TopicPartition) -> None:
        owner = self.consumer(group, self.rng.randrange(self.consumers))
        self.owner[(group, tp)] = owner
        self.position[(group, tp)] = self.committed.get((group, tp), 0)
        self.add(Assignment(0, owner, group, self.region, *tp, True, self.now()))

    def revoke(self, group: str, tp: TopicPartition) -> None:
        self.commit(group, tp)
        owner = self.owner.pop((group, tp))
        self.add(Assignment(0, owner, group, self.region, *tp, False, self.now()))

    def poll(self, group: str, tp: TopicPartition, most: int) -> None:
        log = self.logs.get(tp, [])
        start = self.position[(group, tp)]
        for offset in range(start, min(len(log), start + most)):
            key, value = log[offset]
            owner = self.owner[(group, tp)]
            self.add(Poll(0, owner, group, self.region, *tp, offset, key, value, self.now()))
            self.position[(group, tp)] = offset + 1

    def commit(self, group: str, tp: TopicPartition) -> None:
        offset = self.position[(group, tp)]
        owner = self.owner[(group, tp)]
        self.add(Commit(0, owner, group, self.region, *tp, offset, self.now()))
        self.committed[(group, tp)] = offset

    def switchover(self) -> None:
        detail = {"operation": "switchover", "from": EAST, "to": WEST}
        self.add(Event(0, EventKind.FAILOVER_STARTED, self.now(), detail))
        for group in GROUPS:
            for tp in self.partitions:
                self.revoke(group, tp)
        self.region, self.switched = WEST, True
        report = {**detail, "outcome": "done", "rpo_records": 0, "rto_seconds": 0.2}
        self.add(Event(0, EventKind.FAILOVER_FINISHED, self.now(), report))
        for group in GROUPS:
            for tp in self.partitions:
                self.assign(group, tp)

    def step(self) -> None:
        choice = self.rng.random()
        tp = self.rng.choice(self.partitions)
        group = self.rng.choice(GROUPS)
        if choice < 0.45:
            self.produce(tp)
        elif choice < 0.75:
            self.poll(group, tp, self.rng.randint(1, 4))
        elif choice < 0.9:
            self.commit(group, tp)
        else:
            self.revoke(group, tp)
            self.assign(group, tp)

    def drain(self) -> None:
        for group in GROUPS:
            for tp in self.partitions:
                self.poll(group, tp, len(self.logs.get(tp, [])))
                self.commit(group, tp)

    def contents(self) -> list[PartitionContents]:
        return [
            PartitionContents(
                region,
                *tp,
                0,
                len(log),
                tuple(StoredRecord(o, key, value) for o, (key, value) in enumerate(log)),
            )
            for region in (EAST, WEST)
            for tp, log in self.logs.items()
        ]

    @property
    def mirror(self) -> MirrorPair:
        return MirrorPair(WEST, EAST) if self.switched else MirrorPair(EAST, WEST)


def simulate(seed: int, steps: int, switchover_at: int | None) -> World:
    rng = random.Random(seed)
    partitions = tuple(("orders", p) for p in range(rng.randint(1, 3)))
    world = World(rng, partitions, consumers=rng.randint(1, 3))
    for group in GROUPS:
        for tp in partitions:
            world.assign(group, tp)
    for i in range(steps):
        if i == switchover_at:
            world.switchover()
        world.step()
    world.drain()
    return world


def build(entries: list[Entry], contents: list[PartitionContents]) -> History:
    """A history of `entries` numbered in list order."""
    tables: dict[type, list[Any]] = {
        kind: [] for kind in (Send, Outcome, Poll, Commit, Assignment, Event)
    }
    for seq, entry in enumerate(entries, start=1):
        tables[type(entry)].append(replace(entry, seq=seq))
    return History(
        sends=tuple(tables[Send]),
        outcomes=tuple(tables[Outcome]),
        polls=tuple(tables[Poll]),
        commits=tuple(tables[Commit]),
        assignments=tuple(tables[Assignment]),
        events=tuple(tables[Event]),
        contents=tuple(contents),
    )
