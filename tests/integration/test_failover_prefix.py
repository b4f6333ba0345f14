"""Failover between foreign-style pairs: prefix naming (MM2's `us-east.orders`) with the exact
offset map, and a region regionlink does not run (Tansu) whose role cannot be enforced.

Everything goes through `regionlink up`, `switchover`, `failover --force`, `failback` and
`endpoint` as subprocesses with timeouts, and real clients (confluent-kafka, kcat).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from broker.client import KafkaClient
from mirror.config import parse_bootstrap
from mirror.offsets.checkpoints import end_offsets as client_end_offsets
from mirror.offsets.source_ends import SourceEnds
from tests.integration.mirror_harness import (
    TansuProcess,
    create_topic,
    end_offsets,
    read_all,
    topic_names,
    wait_until,
)

pytestmark = pytest.mark.integration

US, EU = "us-east", "eu-west"
TOPIC, REMOTE = "orders", f"{US}.orders"
PARTITIONS = 3
CLI_TIMEOUT_S = 120.0

Keys = dict[int, list[bytes]]  # partition -> keys in offset order


def topology(name: str, regions: dict[str, str | None], primary: str, standby: str) -> str:
    """A failover pair with one prefix flow primary -> standby and fast intervals;
    a region with a bootstrap is external."""
    lines = [f'name = "{name}"', ""]
    for region, bootstrap in regions.items():
        lines.append(f"[regions.{region}]")
        lines.append(f'bootstrap = "{bootstrap}"' if bootstrap else "brokers = 1")
        lines.append("")
    lines += [
        "[[flows]]",
        f'source = "{primary}"',
        f'target = "{standby}"',
        'naming = "prefix"',
        "sync_group_offsets = true",
        "emit_checkpoints_interval_s = 1",
        "emit_heartbeats_interval_s = 0.5",
        "refresh_topics_interval_s = 0.5",
        "refresh_groups_interval_s = 0.5",
        "",
        "[failover]",
        f'primary = "{primary}"',
        f'standby = "{standby}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Deployment:
    state_dir: Path
    topology: Path
    bootstraps: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mirror.cli", *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, f"{args}: exit {done.returncode}: {done.stderr[-3000:]}"
        return json.loads(done.stdout)

    def up(self) -> None:
        started = subprocess.run(
            [sys.executable, "-m", "mirror.cli", "up", str(self.topology),
             "--state-dir", str(self.state_dir), "--json"],
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr[-3000:]
        answer = json.loads(started.stdout)
        assert answer["supervisor"]["status"] == "healthy", answer
        self.bootstraps = {r: v["bootstrap"] for r, v in answer["regions"].items()}

    def down(self) -> None:
        for pid in self.broker_pids():  # a frozen broker must see the supervisor's SIGTERM
            _signal(pid, signal.SIGCONT)
        self.cli("down", timeout_s=90)

    def broker_pids(self) -> list[int]:
        from mirror.runtime.state import StateDB

        if not (self.state_dir / "state.db").exists():
            return []
        return [r.pid for r in StateDB(self.state_dir).processes() if r.kind == "broker"]

    def broker_pid(self, region: str) -> int:
        rows = self.json("status")["processes"]
        return int(next(p["pid"] for p in rows if p["name"] == f"{region}/broker-1"))

    def operate(self, *args: str) -> dict[str, Any]:
        """switchover / failover / failback with --json; the report (exit 0 required)."""
        report = self.json(*args)
        assert report["outcome"] == "done", report
        return dict(report)


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Any]:
    """deploy(topology text) -> a Deployment that is up; down at the end, whatever happened."""
    started: list[Deployment] = []

    def make(text: str) -> Deployment:
        path = tmp_path / "topology.toml"
        path.write_text(text)
        deployment = Deployment(tmp_path / "state", path)
        started.append(deployment)
        deployment.up()
        return deployment

    yield make
    for deployment in started:
        deployment.down()
    for log in (tmp_path / "state" / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), f"{log.name}: {log.read_text()[-3000:]}"


# -- clients ---------------------------------------------------------------------------------


def produce_keys(bootstrap: str, topic: str, prefix: str, count: int) -> Keys:
    """`count` keyed records, spread over the partitions by the default partitioner; the
    keys each partition got, in offset order (idempotent, acks=all)."""
    acked: list[tuple[int, int, bytes]] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        partition, offset, key = msg.partition(), msg.offset(), msg.key()
        assert partition is not None and offset is not None and key is not None
        acked.append((partition, offset, key))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for seq in range(count):
        producer.produce(topic, f"v{seq}".encode(), f"{prefix}{seq}".encode(), on_delivery=report)
    assert producer.flush(30) == 0
    return _by_partition(acked)


def _by_partition(acked: list[tuple[int, int, bytes]]) -> Keys:
    out: Keys = {}
    for partition, _, key in sorted(acked):
        out.setdefault(partition, []).append(key)
    return out


def keys_of(bootstrap: str, topic: str) -> Keys:
    """Every key of `topic`, per partition in offset order (our brokers: watermarks hold)."""
    return _by_partition(
        [(s.partition, s.offset, s.key or b"") for s in read_all(bootstrap, topic)]
    )


def ends_via_client(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    """End offsets through regionlink's client, which checks ListOffsets against the Fetch high
    watermark (Tansu 0.6's ListOffsets ends at its last batch's base offset + 1)."""

    async def ask() -> dict[int, int]:
        async with KafkaClient(parse_bootstrap(bootstrap), request_timeout_s=5) as client:
            view = await client.refresh_metadata()
            if topic not in view.topics or view.topics[topic].error:
                return {}
            ends = await client_end_offsets(client, [(topic, p) for p in range(partitions)])
            return {p: end for (_, p), end in ends.items()}

    return anyio.run(ask)


def observed_ends(bootstrap: str, source: str) -> dict[int, int]:
    """The source's end offsets of `orders` as the flow last recorded them on its target."""

    async def ask() -> dict[int, int]:
        async with KafkaClient(parse_bootstrap(bootstrap), request_timeout_s=5) as client:
            latest = await SourceEnds(client, source).latest()
        return {p: seen.end_offset for (t, p), seen in latest.items() if t == TOPIC}

    return anyio.run(ask)


class GroupConsumer:
    """One group member that commits what it processed, synchronously."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            }
        )
        self.consumer.subscribe(topics)
        self.seen: list[tuple[str, int, int, bytes]] = []  # (topic, partition, offset, key)

    def consume_until(self, done: Any, timeout_s: float, what: str) -> None:
        deadline_s = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline_s, f"timed out after {timeout_s:g}s: {what}"
            good = [m for m in self.consumer.consume(50, 0.5) if m.error() is None]
            for m in good:
                topic, partition, offset, key = m.topic(), m.partition(), m.offset(), m.key()
                assert topic and partition is not None and offset is not None and key is not None
                self.seen.append((topic, partition, offset, key))
            if good:
                self.consumer.commit(asynchronous=False)

    def keys(self) -> list[bytes]:
        return [key for _, _, _, key in self.seen]

    def close(self) -> None:
        self.consumer.close()


class FollowingProducer:
    """An application writing keyed records at a steady rate; when a region refuses them for
    good (fenced), it asks `regionlink endpoint` where the primary is and resends them there."""

    def __init__(self, deployment: Deployment, region: str, rate_per_s: float = 200) -> None:
        self.deployment = deployment
        self.region = region
        self.interval_s = 1 / rate_per_s
        self.acked: list[tuple[str, int, int, bytes]] = []  # (region, partition, offset, key)
        self.refused: list[tuple[int, bytes]] = []
        self.errors: list[tuple[str, str]] = []  # (region, error) of every refusal
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FollowingProducer:
        self.thread.start()
        return self

    def acked_in(self, region: str) -> int:
        with self.lock:
            return sum(1 for r in self.acked if r[0] == region)

    def wait_acked(self, region: str, count: int, timeout_s: float) -> None:
        def enough() -> bool:
            assert self.error is None, self.error
            return self.acked_in(region) >= count

        wait_until(enough, timeout_s, f"{count} records acked by {region}")

    def stop(self) -> list[tuple[str, int, int, bytes]]:
        self.stopping.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the producer did not stop"
        assert self.error is None, self.error
        return list(self.acked)

    def _producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.deployment.bootstraps[self.region],
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 20_000,
            }
        )

    def _report(self, region: str, seq: int) -> Any:
        def report(err: KafkaError | None, msg: Message) -> None:
            key = msg.key()
            assert key is not None
            with self.lock:
                if err is None:
                    partition, offset = msg.partition(), msg.offset()
                    assert partition is not None and offset is not None
                    self.acked.append((region, partition, offset, key))
                else:
                    self.refused.append((seq, key))
                    self.errors.append((region, err.str()))

        return report

    def _run(self) -> None:
        try:
            producer, seq = self._producer(), 0
            while not self.stopping.is_set():
                key = f"k{seq}".encode()
                producer.produce(TOPIC, b"v", key, on_delivery=self._report(self.region, seq))
                seq += 1
                producer.poll(self.interval_s)
                with self.lock:
                    refused = bool(self.refused)
                if refused:
                    producer = self._follow(producer)
            assert producer.flush(30) == 0
            self._follow(producer)
        except BaseException as exc:  # reported by stop() and wait_acked()
            self.error = exc

    def _follow(self, producer: Producer) -> Producer:
        deadline_s = time.monotonic() + 60
        while True:
            assert producer.flush(30) == 0
            with self.lock:
                todo, self.refused = sorted(self.refused), []
            if not todo:
                return producer
            assert time.monotonic() < deadline_s, f"refused for a minute: {self.errors[-5:]}"
            done = self.deployment.cli("endpoint", "--json", timeout_s=30)
            region = json.loads(done.stdout)["region"] if done.returncode == 0 else self.region
            if region != self.region:
                self.region = region
                producer = self._producer()
            else:
                time.sleep(0.2)
            for seq, key in todo:
                producer.produce(TOPIC, b"v", key, on_delivery=self._report(region, seq))


# -- prefix naming between two regionlink regions --------------------------------------------


def test_switchover_moves_a_group_onto_the_remote_topic_with_translated_offsets(
    deploy: Any,
) -> None:
    deployment = deploy(topology("prefix-pair", {US: None, EU: None}, US, EU))
    us, eu = deployment.bootstraps[US], deployment.bootstraps[EU]
    create_topic(us, TOPIC, PARTITIONS)
    create_topic(eu, TOPIC, PARTITIONS)  # eu-west's own topic, written after the switchover
    wait_until(lambda: len(end_offsets(eu, REMOTE)) == PARTITIONS, 30, f"{REMOTE} on {EU}")
    names = deployment.json("endpoint", "--region", EU)["topics"]
    assert names == {TOPIC: REMOTE}, names

    app = FollowingProducer(deployment, US).start()
    app.wait_acked(US, 300, 30)
    group = GroupConsumer(us, "billing", [TOPIC])
    group.consume_until(lambda: len(group.seen) >= 200, 30, "200 records on us-east")
    group.close()  # the group moves: idle on both sides during the switchover
    app.wait_acked(US, 500, 30)

    report = deployment.operate("switchover", "--to", EU)
    app.wait_acked(EU, 200, 60)  # the app found eu-west through `regionlink endpoint`
    acked = app.stop()

    assert (report["rpo_records"], report["loss_manifest"], report["not_enforced"]) == (0, [], [])
    assert report["rto_seconds"] is not None and report["rto_seconds"] < 5, report
    steps = {s["kind"]: s for s in report["steps"]}
    assert all(s["state"] == "done" and s["enforced"] for s in report["steps"]), steps
    print(
        f"prefix switchover: RTO {report['rto_seconds']:.3f}s, "
        + ", ".join(f"{k} {s['duration_s']:.3f}s" for k, s in steps.items())
    )

    # RPO 0: everything us-east acknowledged is in eu-west's remote topic, in order.
    written = _by_partition([(p, o, k) for r, p, o, k in acked if r == US])
    assert keys_of(eu, REMOTE) == written
    # The group resumes on eu-west where it stopped on us-east: the remote topic holds the
    # history (translated offsets), eu-west's own `orders` what was written after the move.
    moved = GroupConsumer(eu, "billing", [REMOTE, TOPIC])
    wanted = {k for _, _, _, k in acked}
    before = group.keys()
    moved.consume_until(
        lambda: set(before) | set(moved.keys()) >= wanted, 60, f"all {len(wanted)} acked keys"
    )
    moved.close()
    after = moved.keys()
    re_read = set(before) & set(after)
    assert not re_read and len(after) == len(set(after)), f"{len(re_read)} re-read"
    # Exact: each partition resumed at the offset the group had committed on us-east (the
    # remote topic was copied from offset 0 without gaps, so the offsets coincide here).
    resumed = {p: o for t, p, o, _ in reversed(moved.seen) if t == REMOTE}
    stopped = {p: max((o for _, q, o, _ in group.seen if q == p), default=-1) + 1 for p in resumed}
    assert resumed == stopped, (resumed, stopped)
    print(
        f"prefix switchover: {len(before)} read on {US}, {len(after)} on {EU}: 0 re-read, 0 missed"
    )

    # The reverse flow brings eu-west's own writes to us-east as eu-west.orders, and never
    # sends us-east.orders back to where it came from.
    mine = _by_partition([(p, o, k) for r, p, o, k in acked if r == EU])
    wanted_ends = {p: len(mine.get(p, [])) for p in range(PARTITIONS)}
    wait_until(lambda: end_offsets(us, f"{EU}.orders") == wanted_ends, 30, f"{EU}.orders on {US}")
    assert keys_of(us, f"{EU}.orders") == mine
    assert not [t for t in topic_names(us) if "us-east.orders" in t], topic_names(us)
    names = deployment.json("endpoint", "--region", US)["topics"]
    assert names == {TOPIC: f"{EU}.orders"}, names
    refused = subprocess.run(
        ["kcat", "-P", "-b", us, "-t", TOPIC], input=b"stale", capture_output=True, timeout=30
    )
    assert refused.returncode != 0 and b"Policy violation" in refused.stderr, refused


def test_forced_failover_reports_exact_loss_and_failback_recovers_it(deploy: Any) -> None:
    deployment = deploy(topology("prefix-pair", {US: None, EU: None}, US, EU))
    us, eu = deployment.bootstraps[US], deployment.bootstraps[EU]
    create_topic(us, TOPIC, PARTITIONS)
    mirrored = produce_keys(us, TOPIC, "m", 90)
    wait_until(lambda: keys_count(end_offsets(eu, REMOTE)) == 90, 30, f"90 records in {REMOTE}")
    paused = deployment.cli("link", "pause", f"{US}:{EU}")
    assert paused.returncode == 0, paused.stderr
    unmirrored = produce_keys(us, TOPIC, "u", 60)  # taken by us-east, never copied
    source_ends = end_offsets(us, TOPIC)
    wait_until(lambda: observed_ends(eu, US) == source_ends, 20, "us-east's ends observed")
    assert keys_count(end_offsets(eu, REMOTE)) == 90  # paused: nothing more arrived
    os.kill(deployment.broker_pid(US), signal.SIGSTOP)  # us-east frozen: unreachable

    report = deployment.operate("failover", "--to", EU, "--force")
    expected = [
        {"topic": TOPIC, "partition": p, "first_offset": len(mirrored.get(p, [])),
         "last_offset": source_ends[p] - 1, "records": len(keys)}
        for p, keys in sorted(unmirrored.items())
    ]  # fmt: skip
    manifest = [
        {k: item[k] for k in ("topic", "partition", "first_offset", "last_offset", "records")}
        for item in report["loss_manifest"]
    ]
    print(
        f"prefix forced failover: rpo_records {report['rpo_records']}, RTO "
        f"{report['rto_seconds']:.3f}s, observed {report['observed_age_s']:.1f}s before: {manifest}"
    )
    assert manifest == expected
    assert report["rpo_records"] == 60 and report["pending"] == [US], report
    assert report["rto_seconds"] is not None and report["observed_age_s"] is not None

    # eu-west takes writes in its own orders; us-east comes back and is told it is a standby.
    produced_on_eu = produce_keys(eu, TOPIC, "e", 30)
    os.kill(deployment.broker_pid(US), signal.SIGCONT)
    wait_until(lambda: _role(us) == "standby", 30, "the supervisor to fence us-east")

    back = deployment.operate("failback", "--to", US)
    recovered = [
        {k: item[k] for k in ("topic", "partition", "first_offset", "last_offset", "records")}
        for item in back["recovered"]
    ]
    print(
        f"prefix failback: recovered_records {back['recovered_records']}, final switchover RTO "
        f"{back['rto_seconds']:.3f}s: {recovered}"
    )
    assert recovered == expected and back["recovered_records"] == 60, back
    assert {item["into"] for item in back["recovered"]} == {REMOTE}
    assert back["diverged"] == [] and back["not_enforced"] == []
    kinds = [s["kind"] for s in back["steps"]]
    assert "truncate" not in kinds and "save_divergent" not in kinds, kinds
    # Nothing lost after all: eu-west's copy of us-east holds every record, in order, once.
    everything = {p: mirrored.get(p, []) + unmirrored.get(p, []) for p in range(PARTITIONS)}
    assert keys_of(eu, REMOTE) == {p: keys for p, keys in everything.items() if keys}
    assert keys_of(us, f"{EU}.orders") == produced_on_eu
    assert deployment.json("failover", "status")["primary"] == US


def keys_count(ends: dict[int, int]) -> int:
    return sum(ends.values())


def _role(bootstrap: str) -> str:
    from mirror.failover.regions import read_role

    async def ask() -> str:
        async with KafkaClient(parse_bootstrap(bootstrap), request_timeout_s=5) as client:
            return (await read_role(client)).role

    return anyio.run(ask)


# -- an external region (Tansu): roles not enforced there ------------------------------------


def tansu_keys(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> Keys:
    """`count` records of `topic` read from the start (Tansu: watermarks are not to be
    trusted, so read by count), keys per partition in offset order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen: list[tuple[int, int, bytes]] = []
        deadline_s = time.monotonic() + timeout_s
        while len(seen) < count and time.monotonic() < deadline_s:
            for m in consumer.consume(100, 0.5):
                if m.error() is None:
                    seen.append((m.partition() or 0, m.offset() or 0, m.key() or b""))
        assert len(seen) == count, f"read {len(seen)} of {count} records of {topic}"
        return _by_partition(seen)
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def test_switchover_to_and_from_an_external_cluster_says_what_is_not_enforced(
    deploy: Any, tansu: TansuProcess
) -> None:
    t = "tansu"
    deployment = deploy(topology("tansu-pair", {US: None, t: tansu.bootstrap}, US, t))
    us = deployment.bootstraps[US]
    create_topic(us, TOPIC, PARTITIONS)
    written = produce_keys(us, TOPIC, "k", 120)
    group = GroupConsumer(us, "billing", [TOPIC])
    group.consume_until(lambda: len(group.seen) >= 50, 30, "50 records on us-east")
    group.close()
    consumed = committed(us, "billing", TOPIC)
    wait_until(lambda: keys_count(ends_via_client(tansu.bootstrap, REMOTE)) == 120, 30,
               f"120 records in {REMOTE} on Tansu")  # fmt: skip

    plan = deployment.cli("switchover", "--to", t, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "not enforced on tansu (external cluster)" in " ".join(plan.stdout.split()), plan.stdout
    report = deployment.operate("switchover", "--to", t)
    assert report["not_enforced"] == [t] and report["rpo_records"] == 0, report
    promote = next(s for s in report["steps"] if s["kind"] == "promote")
    assert (promote["region"], promote["enforced"], promote["state"]) == (t, False, "done")
    assert promote["note"].startswith("not enforced on tansu (external cluster): "), promote
    fence = next(s for s in report["steps"] if s["kind"] == "fence_source")
    assert (fence["region"], fence["enforced"]) == (US, True)
    print(
        f"switchover to Tansu: RTO {report['rto_seconds']:.3f}s, "
        f"not_enforced {report['not_enforced']}"
    )

    # Everything arrived, and the group's offsets were translated onto Tansu's remote topic.
    assert tansu_keys(tansu.bootstrap, REMOTE, 120) == written
    assert committed(tansu.bootstrap, "billing", REMOTE) == consumed
    # us-east is a standby: its own topic refuses clients; Tansu's new writes come back as
    # tansu.orders, and us-east.orders is not sent back.
    refused = subprocess.run(
        ["kcat", "-P", "-b", us, "-t", TOPIC], input=b"stale", capture_output=True, timeout=30
    )
    assert refused.returncode != 0 and b"Policy violation" in refused.stderr, refused
    create_topic(tansu.bootstrap, TOPIC, PARTITIONS)
    on_tansu = produce_keys(tansu.bootstrap, TOPIC, "t", 40)
    wait_until(lambda: keys_count(end_offsets(us, f"{t}.orders")) == 40, 30, "tansu.orders")
    assert keys_of(us, f"{t}.orders") == on_tansu
    assert not [name for name in topic_names(us) if name.endswith(REMOTE)]

    # And back: now the fence is the one regionlink cannot enforce.
    back = deployment.operate("switchover", "--to", US)
    assert back["not_enforced"] == [t] and back["rpo_records"] == 0, back
    fence = next(s for s in back["steps"] if s["kind"] == "fence_source")
    assert (fence["region"], fence["enforced"]) == (t, False), fence
    assert fence["note"] == "not enforced on tansu (external cluster): stop its producers yourself"
    print(f"switchover back from Tansu: RTO {back['rto_seconds']:.3f}s")
    printed = deployment.cli("failover", "show", "2")
    assert "stop its producers yourself" in " ".join(printed.stdout.split()), printed.stdout
    # The forward flow resumes from its map on Tansu: us-east's new records, once each.
    more = produce_keys(us, TOPIC, "n", 30)
    everything = {p: written.get(p, []) + more.get(p, []) for p in range(PARTITIONS)}
    assert tansu_keys(tansu.bootstrap, REMOTE, 150) == everything
