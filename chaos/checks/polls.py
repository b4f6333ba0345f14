"""How consumers and groups moved through each log: each consumer in order, each group whole.

A consumer's polls of a partition are judged in *periods*: from one assignment of the partition
to the next (a rebalance, or the group moving to another region), as Jepsen's checker forgets a
key's last read when a rebalance touches it. Within a period, positions in the log (dense, see
`chaos.checks.logs`) must rise by exactly one:

- nonmonotonic-poll: a poll at or below the previous one's position;
- poll-skip: a readable record passed over — not lost, and not read by this consumer elsewhere
  in the period (so a reordering is one nonmonotonic-poll, not skips as well).

A group is judged across its periods, whatever region each ran in (with mirror topics the
committed offsets are copied 1:1, so a group that moves must resume exactly at its commit):

- reread: at a resume, a record read again that the group had read below its committed offset;
- missed: a record below the group's progress (its highest read or commit) that the group never
  read and no member passed over inside a period — a resume above the committed offset, or a
  commit past records nobody read.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field

from chaos.checks.logs import PartitionLog
from chaos.findings import Anomaly, Finding
from chaos.model import Assignment, History, Poll, TopicPartition

Commits = tuple[list[int], list[int]]  # (seqs, offsets) of a group's successful commits


@dataclass
class Period:
    consumer: str
    group: str
    topic: str
    partition: int
    polls: list[Poll] = field(default_factory=list)

    @property
    def topic_partition(self) -> TopicPartition:
        return (self.topic, self.partition)


def periods(history: History, excluded: Set[str]) -> list[Period]:
    """Every consumer's polls of each partition, cut at each assignment change of it."""
    open_periods: dict[tuple[str, str, str, int], Period] = {}
    found: list[Period] = []
    items: Iterator[Poll | Assignment] = heapq.merge(
        history.polls, history.assignments, key=lambda item: item.seq
    )
    for item in items:
        key = (item.consumer, item.group, item.topic, item.partition)
        if isinstance(item, Assignment):
            open_periods.pop(key, None)
            continue
        if item.value in excluded:
            continue
        period = open_periods.get(key)
        if period is None:
            period = open_periods[key] = Period(*key)
            found.append(period)
        period.polls.append(item)
    return found


def poll_findings(
    history: History,
    found: Sequence[Period],
    logs: Mapping[TopicPartition, PartitionLog],
    lost: Set[str],
) -> Iterator[Finding]:
    skipped: set[tuple[str, str]] = set()  # (group, value) a member passed over
    for period in found:
        for finding in _consumer_findings(period, logs[period.topic_partition], lost):
            if finding.anomaly is Anomaly.POLL_SKIP:
                skipped.add((period.group, finding.value))
            yield finding
    committed = _commits(history)
    by_group: defaultdict[tuple[str, TopicPartition], list[Period]] = defaultdict(list)
    for period in found:
        by_group[(period.group, period.topic_partition)].append(period)
    for (group, tp), of_group in by_group.items():
        commits = committed.get((group, tp), ([], []))
        yield from _rereads(of_group, commits)
        yield from _missed(of_group, commits, logs[tp], lost, skipped)


def _consumer_findings(period: Period, log: PartitionLog, lost: Set[str]) -> Iterator[Finding]:
    read = {poll.value for poll in period.polls}
    previous: int | None = None
    for poll in period.polls:
        position = log.index[poll.offset]
        if previous is not None and position <= previous:
            yield _finding(
                Anomaly.NONMONOTONIC_POLL,
                poll.offset,
                poll.value,
                period,
                f"polled after offset {log.offsets[previous]}",
            )
        elif previous is not None:
            for offset, value in log.between(previous + 1, position):
                if value not in read and value not in lost:
                    yield _finding(
                        Anomaly.POLL_SKIP,
                        offset,
                        value,
                        period,
                        f"went from offset {log.offsets[previous]} to {poll.offset}",
                    )
        previous = position


def _rereads(of_group: Sequence[Period], commits: Commits) -> Iterator[Finding]:
    """Records a period read again that the group had read below its commit at the resume."""
    first_read: dict[str, tuple[int, int]] = {}  # value -> (seq, offset) of its first read
    for poll in (poll for period in of_group for poll in period.polls):
        if poll.value not in first_read or poll.seq < first_read[poll.value][0]:
            first_read[poll.value] = (poll.seq, poll.offset)
    for period in of_group:
        start = period.polls[0]
        commit = _commit_before(commits, start.seq)
        for poll in period.polls:
            seq, offset = first_read[poll.value]
            if commit is not None and seq < start.seq and offset < commit:
                yield _finding(
                    Anomaly.REREAD,
                    poll.offset,
                    poll.value,
                    period,
                    f"resumed at offset {start.offset}, committed {commit}",
                )


def _missed(
    of_group: Sequence[Period],
    commits: Commits,
    log: PartitionLog,
    lost: Set[str],
    skipped: Set[tuple[str, str]],
) -> Iterator[Finding]:
    read = {poll.offset for period in of_group for poll in period.polls}
    progress = max([offset + 1 for offset in read] + commits[1])
    group = of_group[0].group
    resumes = sorted(of_group, key=lambda p: p.polls[0].offset)
    resumed_at = [p.polls[0].offset for p in resumes]
    for offset, value in log.between(0, bisect.bisect_left(log.offsets, progress)):
        if offset not in read and value not in lost and (group, value) not in skipped:
            after = min(bisect.bisect_right(resumed_at, offset), len(resumes) - 1)
            yield _finding(
                Anomaly.MISSED,
                offset,
                value,
                resumes[after],  # the resume that passed over it, for its region
                f"never read, though the group read or committed up to offset {progress}",
            )


def _commits(history: History) -> dict[tuple[str, TopicPartition], Commits]:
    commits: dict[tuple[str, TopicPartition], Commits] = {}
    for commit in history.commits:
        if not commit.error:
            key = (commit.group, (commit.topic, commit.partition))
            seqs, offsets = commits.setdefault(key, ([], []))
            seqs.append(commit.seq)
            offsets.append(commit.offset)
    return commits


def _commit_before(commits: Commits, seq: int) -> int | None:
    seqs, offsets = commits
    i = bisect.bisect_left(seqs, seq)
    return offsets[i - 1] if i else None


def _finding(anomaly: Anomaly, offset: int, value: str, period: Period, detail: str) -> Finding:
    actor = period.group if anomaly in (Anomaly.REREAD, Anomaly.MISSED) else period.consumer
    return Finding(
        anomaly,
        period.topic,
        period.partition,
        offset,
        value,
        region=period.polls[0].region,
        actor=actor,
        detail=detail,
    )
