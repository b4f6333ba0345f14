"""What a worker reports about itself: per partition, per flow, per worker.

Plain dataclasses so the gRPC control API, `regionlink worker status`, OpenTelemetry
metrics and tests all read the same figures.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class PartitionState(StrEnum):
    STARTING = "starting"
    COPYING = "copying"
    CAUGHT_UP = "caught-up"
    RETRYING = "retrying"  # an error; retried with backoff
    PAUSED = "paused"


@dataclass(frozen=True)
class LostRange:
    """Source offsets deleted by retention before they were mirrored: [first, end)."""

    first_offset: int
    end_offset: int
    detected_at_ms: int

    @property
    def record_count(self) -> int:
        return self.end_offset - self.first_offset


@dataclass
class PartitionStatus:
    source_topic: str
    partition: int
    target_topic: str
    state: PartitionState = PartitionState.STARTING
    source_position: int = -1  # next source offset to copy
    source_end: int = -1  # source high watermark at the last fetch
    target_end: int = -1
    lag_records: int = 0
    lag_ms: int = 0
    records_copied: int = 0
    bytes_copied: int = 0
    records_per_s: float = 0.0
    last_error: str = ""
    lost: list[LostRange] = field(default_factory=list)
    _window_start_s: float = field(default_factory=time.monotonic, repr=False)
    _window_records: int = field(default=0, repr=False)
    _paused_observed_ms: int = field(default=0, repr=False)

    def count(self, records: int, byte_count: int) -> None:
        """Add copied records; keep a throughput figure over windows of about a second."""
        self.records_copied += records
        self.bytes_copied += byte_count
        self._window_records += records
        now_s = time.monotonic()
        elapsed_s = now_s - self._window_start_s
        if elapsed_s >= 1.0:
            self.records_per_s = self._window_records / elapsed_s
            self._window_start_s, self._window_records = now_s, 0

    def pause(self) -> None:
        """The copier stopped while the partition stays ours: keep its figures."""
        self.state = PartitionState.PAUSED
        self._paused_observed_ms = 0

    def observe_paused(self, source_end: int, observed_ms: int) -> None:
        """A paused partition's lag from the source's end, since no copier reports it: the
        oldest record not mirrored is as old as the lag was, plus the time since then —
        or, if there was none, at most the time since the last observation."""
        assert self.state == PartitionState.PAUSED
        previous_ms = self._paused_observed_ms or observed_ms
        lag_records = max(0, source_end - self.source_position) if self.source_position >= 0 else 0
        if lag_records == 0:
            self.lag_ms = 0
        else:
            self.lag_ms += max(0, observed_ms - previous_ms)
        self.source_end, self.lag_records = source_end, lag_records
        self._paused_observed_ms = observed_ms

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        data["state"] = str(self.state)
        data["records_lost"] = sum(r.record_count for r in self.lost)
        return data


@dataclass
class FlowStatus:
    source: str
    target: str
    state: str = "starting"  # starting, running, paused, error
    member_index: int = -1
    member_count: int = 0
    partitions: dict[tuple[str, int], PartitionStatus] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    groups_checkpointed: int = 0
    groups_synced: int = 0
    last_checkpoint_ms: int = 0
    last_error: str = ""

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def lag_records(self) -> int:
        return sum(p.lag_records for p in self.partitions.values())

    @property
    def lag_ms(self) -> int:
        return max((p.lag_ms for p in self.partitions.values()), default=0)

    @property
    def records_per_s(self) -> float:
        return sum(p.records_per_s for p in self.partitions.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "state": self.state,
            "member_index": self.member_index,
            "member_count": self.member_count,
            "topics": list(self.topics),
            "lag_records": self.lag_records,
            "lag_ms": self.lag_ms,
            "records_per_s": round(self.records_per_s, 1),
            "records_copied": sum(p.records_copied for p in self.partitions.values()),
            "records_lost": sum(r.record_count for p in self.partitions.values() for r in p.lost),
            "groups_checkpointed": self.groups_checkpointed,
            "groups_synced": self.groups_synced,
            "last_checkpoint_ms": self.last_checkpoint_ms,
            "last_error": self.last_error,
            "partitions": [
                p.as_dict() for _, p in sorted(self.partitions.items(), key=lambda kv: kv[0])
            ],
        }


@dataclass
class WorkerStatus:
    worker_id: str
    started_ms: int
    flows: dict[str, FlowStatus] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "started_ms": self.started_ms,
            "flows": [f.as_dict() for _, f in sorted(self.flows.items())],
        }
