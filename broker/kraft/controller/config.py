"""The controller's knobs, with Kafka KRaft's defaults, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from broker.kraft.config import RaftConfig
from broker.kraft.grpc_tls import GrpcTls


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """What the pure decisions (`logic`) need: defaults for new topics, sessions, id blocks."""

    broker_session_timeout_ms: int = 9_000  # broker.session.timeout.ms
    default_replication_factor: int = 3  # default.replication.factor (KRaft's is 1; ours 3)
    default_partitions: int = 1  # num.partitions
    producer_id_block_size: int = 1_000  # ProducerIdManager's block

    def __post_init__(self) -> None:
        if self.broker_session_timeout_ms <= 0:
            raise ValueError("broker_session_timeout_ms must be positive")
        if self.default_replication_factor < 1 or self.default_partitions < 1:
            raise ValueError("default replication factor and partitions must be >= 1")
        if self.producer_id_block_size < 1:
            raise ValueError("producer_id_block_size must be >= 1")


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    node_id: int
    data_dir: Path
    host: str
    port: int
    quorum: dict[int, tuple[str, int]]
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    raft: RaftConfig = field(default_factory=RaftConfig)
    tick_interval_ms: int = 50
    snapshot_every_entries: int = 1_000  # compact the Raft log this often
    commit_timeout_ms: int = 5_000  # a write RPC answers REQUEST_TIMED_OUT after this
    seed: int | None = None  # election-timeout rng; None derives it from the node id
    tls: GrpcTls | None = None  # mutual TLS for every gRPC call, served and made

    def __post_init__(self) -> None:
        if self.node_id not in self.quorum:
            ids = ",".join(str(i) for i in sorted(self.quorum))
            raise ValueError(f"node id {self.node_id} is not in the quorum (ids {ids})")
        if self.tick_interval_ms <= 0 or self.snapshot_every_entries < 1:
            raise ValueError("tick_interval_ms and snapshot_every_entries must be positive")
        if self.commit_timeout_ms <= 0:
            raise ValueError("commit_timeout_ms must be positive")

    @property
    def peers(self) -> dict[int, tuple[str, int]]:
        return {n: a for n, a in self.quorum.items() if n != self.node_id}
