"""An active-passive topology run by `regionlink up`, driven as an operator and its apps would.

Everything goes through the real command line (`python -m mirror.cli ...` as subprocesses,
each with a timeout) and real Kafka clients (confluent-kafka): `AppProducer` is an
application that writes with an idempotent acks=all producer and, when a region refuses it
for good (POLICY_VIOLATION), asks `regionlink endpoint` where the primary is now and sends
the refused records there, in order; `GroupConsumer` consumes and commits in a group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from mirror.runtime.state import kill_leftovers
from tests.integration.mirror_harness import create_topic, end_offsets, read_all, wait_until

REPO = Path(__file__).resolve().parents[2]
ACTIVE_PASSIVE = REPO / "topologies" / "active-passive.toml"
CLI_TIMEOUT_S = 60.0
TOPIC = "orders"
PARTITIONS = 3

Offsets = dict[int, int]  # partition -> offset


def regionlink(*args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """One `regionlink` command as an operator types it; TimeoutExpired if it hangs."""
    return subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def json_of(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, one readable line on stderr naming `needles`, no traceback."""
    assert done.returncode == 2, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@dataclass
class Deployment:
    """One topology under `regionlink up` in its own state directory."""

    state_dir: Path
    topology: Path
    bootstraps: dict[str, str] = field(default_factory=dict)

    def up(self) -> dict[str, Any]:
        started = json_of(
            regionlink("up", str(self.topology), "--state-dir", str(self.state_dir), "--json")
        )
        assert started["supervisor"]["status"] == "healthy", started
        self.bootstraps = {r: v["bootstrap"] for r, v in started["regions"].items()}
        return dict(started)

    def down(self) -> None:
        for pid in self.broker_pids():  # a frozen broker must see the supervisor's SIGTERM
            _signal(pid, signal.SIGCONT)
        try:
            done = regionlink("down", "--state-dir", str(self.state_dir), timeout_s=90)
            if done.returncode == 0:
                return
        except subprocess.TimeoutExpired:
            pass
        kill_leftovers(self.state_dir)  # `down` itself failed: leave no process behind

    def cli(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return regionlink(*args, "--state-dir", str(self.state_dir), timeout_s=timeout_s)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mirror.cli", *args, "--state-dir", str(self.state_dir)]

    def status(self) -> dict[str, Any]:
        return dict(json_of(self.cli("status", "--json")))

    def failover_status(self) -> dict[str, Any]:
        return dict(json_of(self.cli("failover", "status", "--json")))

    def primary(self) -> str:
        return str(self.failover_status()["primary"])

    def broker_pid(self, region: str) -> int:
        rows = self.status()["processes"]
        return int(next(p["pid"] for p in rows if p["name"] == f"{region}/broker-1"))

    def broker_pids(self) -> list[int]:
        from mirror.runtime.state import StateDB

        if not (self.state_dir / "state.db").exists():
            return []
        return [r.pid for r in StateDB(self.state_dir).processes() if r.kind == "broker"]

    def operate(self, *args: str, timeout_s: float = 120) -> dict[str, Any]:
        """`switchover`/`failover`/`failback` with --json; its report (exit 0 required)."""
        return dict(json_of(self.cli(*args, "--json", timeout_s=timeout_s)))

    def journal_steps(self, operation_id: int) -> dict[int, str]:
        """An operation's steps as journaled: index -> state (a read-only peek)."""
        path = self.state_dir / "failover.db"
        if not path.exists():
            return {}
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            try:
                rows = db.execute(
                    'SELECT "index", state FROM steps WHERE operation_id = ?', (operation_id,)
                ).fetchall()
            except sqlite3.OperationalError:  # tables not created yet
                return {}
        return {int(index): str(state) for index, state in rows}


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def create_orders(deployed: Deployment) -> None:
    """`orders` on the primary, and its mirror topic on the standby (topic sync)."""
    create_topic(deployed.bootstraps["us-east"], TOPIC, PARTITIONS)
    wait_until(
        lambda: len(end_offsets(deployed.bootstraps["eu-west"], TOPIC)) == PARTITIONS,
        30,
        "the mirror topic on eu-west",
    )


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acked:
    key: bytes
    value: bytes
    partition: int
    offset: int
    region: str  # where the producer got its ack


Contents = dict[tuple[int, int], tuple[bytes | None, bytes | None]]  # (partition, offset) -> kv


def contents(bootstrap: str, topic: str = TOPIC) -> Contents:
    """Every record of `topic`, by (partition, offset); AssertionError on a duplicate offset."""
    out: Contents = {}
    for seen in read_all(bootstrap, topic, timeout_s=20):
        where = (seen.partition, seen.offset)
        assert where not in out, f"{topic} offset {where} read twice"
        out[where] = (seen.key, seen.value)
    return out


def as_contents(records: list[Acked]) -> Contents:
    out: Contents = {}
    for r in records:
        assert (r.partition, r.offset) not in out, f"two acks for offset {r.partition}/{r.offset}"
        out[(r.partition, r.offset)] = (r.key, r.value)
    return out


def assert_no_duplicate_keys(found: Contents, what: str) -> None:
    keys = [key or b"" for key, _ in found.values()]
    twice = {k for k in keys if keys.count(k) > 1} if len(set(keys)) != len(keys) else set()
    assert not twice, f"{what}: keys present more than once: {sorted(twice)[:10]}"


def ends_of(records: list[Acked]) -> Offsets:
    """Per partition, one past the highest acked offset."""
    out: Offsets = {}
    for r in records:
        out[r.partition] = max(out.get(r.partition, 0), r.offset + 1)
    return out


def wait_for_ends(bootstrap: str, wanted: Offsets, timeout_s: float, what: str) -> None:
    def reached() -> bool:
        have = end_offsets(bootstrap, TOPIC)
        return all(have.get(p, 0) >= end for p, end in wanted.items())

    wait_until(reached, timeout_s, what)


def wait_for_same_ends(deployed: Deployment, timeout_s: float, what: str) -> Offsets:
    """Until both regions end `orders` at the same offsets (a flow caught up); those ends."""
    us, eu = deployed.bootstraps["us-east"], deployed.bootstraps["eu-west"]
    found: list[Offsets] = []

    def same() -> bool:
        a, b = end_offsets(us, TOPIC), end_offsets(eu, TOPIC)
        found[:] = [a]
        return len(a) == PARTITIONS and a == b

    wait_until(same, timeout_s, what)
    return found[0]


# -- an application producer that follows the primary -------------------------------------


class AppProducer:
    """A thread writing keyed records at a steady rate with an idempotent acks=all producer.

    When a region refuses a record for good (a fenced old primary, a mirror topic), the app
    does what one following `regionlink endpoint` does: stops writing new records, waits for
    every outstanding one, asks where the primary is now, and sends the refused records
    there in their order, again until they are all acked — then goes on with new records.
    """

    def __init__(
        self,
        deployed: Deployment,
        region: str,
        prefix: str = "k",
        rate_per_s: float = 100,
        retry_deadline_s: float = 90,
        message_timeout_ms: int = 20_000,
    ) -> None:
        self.deployed = deployed
        self.region = region
        self.prefix = prefix
        self.interval_s = 1 / rate_per_s
        self.retry_deadline_s = retry_deadline_s
        self.message_timeout_ms = message_timeout_ms
        self.acked: list[Acked] = []
        self.refusals: list[tuple[str, int, bool]] = []  # (region, error code, retriable)
        self.switches: list[tuple[str, str]] = []
        self._failed: list[tuple[int, bytes, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"app-{prefix}", daemon=True)

    def start(self) -> AppProducer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 120) -> list[Acked]:
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the app producer did not stop"
        if self.error is not None:
            raise AssertionError(f"the app producer failed: {self.error!r}") from self.error
        return self.snapshot()

    def snapshot(self) -> list[Acked]:
        with self._lock:
            return list(self.acked)

    def acked_in(self, region: str) -> int:
        return sum(1 for r in self.snapshot() if r.region == region)

    def wait_acked(self, region: str, count: int, timeout_s: float) -> None:
        def enough() -> bool:
            if self.error is not None:
                raise AssertionError(f"the app producer failed: {self.error!r}")
            return self.acked_in(region) >= count

        wait_until(enough, timeout_s, f"{count} records acked by {region}")

    def _producer(self, region: str) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.deployed.bootstraps[region],
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": self.message_timeout_ms,
            }
        )

    def _on_delivery(self, region: str, seq: int) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, msg: Message) -> None:
            key, value = msg.key(), msg.value()
            assert key is not None and value is not None
            with self._lock:
                if err is None:
                    offset, partition = msg.offset(), msg.partition()
                    assert offset is not None and partition is not None
                    self.acked.append(Acked(key, value, partition, offset, region))
                else:
                    self.refusals.append((region, err.code(), err.retriable()))
                    self._failed.append((seq, key, value))

        return report

    def _run(self) -> None:
        try:
            producer = self._producer(self.region)
            while not self._stop.is_set():
                seq = self._sent
                key, value = f"{self.prefix}{seq}".encode(), f"v{seq}".encode()
                producer.produce(TOPIC, value, key, on_delivery=self._on_delivery(self.region, seq))
                self._sent += 1
                producer.poll(0)
                time.sleep(self.interval_s)
                with self._lock:
                    refused = bool(self._failed)
                if refused:
                    producer = self._follow_primary(producer)
            assert producer.flush(30) == 0, "records still unacknowledged at the end"
            if self._failed:
                self._follow_primary(producer)
        except BaseException as exc:  # reported by stop()/wait_acked
            self.error = exc

    def _follow_primary(self, producer: Producer) -> Producer:
        """Resend every refused record, in order, to wherever the primary is, until acked."""
        deadline_s = time.monotonic() + self.retry_deadline_s
        while True:
            assert producer.flush(30) == 0, "records still unacknowledged"
            with self._lock:
                todo, self._failed = sorted(self._failed), []
            if not todo:
                return producer
            assert time.monotonic() < deadline_s, f"{len(todo)} records refused for too long"
            region = self._endpoint() or self.region
            if region != self.region:
                self.switches.append((self.region, region))
                self.region, producer = region, self._producer(region)
            else:
                time.sleep(0.2)
            for seq, key, value in todo:
                producer.produce(TOPIC, value, key, on_delivery=self._on_delivery(region, seq))

    def _endpoint(self) -> str | None:
        done = self.deployed.cli("endpoint", "--json", timeout_s=30)
        if done.returncode != 0:
            return None
        answer = json.loads(done.stdout)
        region = str(answer["region"])
        assert answer["client"]["bootstrap.servers"] == self.deployed.bootstraps[region], answer
        return region


def refused_for_good(bootstrap: str, key: bytes = b"stale") -> KafkaError:
    """Produce one record with an idempotent producer; the error it fails with (in < 10 s)."""
    errors: list[KafkaError | None] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": 10_000,
        }
    )
    producer.produce(TOPIC, b"stale-write", key, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(15) == 0, "no answer to the stale write"
    assert errors and errors[0] is not None, f"{bootstrap} took the write"
    return errors[0]


# -- a consumer group ---------------------------------------------------------------------


class GroupConsumer:
    """One member of a group that commits every record it processed (synchronously)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            }
        )
        self.consumer.subscribe([TOPIC])
        self.seen: list[tuple[int, int, bytes]] = []  # (partition, offset, key)

    def consume_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline_s = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline_s, f"timed out after {timeout_s:g}s: {what}"
            messages = self.consumer.consume(100, 0.5)
            good = [m for m in messages if m.error() is None]
            for m in good:
                partition, offset, key = m.partition(), m.offset(), m.key()
                assert partition is not None and offset is not None and key is not None
                self.seen.append((partition, offset, key))
            if good:
                self.consumer.commit(asynchronous=False)

    def consume_at_least(self, count: int, timeout_s: float) -> None:
        self.consume_until(lambda: len(self.seen) >= count, timeout_s, f"{count} records")

    def consume_all_of(self, records: list[Acked], timeout_s: float) -> None:
        wanted = {(r.partition, r.offset) for r in records}
        missing: set[tuple[int, int]] = set()

        def all_seen() -> bool:
            missing.clear()
            missing.update(wanted - {(p, o) for p, o, _ in self.seen})
            return not missing

        try:
            self.consume_until(all_seen, timeout_s, f"{len(wanted)} acked records")
        except AssertionError as exc:
            read = {
                p: (
                    min(o for q, o, _ in self.seen if q == p),
                    max(o for q, o, _ in self.seen if q == p),
                )
                for p in {p for p, _, _ in self.seen}
            }
            raise AssertionError(
                f"{exc}; {len(missing)} never read, first {sorted(missing)[:5]}; "
                f"read (first, last) per partition: {read}"
            ) from None

    def close(self) -> list[tuple[int, int, bytes]]:
        self.consumer.close()
        return self.seen


def committed(bootstrap: str, group: str) -> Offsets:
    """The group's committed offset of each partition of `orders` (absent: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def first_offsets(seen: list[tuple[int, int, bytes]]) -> Offsets:
    out: Offsets = {}
    for partition, offset, _ in seen:
        out.setdefault(partition, offset)
    return out
