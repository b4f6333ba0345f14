"""A drill file: what to deploy, what load to put on it, what to break when, what must hold.

    name = "switchover-under-load"
    description = "..."
    topology = "../../topologies/active-passive.toml"   # relative to the drill file
    invariants = ["no lost-write", "no duplicate", "rto_seconds < 5"]

    [workload]                     # chaos.workload: producers and committing groups
    duration_s = 20
    [[workload.topics]]
    name = "orders"
    partitions = 3
    [[workload.producers]]
    topic = "orders"
    rate_per_s = 200
    [[workload.groups]]
    group = "billing"
    topics = ["orders"]

    [[steps]]                      # the timeline, in seconds from the workload's start
    at_s = [4, 6]                  # a range: the seed picks the moment
    action = "switchover"
    to = "eu-west"

Validated by pydantic; a mistake is one line naming the file, line and key.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chaos.clients import GroupSpec, ProducerSpec
from chaos.invariants import Invariant, InvariantError
from chaos.workload import WorkloadSpec
from mirror.failover.model import StepKind
from mirror.tomlsource import load_model

Seconds = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicModel(_Strict):
    name: str
    partitions: Annotated[int, Field(ge=1, le=1000)] = 3
    replication_factor: Annotated[int, Field(ge=1, le=5)] = 1
    configs: dict[str, str] = {}  # e.g. {"min.insync.replicas" = "2"}


class ProducerModel(_Strict):
    topic: str
    rate_per_s: Annotated[float, Field(gt=0)] = 100.0
    max_sends: Annotated[int, Field(ge=0)] = 100_000
    keys: Annotated[int, Field(ge=1)] = 16
    acks: Literal["all", "1", "0"] = "all"
    idempotence: bool = True
    delivery_timeout_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _idempotence_needs_acks_all(self) -> ProducerModel:
        if self.idempotence and self.acks != "all":
            raise ValueError('idempotence = true needs acks = "all"')
        return self


class GroupModel(_Strict):
    group: str
    topics: list[str]
    consumers: Annotated[int, Field(ge=1, le=16)] = 1
    commit_interval_s: Annotated[float, Field(gt=0)] = 1.0


class WorkloadModel(_Strict):
    topics: list[TopicModel]
    producers: list[ProducerModel]
    groups: list[GroupModel] = []
    duration_s: Annotated[float, Field(gt=0, le=3600)] = 20.0
    drain_s: Annotated[float, Field(gt=0, le=600)] = 30.0

    @model_validator(mode="after")
    def _known_topics(self) -> WorkloadModel:
        known = {t.name for t in self.topics}
        used = {p.topic for p in self.producers} | {t for g in self.groups for t in g.topics}
        if unknown := sorted(used - known):
            raise ValueError(f"topics {unknown} are used but not listed in [[workload.topics]]")
        return self

    def spec(self) -> WorkloadSpec:
        return WorkloadSpec(
            producers=tuple(
                ProducerSpec(
                    p.topic, p.rate_per_s, p.max_sends, p.keys, p.acks, p.idempotence,
                    p.delivery_timeout_s,
                )
                for p in self.producers
            ),
            groups=tuple(
                GroupSpec(g.group, tuple(g.topics), g.consumers, g.commit_interval_s)
                for g in self.groups
            ),
            duration_s=self.duration_s,
            drain_s=self.drain_s,
        )  # fmt: skip


class Action(StrEnum):
    SWITCHOVER = "switchover"  # regionlink switchover --to TO
    FAILOVER = "failover"  # regionlink failover --to TO --force
    FAILBACK = "failback"  # regionlink failback --to TO
    KILL = "kill"  # SIGKILL the processes named by `process`
    STOP = "stop"  # SIGSTOP them (frozen: sockets open, nothing answers)
    CONT = "cont"  # SIGCONT them
    WAIT_CAUGHT_UP = "wait-caught-up"  # until every running flow has copied everything
    FAULT = "fault"  # a toxic on a WAN link (one direction "a->b", or both "a:b")
    CUT = "cut"  # the link down: its proxies refuse and drop connections
    HEAL = "heal"  # the link up again, without the toxics drills added
    PAUSE_FLOW = "pause-flow"  # regionlink link pause FLOW: the mirror falls behind
    RESUME_FLOW = "resume-flow"  # regionlink link resume FLOW


TOXICS = frozenset(
    {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"}
)
LINK_ACTIONS = frozenset({Action.FAULT, Action.CUT, Action.HEAL})
FLOW_ACTIONS = frozenset({Action.PAUSE_FLOW, Action.RESUME_FLOW})


OPERATIONS = frozenset({Action.SWITCHOVER, Action.FAILOVER, Action.FAILBACK})
SIGNALS = frozenset({Action.KILL, Action.STOP, Action.CONT})


class StepModel(_Strict):
    at_s: Seconds | tuple[Seconds, Seconds]  # a moment, or a range the seed picks from
    action: Action
    to: str | None = None  # operations: the region to move the primary role to
    process: str | None = None  # signals: a process name from `regionlink status`, a glob
    # ("*/worker-*"), or a region (all its brokers and controllers)
    pick: Literal["all", "one"] = "all"  # signals: every match, or one the seed picks
    times: Annotated[int, Field(ge=1, le=20)] = 1  # repeat, every `every_s`
    every_s: Seconds = 0.0
    # operations: SIGKILL the orchestrator as soon as it has started this step (a failover
    # step kind: "drain", "promote", "truncate", ...), then run the command again to resume
    kill_orchestrator_at: StepKind | None = None
    flow: str | None = None  # pause-flow, resume-flow: "SOURCE:TARGET"
    link: str | None = None  # link steps: "us-east->eu-west" (one way) or "us-east:eu-west"
    toxic: str | None = None  # fault: latency, bandwidth, slow_close, timeout, reset_peer,
    # slicer, limit_data (Toxiproxy's), with its attributes, e.g. {latency = 200}
    attributes: dict[str, int] = {}  # Toxiproxy's attributes are integers
    stream: Literal["upstream", "downstream", "both"] = "both"
    toxicity: Annotated[float, Field(ge=0, le=1)] = 1.0
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    note: str = ""

    @field_validator("at_s")
    @classmethod
    def _ordered_range(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"range {list(value)} runs backwards")
        return value

    @model_validator(mode="after")
    def _arguments(self) -> StepModel:
        if self.action in OPERATIONS and not self.to:
            raise ValueError(f'{self.action.value} needs to = "REGION"')
        if self.action in SIGNALS and not self.process:
            raise ValueError(f'{self.action.value} needs process = "NAME", a glob or a region')
        if self.action in LINK_ACTIONS and not _link_name(self.link):
            raise ValueError(f'{self.action.value} needs link = "A->B" (one way) or "A:B" (both)')
        if self.action in FLOW_ACTIONS and not self.flow:
            raise ValueError(f'{self.action.value} needs flow = "SOURCE:TARGET"')
        if self.action is Action.FAULT and self.toxic not in TOXICS:
            raise ValueError(f"fault needs toxic = one of {', '.join(sorted(TOXICS))}")
        if self.kill_orchestrator_at is not None and self.action not in OPERATIONS:
            raise ValueError("kill_orchestrator_at is for switchover, failover, failback")
        return self


def _link_name(link: str | None) -> bool:
    if link is None:
        return False
    a, sep, b = link.partition("->") if "->" in link else link.partition(":")
    return bool(sep and a and b and a != b)


def link_directions(link: str) -> list[str]:
    """The link directions ("a->b") a link step acts on: one, or both for "a:b"; each is
    carried by a proxy per broker of its target region."""
    if "->" in link:
        return [link]
    a, _, b = link.partition(":")
    return [f"{a}->{b}", f"{b}->{a}"]


class DrillModel(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    description: str
    topology: Path  # relative to the drill file
    invariants: list[str]
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0  # the whole run, bounded
    workload: WorkloadModel
    steps: list[StepModel] = []

    @field_validator("invariants")
    @classmethod
    def _parse_invariants(cls, texts: list[str]) -> list[str]:
        for text in texts:
            try:
                Invariant.parse(text)
            except InvariantError as exc:
                raise ValueError(str(exc)) from None
        return texts

    def parsed_invariants(self) -> tuple[Invariant, ...]:
        return tuple(Invariant.parse(text) for text in self.invariants)


class Drill:
    """A loaded drill: the model and the file it came from."""

    def __init__(self, model: DrillModel, path: Path) -> None:
        self.model = model
        self.path = path

    @property
    def topology_path(self) -> Path:
        return (self.path.parent / self.model.topology).resolve()


def load_drill(path: Path) -> Drill:
    """Read and validate a drill file; `ConfigError` names the file, line and key."""
    return Drill(load_model(DrillModel, path), path)
