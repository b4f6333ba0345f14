"""The values failover orchestration passes around: roles, topology state, steps, reports.

Everything here is a frozen value with a JSON form, because it is journaled (a killed
orchestrator resumes from `failover.db`) and shown (`regionlink failover ... --json`).
`TopologyState` is the *desired* topology — the roles the regions should hold and the flows
that should run — which the supervisor reconciles towards; `RegionRole.pending` marks a role
change the region has not confirmed (it was unreachable), enforced when the region is back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

Flow = tuple[str, str]
"""A mirror flow as (source region, target region)."""

Json = dict[str, Any]


class Role(StrEnum):
    PRIMARY = "primary"  # clients may write
    STANDBY = "standby"  # clients may not write replicated topics
    NONE = ""  # no failover configured: everything writable


class OperationKind(StrEnum):
    SWITCHOVER = "switchover"  # planned: fence, drain to lag 0, promote; no loss
    FAILOVER = "failover"  # forced: promote what the standby has; loss reported
    FAILBACK = "failback"  # bring a failed-over old primary back, then switch over to it


class StepKind(StrEnum):
    """What a step does. `Step.region` is the region it changes or reads, `Step.peer` the
    other one; for flow steps (drain, sync_groups, stop_flow, start_flow, catch_up,
    measure_loss, recover) region is the flow's source and peer its target.

    Over a mapped flow (`PairFacts.mapped`: remote topics and the exact offset map) "mirrored
    up to" means the map's resume position at the target's end, not the target's log end;
    group offsets are translated through the map; there are no topic flags to promote or
    demote (the standby role fences a region's own topics, remote topics are exempt)."""

    FENCE_SOURCE = "fence_source"  # region: role standby at the step's epoch
    UNFENCE = "unfence"  # region: role primary again at the step's epoch (an abort)
    DRAIN = "drain"  # every partition mirrored up to its source end, after the fence
    SYNC_GROUPS = "sync_groups"  # idle groups' committed offsets, 1:1 or translated
    PROMOTE = "promote"  # region: role primary; its mirror topics of peer become writable
    STOP_FLOW = "stop_flow"
    START_FLOW = "start_flow"  # the flow runs with link_epoch = the step's epoch
    DEMOTE_TOPICS = "demote_topics"  # region's topics become mirror topics of peer
    MEASURE_LOSS = "measure_loss"  # what peer mirrored vs region's last observed ends
    SAVE_DIVERGENT = "save_divergent"  # region's records past peer's ends at promotion
    TRUNCATE = "truncate"  # region's logs cut to peer's ends at promotion
    CATCH_UP = "catch_up"  # wait until the flow's lag is 0 (the source stays writable)
    RECOVER = "recover"  # offset-mapped flow: unmirrored records copied late, counted


ENFORCED_KINDS = frozenset({StepKind.FENCE_SOURCE, StepKind.UNFENCE, StepKind.PROMOTE})
"""Steps that change a region's role: no-ops on an external cluster (`Step.enforced`)."""


class OnFailure(StrEnum):
    """What a failed step leads to."""

    ABORT = "abort"  # before the point of no return: run the abort steps, outcome aborted
    HALT = "halt"  # past it (the peer may already take writes): outcome failed; rerun it
    CONTINUE = "continue"  # best effort: the change is recorded as pending, the plan goes on


class StepState(StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # never run: the operation ended before it


class Outcome(StrEnum):
    RUNNING = "running"
    DONE = "done"
    ABORTED = "aborted"  # undone: the old primary serves again
    FAILED = "failed"  # stopped past the point of no return; resumable by rerunning a step


@dataclass(frozen=True)
class RegionRole:
    """The role a region should hold, at the topology epoch it was set at."""

    role: Role
    epoch: int
    pending: bool = False  # not confirmed by the region (unreachable when it was set)

    def to_json(self) -> Json:
        return {"role": self.role.value, "epoch": self.epoch, "pending": self.pending}

    @classmethod
    def from_json(cls, data: Json) -> RegionRole:
        return cls(Role(data["role"]), data["epoch"], data["pending"])

    def to_tell(self, known_role: str, known_epoch: int) -> bool:
        """Whether a region holding `known_role` at `known_epoch` must be told this role: it
        knows an older epoch (it missed a change), or — for a pending change only — the same
        epoch with another role. That happens when a best-effort step failed after its
        operation had already reached the region at this epoch, e.g. the unfence undoing an
        aborted switchover's fence. A confirmed role is never forced at its own epoch: there
        a different role can only be a newer step of a running operation, not yet journaled.
        """
        if known_epoch != self.epoch:
            return known_epoch < self.epoch
        return self.pending and known_role != self.role.value


@dataclass(frozen=True)
class PairFacts:
    """What the topology file says about the failover pair, which no operation changes.

    `external`: regions regionlink does not run (a `bootstrap = ...` cluster): no
    regionlink.* cluster configs there, so their roles cannot be enforced. `mapped`: flows
    that keep the exact offset map (prefix naming, or any flow onto an external cluster)
    instead of writing mirror topics (identity naming onto a regionlink region). The
    default is two regionlink regions with mirror topics both ways.
    """

    external: frozenset[str] = frozenset()
    mapped: frozenset[Flow] = frozenset()

    def is_mapped(self, source: str, target: str) -> bool:
        return (source, target) in self.mapped


@dataclass(frozen=True)
class TopologyState:
    """The failover pair as the orchestrator wants it. `reachable` is not journaled: the
    driver probes the regions and sets it (`with_reachable`) before asking the planner."""

    epoch: int
    primary: str  # where clients should write (regionlink.topology.primary)
    standby: str
    roles: Mapping[str, RegionRole]  # both regions; never two PRIMARY
    flows: Mapping[Flow, int]  # running flows -> the topology epoch each runs under
    promoted_at_epoch: int = 0  # when the primary took over (0: it always was primary)
    reachable: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        assert set(self.roles) == {self.primary, self.standby}, self
        primaries = [r for r, role in self.roles.items() if role.role is Role.PRIMARY]
        assert primaries in ([], [self.primary]), self
        assert all(role.epoch <= self.epoch for role in self.roles.values()), self

    @classmethod
    def initial(cls, primary: str, standby: str) -> TopologyState:
        """Epoch 0, as a topology's [failover] section describes it: primary -> standby."""
        return cls(
            epoch=0,
            primary=primary,
            standby=standby,
            roles={primary: RegionRole(Role.PRIMARY, 0), standby: RegionRole(Role.STANDBY, 0)},
            flows={(primary, standby): 0},
        )

    def role(self, region: str) -> RegionRole:
        return self.roles[region]

    def is_reachable(self, region: str) -> bool:
        return region in self.reachable

    def with_reachable(self, regions: Iterable[str]) -> TopologyState:
        return replace(self, reachable=frozenset(regions))

    def pending(self) -> list[str]:
        """Regions whose role change is not confirmed yet."""
        return sorted(region for region, role in self.roles.items() if role.pending)

    def to_json(self) -> Json:
        return {
            "epoch": self.epoch,
            "primary": self.primary,
            "standby": self.standby,
            "roles": {region: role.to_json() for region, role in sorted(self.roles.items())},
            "flows": [
                {"source": source, "target": target, "epoch": epoch}
                for (source, target), epoch in sorted(self.flows.items())
            ],
            "promoted_at_epoch": self.promoted_at_epoch,
        }

    @classmethod
    def from_json(cls, data: Json) -> TopologyState:
        return cls(
            epoch=data["epoch"],
            primary=data["primary"],
            standby=data["standby"],
            roles={r: RegionRole.from_json(v) for r, v in data["roles"].items()},
            flows={(f["source"], f["target"]): f["epoch"] for f in data["flows"]},
            promoted_at_epoch=data["promoted_at_epoch"],
        )


@dataclass(frozen=True)
class Step:
    """One idempotent action of an operation, at the topology epoch it runs under.

    `index` orders an operation's steps; abort steps follow the plan's. `timeout_s` bounds
    drain and catch_up; `since_epoch` names the forced failover whose promotion the
    divergence is measured from (save_divergent, truncate): its measure_loss step's figures.
    """

    index: int
    kind: StepKind
    region: str
    peer: str
    epoch: int
    on_failure: OnFailure
    timeout_s: float | None = None
    since_epoch: int | None = None
    enforced: bool = True  # False: a role change on an external cluster, done as a no-op

    @property
    def flow(self) -> Flow:
        return (self.region, self.peer)

    def note(self) -> str:
        """What the operator must do instead of a step regionlink cannot enforce ("" if none)."""
        if self.enforced:
            return ""
        return f"not enforced on {self.region} (external cluster): {_YOURSELF[self.kind]}"

    def describe(self) -> str:
        """One line for logs and messages, e.g. "drain us-east->eu-west"."""
        return f"{self.kind.value} {_TARGETS[self.kind].format(r=self.region, p=self.peer)}"

    def to_json(self) -> Json:
        return {
            "index": self.index,
            "kind": self.kind.value,
            "region": self.region,
            "peer": self.peer,
            "epoch": self.epoch,
            "on_failure": self.on_failure.value,
            "timeout_s": self.timeout_s,
            "since_epoch": self.since_epoch,
            "enforced": self.enforced,
            "note": self.note(),
        }

    @classmethod
    def from_json(cls, data: Json) -> Step:
        return cls(
            index=data["index"],
            kind=StepKind(data["kind"]),
            region=data["region"],
            peer=data["peer"],
            epoch=data["epoch"],
            on_failure=OnFailure(data["on_failure"]),
            timeout_s=data["timeout_s"],
            since_epoch=data["since_epoch"],
            enforced=data.get("enforced", True),
        )


_YOURSELF = {
    StepKind.FENCE_SOURCE: "stop its producers yourself",
    StepKind.UNFENCE: "restart its producers yourself if you stopped them",
    StepKind.PROMOTE: "its clients could always write; point producers at it yourself",
}

_FLOW_TARGET = "{r}->{p}"
_TARGETS = {
    StepKind.FENCE_SOURCE: "{r}",
    StepKind.UNFENCE: "{r}",
    StepKind.DRAIN: _FLOW_TARGET,
    StepKind.SYNC_GROUPS: _FLOW_TARGET,
    StepKind.PROMOTE: "{r}",
    StepKind.STOP_FLOW: _FLOW_TARGET,
    StepKind.START_FLOW: _FLOW_TARGET,
    StepKind.DEMOTE_TOPICS: "{r} (mirrors of {p})",
    StepKind.MEASURE_LOSS: _FLOW_TARGET,
    StepKind.SAVE_DIVERGENT: "{r} (into {p})",
    StepKind.TRUNCATE: "{r}",
    StepKind.CATCH_UP: _FLOW_TARGET,
    StepKind.RECOVER: _FLOW_TARGET,
}


@dataclass(frozen=True)
class StepEntry:
    """What the journal knows about one step: its latest state and the driver's figures
    (`detail`, JSON: offsets, the loss manifest, `error` for a failure)."""

    index: int
    state: StepState
    started_ms: int | None = None  # the first start: reruns keep it
    finished_ms: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 0  # how many times it was started

    @property
    def error(self) -> str:
        return str(self.detail.get("error", ""))


@dataclass(frozen=True)
class PartitionLoss:
    """Offsets [first_offset, last_offset] of one partition: lost, or saved as divergent."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    records: int  # may be fewer than the offsets spanned (compaction, markers)
    first_timestamp_ms: int | None = None
    last_timestamp_ms: int | None = None
    into: str = ""  # recovered records: the remote topic they were copied into

    def __post_init__(self) -> None:
        assert 0 <= self.first_offset <= self.last_offset, self
        assert 0 <= self.records <= self.last_offset - self.first_offset + 1, self

    def to_json(self) -> Json:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "records": self.records,
            "first_timestamp_ms": self.first_timestamp_ms,
            "last_timestamp_ms": self.last_timestamp_ms,
            "into": self.into,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PartitionLoss:
        return cls(
            topic=data["topic"],
            partition=data["partition"],
            first_offset=data["first_offset"],
            last_offset=data["last_offset"],
            records=data["records"],
            first_timestamp_ms=data.get("first_timestamp_ms"),
            last_timestamp_ms=data.get("last_timestamp_ms"),
            into=data.get("into", ""),
        )


@dataclass(frozen=True)
class StepTiming:
    """A step as the report shows it."""

    step: Step
    state: StepState | None  # None: not reached
    started_ms: int | None
    finished_ms: int | None
    error: str
    attempts: int

    @property
    def duration_s(self) -> float | None:
        if self.started_ms is None or self.finished_ms is None:
            return None
        return (self.finished_ms - self.started_ms) / 1000

    def to_json(self) -> Json:
        return {
            **self.step.to_json(),
            "state": self.state.value if self.state is not None else None,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "duration_s": self.duration_s,
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class OperationReport:
    """The outcome of one operation: the `--json` interface of `regionlink switchover`,
    `failover` and `failback`. Seconds are None where they cannot be known (no promotion
    yet; lost records without timestamps)."""

    operation: OperationKind
    from_region: str
    to_region: str
    epoch: int
    outcome: Outcome
    reason: str  # why it aborted or failed; "" when done
    rpo_records: int
    rpo_seconds: float | None
    rto_seconds: float | None
    observed_age_s: float | None  # age of the old primary's end offsets the loss uses
    loss_manifest: tuple[PartitionLoss, ...]
    diverged: tuple[PartitionLoss, ...]  # saved into <topic>.diverged on the new primary
    pending: tuple[str, ...]  # regions whose role change awaits their return
    steps: tuple[StepTiming, ...]
    recovered: tuple[PartitionLoss, ...] = ()  # copied late into remote topics (failback)
    not_enforced: tuple[str, ...] = ()  # external regions: roles not enforced (`Step.note`)

    @property
    def recovered_records(self) -> int:
        return sum(item.records for item in self.recovered)

    def to_json(self) -> Json:
        return {
            "operation": self.operation.value,
            "from": self.from_region,
            "to": self.to_region,
            "epoch": self.epoch,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "rpo_records": self.rpo_records,
            "rpo_seconds": self.rpo_seconds,
            "rto_seconds": self.rto_seconds,
            "observed_age_s": self.observed_age_s,
            "loss_manifest": [loss.to_json() for loss in self.loss_manifest],
            "diverged": [loss.to_json() for loss in self.diverged],
            "pending": list(self.pending),
            "recovered_records": self.recovered_records,
            "recovered": [item.to_json() for item in self.recovered],
            "not_enforced": list(self.not_enforced),
            "steps": [timing.to_json() for timing in self.steps],
        }
