"""What a drill's history holds: the records a workload and a drill runner append (pure values).

A history is Jepsen's idea applied to our clients: log every operation with what the system
answered, then judge the whole afterwards (`chaos.verifier`). Every record carries `seq`, its
place in one order shared by all clients of the run (each client appends in program order, so
one consumer's polls, assignments and commits keep their order), and `*_ms` wall-clock times,
which the failover journal's reports use too, so RTO can be read across both.

Values are unique per send (`<run>:<producer>:<n>`), so a value names one send: everything the
verifier says about a record it says about a value, and offsets only place values in a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

TopicPartition = tuple[str, int]


class SendStatus(StrEnum):
    OK = "ok"  # acknowledged at an offset
    ERROR = "error"  # refused, or never left the client: not written
    UNKNOWN = "unknown"  # no answer (timed out, purged in flight, producer died): maybe written


class EventKind(StrEnum):
    """What a drill runner (or the workload) did, with a JSON detail."""

    FAULT_INJECTED = "fault-injected"
    FAULT_HEALED = "fault-healed"
    FAILOVER_STARTED = "failover-started"  # {"operation", "from", "to"}
    FAILOVER_FINISHED = "failover-finished"  # the operation's report (`regionlink ... --json`)
    CLIENT_MOVED = "client-moved"  # {"client", "from", "to"}
    LAG_SAMPLED = "lag-sampled"  # {"flow": "source:target", "lag_records", "lag_ms"}


@dataclass(frozen=True, slots=True)
class Send:
    """A record handed to a producer; its partition is in its `Outcome` (the partitioner
    picks it by key)."""

    seq: int
    producer: str
    region: str
    topic: str
    key: str | None
    value: str
    sent_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to the send of `value`: its offset when acknowledged."""

    seq: int
    value: str
    status: SendStatus
    partition: int | None
    offset: int | None
    time_ms: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class Poll:
    seq: int
    consumer: str
    group: str
    region: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Commit:
    """A group commit of `offset` (the next offset to read), refused when `error` is set."""

    seq: int
    consumer: str
    group: str
    region: str
    topic: str
    partition: int
    offset: int
    time_ms: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class Assignment:
    """A partition given to (or taken from) a consumer by its group's rebalance."""

    seq: int
    consumer: str
    group: str
    region: str
    topic: str
    partition: int
    assigned: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: EventKind
    time_ms: int
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    offset: int
    key: str | None
    value: str


@dataclass(frozen=True)
class PartitionContents:
    """A partition's whole log in one region, read by the runner at the end of a drill:
    records at offsets [start_offset, end_offset), gaps (markers, mirrored gaps) left out."""

    region: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    records: tuple[StoredRecord, ...]

    @property
    def topic_partition(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True)
class History:
    """One run, every table in `seq` order. `truncated`: the recorder hit its row bound and
    dropped rows, so no verdict over it can be trusted."""

    sends: tuple[Send, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    polls: tuple[Poll, ...] = ()
    commits: tuple[Commit, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    events: tuple[Event, ...] = ()
    contents: tuple[PartitionContents, ...] = ()
    truncated: bool = False
