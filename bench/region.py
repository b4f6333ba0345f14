"""A multi-broker region for the benchmarks: 3 controllers and 3 brokers as processes.

Built on bench.brokers' launch/stop so every process gets its own log, process group and
bounded start; the region is ready once every broker is registered and unfenced.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bench.brokers import (
    ArgvFn,
    BrokerSpec,
    BrokerStartError,
    RunningBroker,
    launch,
    regionlink_argv,
    stop_process,
)
from broker.ports import free_port

# Failure detection as the tests and the failover figure use it: a broker is fenced
# (and its partitions move) after 1.5 s without a heartbeat; heartbeats every 250 ms.
SESSION_TIMEOUT_MS = 1_500
HEARTBEAT_INTERVAL_MS = 250
READY_TIMEOUT_S = 60.0


@dataclass
class RunningRegion:
    """Controllers and brokers by node id; `stop()` always reaps every process."""

    controllers: dict[int, RunningBroker] = field(default_factory=dict)
    brokers: dict[int, RunningBroker] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values() if b.alive())

    def kill(self, broker_id: int) -> None:
        """SIGKILL one broker and reap it: when this returns, its sockets are closed."""
        process = self.brokers[broker_id].process
        process.send_signal(signal.SIGKILL)
        process.wait()

    def leader(self, topic: str, partition: int = 0) -> int:
        metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=5)
        return metadata.topics[topic].partitions[partition].leader

    def stop(self) -> None:
        for process in [*self.brokers.values(), *self.controllers.values()]:
            stop_process(process.process)


@contextlib.contextmanager
def running_region(
    work_dir: Path, nodes: int = 3, timeout_s: float = 30.0
) -> Iterator[RunningRegion]:
    """Start `nodes` controllers and `nodes` brokers under `work_dir`; stop them on exit."""
    ports = {n: free_port() for n in range(1, nodes + 1)}
    quorum = ",".join(f"{n}@127.0.0.1:{port}" for n, port in ports.items())
    region = RunningRegion()
    try:
        for n, port in ports.items():
            spec = BrokerSpec(f"controller-{n}", _controller_argv(n, quorum))
            region.controllers[n] = launch(spec, work_dir, timeout_s, port)
        for n in ports:
            spec = BrokerSpec(f"broker-{n}", _broker_argv(n, quorum))
            region.brokers[n] = launch(spec, work_dir, timeout_s)
        _wait_all_unfenced(region, nodes)
        yield region
    finally:
        region.stop()


def _controller_argv(node_id: int, quorum: str) -> ArgvFn:
    def argv(_port: int, data_dir: Path) -> list[str]:  # the port is in the quorum list
        return regionlink_argv(
            "controller", "--node-id", str(node_id), "--data-dir", str(data_dir),
            "--quorum", quorum, "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
        )  # fmt: skip

    return argv


def _broker_argv(node_id: int, quorum: str) -> ArgvFn:
    def argv(port: int, data_dir: Path) -> list[str]:
        return regionlink_argv(
            "broker", "--node-id", str(node_id), "--data-dir", str(data_dir),
            "--listen", f"127.0.0.1:{port}", "--controllers", quorum,
            "--heartbeat-interval-ms", str(HEARTBEAT_INTERVAL_MS),
        )  # fmt: skip

    return argv


def _wait_all_unfenced(region: RunningRegion, nodes: int) -> None:
    deadline_s = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline_s:
        with contextlib.suppress(Exception):
            admin = AdminClient({"bootstrap.servers": region.bootstrap})
            if len(admin.list_topics(timeout=2).brokers) == nodes:
                return
        time.sleep(0.1)
    raise BrokerStartError(
        f"the region's {nodes} brokers were not all live after {READY_TIMEOUT_S:.0f} s"
    )
