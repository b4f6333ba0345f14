"""A multi-broker region of real processes: a controller quorum and brokers registered with it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import BrokerProcess, free_port

SESSION_TIMEOUT_MS = 1_500
HEARTBEAT_INTERVAL_MS = 250
SETTLE_TIMEOUT_S = 30.0
LEADER_LINE = re.compile(r"controller (\d+) is the leader for term (\d+)")


class ControllerProcess(BrokerProcess):
    """One `regionlink controller`; BrokerProcess's start/ready/stop/kill, another command."""

    def __init__(
        self, node_id: int, data_dir: Path, port: int, quorum: str, session_timeout_ms: int
    ) -> None:
        super().__init__(data_dir, port)
        self.node_id = node_id
        self.quorum = quorum
        self.session_timeout_ms = session_timeout_ms
        self.log_path = data_dir.parent / f"controller-{node_id}.log"

    def command(self) -> list[str]:
        return [
            "controller",
            "--node-id",
            str(self.node_id),
            "--data-dir",
            str(self.data_dir),
            "--quorum",
            self.quorum,
            "--broker-session-timeout-ms",
            str(self.session_timeout_ms),
        ]

    def leader_terms(self) -> list[int]:
        """Terms in which this controller became the leader, from its log."""
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return [int(term) for _, term in LEADER_LINE.findall(text)]


class Region:
    """Controllers 1..C and brokers 1..B on free loopback ports, under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        brokers: int = 3,
        controllers: int = 3,
        broker_args: tuple[str, ...] = (),
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
    ) -> None:
        ports = {n: free_port() for n in range(1, controllers + 1)}
        self.quorum = ",".join(f"{n}@127.0.0.1:{p}" for n, p in ports.items())
        self.controllers = {
            n: ControllerProcess(n, root / f"controller-{n}", p, self.quorum, session_timeout_ms)
            for n, p in ports.items()
        }
        self.brokers = {
            n: BrokerProcess(  # one loopback address each, so that links can be cut apart
                root / f"broker-{n}",
                host=f"127.0.1.{n}",
                extra_args=(
                    "--node-id",
                    str(n),
                    "--controllers",
                    self.quorum,
                    "--heartbeat-interval-ms",
                    str(HEARTBEAT_INTERVAL_MS),
                    *broker_args,
                ),
            )
            for n in range(1, brokers + 1)
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def start(self) -> Region:
        for controller in self.controllers.values():
            controller.start()
        for broker in self.brokers.values():
            broker.start()
        self.wait_until(lambda: len(self.live_brokers()) == len(self.brokers), "brokers unfenced")
        return self

    def kill_all(self) -> None:
        for process in [*self.brokers.values(), *self.controllers.values()]:
            process.kill()

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def live_brokers(self) -> set[int]:
        try:
            metadata = self.admin().list_topics(timeout=2)
        except Exception:
            return set()
        return set(metadata.brokers)

    def create_topic(self, name: str, partitions: int = 1, **configs: str) -> None:
        topic = NewTopic(name, num_partitions=partitions, replication_factor=3, config=configs)
        admin = self.admin()  # kept referenced until the futures complete
        for future in admin.create_topics([topic], operation_timeout=10).values():
            future.result(timeout=20)
        self.wait_until(lambda: len(self.isr(name, 0)) == 3, f"{name} fully replicated")

    def partition(self, topic: str, index: int) -> tuple[int, tuple[int, ...]]:
        """(leader, ISR) of a partition as the brokers report it; (-1, ()) if unknown."""
        try:
            metadata = self.admin().list_topics(topic, timeout=2)
        except Exception:
            return -1, ()
        found = metadata.topics.get(topic)
        if found is None or index not in found.partitions:
            return -1, ()
        info = found.partitions[index]
        return info.leader, tuple(info.isrs)

    def leader(self, topic: str, index: int = 0) -> int:
        return self.partition(topic, index)[0]

    def isr(self, topic: str, index: int = 0) -> tuple[int, ...]:
        return self.partition(topic, index)[1]

    def controller_leader(self) -> int:
        """The controller whose log announced leadership for the highest term."""
        term, node = max((max(c.leader_terms(), default=0), n) for n, c in self.controllers.items())
        assert term > 0, "no controller has become the leader"
        return node

    @staticmethod
    def wait_until(
        condition: Callable[[], bool], what: str, timeout_s: float = SETTLE_TIMEOUT_S
    ) -> float:
        """Poll until `condition()` holds; the seconds it took. AssertionError on timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if condition():
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout_s:g}s waiting for: {what}")
