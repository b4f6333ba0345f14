"""A drill's workload: producers and consumer groups that record a history, bounded, self-ending.

    with HistoryWriter(run_dir / "history.db") as history:
        workload = Workload(spec, Endpoint("us-east", bootstrap), history).start()
        ...                                   # the drill's timeline: faults, failovers
        workload.move(read_endpoint(state_dir))   # clients follow the new primary
        workload.wait()

Producers run until `duration_s` has passed or each has sent its `max_sends`; then consumers
drain — they keep polling until every group has read everything acknowledged, or `drain_s`
has passed — and the workload ends by itself. `stop()` ends it early (a drill interrupted).
Every wait is bounded, so a dead broker makes a workload end with unknown sends, never hang.
Threads, not an event loop: confluent-kafka blocks, and an async runner awaits
`anyio.to_thread.run_sync(workload.wait)`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

from chaos.clients import (
    Client,
    ConsumerClient,
    GroupSpec,
    ProducerClient,
    ProducerSpec,
    Progress,
)
from chaos.endpoint import Endpoint
from chaos.history import HistoryWriter

DRAIN_CHECK_S = 0.1


@dataclass(frozen=True)
class WorkloadSpec:
    producers: tuple[ProducerSpec, ...]
    groups: tuple[GroupSpec, ...] = ()
    duration_s: float = 10.0
    drain_s: float = 30.0


class Workload:
    def __init__(self, spec: WorkloadSpec, endpoint: Endpoint, history: HistoryWriter) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.history = history
        self.progress = Progress()
        self._stop_producing = threading.Event()
        self._stop_consuming = threading.Event()
        self._clients: list[Client] = []
        self._supervisor = threading.Thread(target=self._supervise, name="workload", daemon=True)

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def producers(self) -> list[ProducerClient]:
        return [c for c in self._clients if isinstance(c, ProducerClient)]

    @property
    def consumers(self) -> list[ConsumerClient]:
        return [c for c in self._clients if isinstance(c, ConsumerClient)]

    def start(self) -> Workload:
        deadline_s = time.monotonic() + self.spec.duration_s
        for i, producer in enumerate(self.spec.producers):
            self._clients.append(
                ProducerClient(
                    f"p{i}",
                    producer,
                    self.endpoint,
                    self.history,
                    self.progress,
                    self._stop_producing,
                    deadline_s,
                )
            )
        for group in self.spec.groups:
            for j in range(group.consumers):
                name = f"{group.group}-c{j}"
                self._clients.append(
                    ConsumerClient(
                        name,
                        group,
                        self.endpoint,
                        self.history,
                        self.progress,
                        self._stop_consuming,
                    )
                )
        for client in self._clients:
            client.thread.start()
        self._supervisor.start()
        return self

    def move(self, endpoint: Endpoint, timeout_s: float = 30.0) -> bool:
        """Every client finishes with its region and connects to `endpoint`; whether all
        did within `timeout_s` (clients that have finished count as moved)."""
        self.endpoint = endpoint
        for client in self._clients:
            client.move(endpoint)
        deadline_s = time.monotonic() + timeout_s
        return all(c.settled(max(0.0, deadline_s - time.monotonic())) for c in self._clients)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the workload has ended by itself; whether it has."""
        self._supervisor.join(timeout_s)
        return not self._supervisor.is_alive()

    def stop(self) -> None:
        self._stop_producing.set()
        self._stop_consuming.set()
        if self._supervisor.is_alive():
            self._supervisor.join()

    def _supervise(self) -> None:
        for producer in self.producers:
            producer.thread.join()
        drained_by_s = time.monotonic() + self.spec.drain_s
        while not self._stop_consuming.is_set() and time.monotonic() < drained_by_s:
            if self.progress.caught_up(self.spec.groups, self.endpoint):
                break
            time.sleep(DRAIN_CHECK_S)
        self._stop_consuming.set()
        for consumer in self.consumers:
            consumer.thread.join()
