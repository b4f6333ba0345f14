"""A region of 3 controllers and 3 brokers as real processes, driven by confluent-kafka.

Replication with RF=3: acks=all waits for the ISR; SIGKILL of a partition leader under an
idempotent acks=all load loses and duplicates nothing and writes resume on the new leader;
the controller leader's SIGKILL is survived; a killed broker restarts, catches up and
rejoins the ISR; a diverged old leader truncates to the new leader's log; committed group
offsets outlive their coordinator; a follower cut off from the leader by dropped packets
(nftables) leaves the ISR while acks=all goes on with min.insync.replicas=2 and rejoins once
healed; a frozen (SIGSTOP) follower does the same, and NOT_ENOUGH_REPLICAS is answered when
too few remain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from broker.client import data
from broker.client.client import KafkaClient
from broker.protocol.records import Record, build_batch
from tests.integration.netfilter import LinkCuts
from tests.integration.region_harness import Region

pytestmark = pytest.mark.integration

LAG_MAX_MS = 3_000


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    region = Region(tmp_path, broker_args=("--replica-lag-time-max-ms", str(LAG_MAX_MS)))
    try:
        yield region.start()
    finally:
        region.kill_all()


def producer(region: Region, **extra: object) -> Producer:
    return Producer(
        {
            "bootstrap.servers": region.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
            **extra,
        }
    )


def produce_all(region: Region, topic: str, values: list[bytes]) -> None:
    """acks=all, idempotent, to partition 0; every value acknowledged."""
    produce = producer(region)
    for value in values:
        produce.produce(topic, value, partition=0)
        produce.poll(0)
    assert produce.flush(30) == 0


def read_all(region: Region, topic: str, partition: int = 0, timeout_s: float = 30) -> list[bytes]:
    """Every record's value from offset 0 to the high watermark, in order."""
    consumer = Consumer(
        {
            "bootstrap.servers": region.bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        consumer.assign([TopicPartition(topic, partition, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(values) < high and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            values.append(message.value())
        assert low == 0
        return values
    finally:
        consumer.close()


class Load:
    """An idempotent acks=all producer in a thread; remembers every acknowledged value."""

    def __init__(self, region: Region, topic: str) -> None:
        self.topic = topic
        self.producer = producer(region)
        self.acked: list[tuple[float, bytes]] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)

    def _run(self) -> None:
        sequence = 0
        while not self._stop.is_set():
            value = f"v{sequence:08d}".encode()
            try:
                self.producer.produce(self.topic, value, partition=0, on_delivery=self._delivered)
                sequence += 1
            except BufferError:
                pass
            self.producer.poll(0.001 if sequence % 50 else 0.01)
        remaining = self.producer.flush(60)
        assert remaining == 0, f"{remaining} records never acknowledged"

    def _delivered(self, error: KafkaError | None, message: object) -> None:
        if error is None:
            self.acked.append((time.monotonic(), message.value()))  # type: ignore[attr-defined]
        else:
            self.failed.append(str(error))

    def wait_acked(self, count: int, timeout_s: float = 30) -> None:
        Region.wait_until(lambda: len(self.acked) >= count, f"{count} acknowledged records")


def test_rf3_acks_all_replicates_to_every_broker(region: Region) -> None:
    region.create_topic("orders", 1, **{"min.insync.replicas": "2"})
    produce_all(region, "orders", [f"r{i}".encode() for i in range(2_000)])
    assert read_all(region, "orders") == [f"r{i}".encode() for i in range(2_000)]
    assert sorted(region.isr("orders")) == [1, 2, 3]
    replicas = [  # every replica holds the leader's batches, byte for byte, on disk
        b"".join(s.read_bytes() for s in sorted((b.data_dir / "topics" / "orders-0").glob("*.log")))
        for b in region.brokers.values()
    ]
    assert len(replicas[0]) > 2_000 * 10
    assert replicas[0] == replicas[1] == replicas[2]


def test_leader_sigkill_under_idempotent_load_loses_and_duplicates_nothing(
    region: Region,
) -> None:
    region.create_topic("payments", 1, **{"min.insync.replicas": "2"})
    old_leader = region.leader("payments")
    with Load(region, "payments") as load:
        load.wait_acked(3_000)
        killed_at = time.monotonic()
        region.brokers[old_leader].kill()
        region.wait_until(lambda: region.leader("payments") not in (-1, old_leader), "a new leader")
        load.wait_acked(len(load.acked) + 3_000)
    first_after = min(t for t, _ in load.acked if t > killed_at)
    assert first_after - killed_at < 10, "writes resumed on the new leader"
    values = read_all(region, "payments")
    acked = [v for _, v in load.acked]
    assert len(values) == len(set(values)), "no record written twice"
    assert set(acked) <= set(values), "every acknowledged record survived"
    assert values == sorted(values), "records keep their order"
    assert not load.failed


def group_member(region: Region, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": region.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def test_group_offsets_survive_the_coordinators_sigkill(region: Region) -> None:
    """__consumer_offsets is replicated: a commit outlives the broker that took it."""
    region.create_topic("clicks", 1)
    produce_all(region, "clicks", [f"c{i}".encode() for i in range(100)])
    first = group_member(region, "readers")
    first.subscribe(["clicks"])
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(seen) < 40 and time.monotonic() < deadline:
        message = first.poll(0.5)
        if message is not None and not message.error():
            seen.append(message.value())
    assert len(seen) >= 40
    first.commit(offsets=[TopicPartition("clicks", 0, 40)], asynchronous=False)
    first.close()
    coordinator = region.leader("__consumer_offsets")
    region.brokers[coordinator].kill()
    region.wait_until(
        lambda: region.leader("__consumer_offsets") not in (-1, coordinator), "a new coordinator"
    )
    second = group_member(region, "readers")
    try:
        committed = second.committed([TopicPartition("clicks", 0)], timeout=20)
        assert committed[0].offset == 40
        second.subscribe(["clicks"])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            polled = second.poll(0.5)
            message = polled if polled is not None and not polled.error() else None
        assert message is not None and message.value() == b"c40"
    finally:
        second.close()


def test_controller_leader_sigkill_the_region_carries_on(region: Region) -> None:
    region.create_topic("before", 1)
    leader = region.controller_leader()
    region.controllers[leader].kill()
    region.wait_until(lambda: region.controller_leader() != leader, "a new controller leader")
    region.create_topic("after", 1)  # needs the quorum
    produce_all(region, "after", [b"x"])
    assert read_all(region, "after") == [b"x"]


def test_killed_broker_restarts_catches_up_and_rejoins_the_isr(region: Region) -> None:
    region.create_topic("events", 1, **{"min.insync.replicas": "2"})
    leader = region.leader("events")
    follower = next(n for n in region.brokers if n != leader)
    region.brokers[follower].kill()
    region.wait_until(lambda: follower not in region.isr("events"), "the dead follower out")
    produce_all(region, "events", [f"e{i}".encode() for i in range(1_000)])
    region.brokers[follower].start()
    region.wait_until(lambda: follower in region.isr("events"), "the follower back in the ISR")
    region.brokers[leader].kill()  # now the rejoined follower may lead: it must hold it all
    region.wait_until(lambda: region.leader("events") not in (-1, leader), "a new leader")
    assert read_all(region, "events") == [f"e{i}".encode() for i in range(1_000)]


def replica_bytes(region: Region, broker_id: int, topic: str) -> bytes:
    segments = sorted((region.brokers[broker_id].data_dir / "topics" / f"{topic}-0").glob("*.log"))
    return b"".join(s.read_bytes() for s in segments)


def test_a_diverged_old_leader_truncates_to_the_new_leaders_log(region: Region) -> None:
    """acks=1 records only the old leader took are cut when it rejoins (OffsetForLeaderEpoch)."""
    region.create_topic("journal", 1)
    produce_all(region, "journal", [f"j{i}".encode() for i in range(100)])
    old = region.leader("journal")
    followers = [n for n in region.brokers if n != old]
    lone = Producer({"bootstrap.servers": region.brokers[old].bootstrap, "acks": 1})
    for broker_id in followers:  # still in the ISR: frozen far less than a session
        region.brokers[broker_id].pause()
    try:
        for i in range(50):
            lone.produce("journal", f"lost{i}".encode(), partition=0)
        assert lone.flush(10) == 0  # acknowledged by the leader alone
        region.brokers[old].kill()
    finally:
        for broker_id in followers:
            region.brokers[broker_id].resume()
    region.wait_until(lambda: region.leader("journal") in followers, "a follower leads")
    new = region.leader("journal")
    region.brokers[old].start()
    region.wait_until(lambda: old in region.isr("journal"), "the old leader back in the ISR")
    # A fetch the followers had pending may have carried the acks=1 records to them before
    # they froze; then the new leader has them too and nothing diverged. Usually it has not.
    baseline = [f"j{i}".encode() for i in range(100)]
    values = read_all(region, "journal")
    assert values in (baseline, baseline + [f"lost{i}".encode() for i in range(50)])
    region.wait_until(
        lambda: replica_bytes(region, old, "journal") == replica_bytes(region, new, "journal"),
        "the old leader's log equal to the new leader's",
    )
    if values == baseline:
        log = region.brokers[old].log_path.read_text()
        assert "journal-0: truncating from 150 to 100" in log


def test_follower_cut_off_from_the_leader_leaves_the_isr_and_rejoins(region: Region) -> None:
    """A network fault between one follower and the leader (packets dropped both ways)."""
    region.create_topic("ledger", 1, **{"min.insync.replicas": "2"})
    leader = region.brokers[region.leader("ledger")]
    cut_off = next(n for n, b in region.brokers.items() if b is not leader)
    with LinkCuts("replication_test") as cuts:
        cuts.cut(region.brokers[cut_off].host, leader.host, leader.port)
        region.wait_until(lambda: cut_off not in region.isr("ledger"), "the cut-off follower out")
        produce_all(region, "ledger", [f"l{i}".encode() for i in range(100)])  # 2 replicas left
    region.wait_until(lambda: len(region.isr("ledger")) == 3, "the follower back after healing")
    assert read_all(region, "ledger") == [f"l{i}".encode() for i in range(100)]


def test_frozen_follower_leaves_the_isr_and_acks_all_goes_on(region: Region) -> None:
    region.create_topic("audit", 1, **{"min.insync.replicas": "2"})
    leader = region.leader("audit")
    frozen, other = (n for n in region.brokers if n != leader)
    region.brokers[frozen].pause()
    try:
        region.wait_until(lambda: frozen not in region.isr("audit"), "the frozen follower out")
        produce_all(region, "audit", [b"while-frozen"])
        region.brokers[other].pause()  # only the leader is left: below min.insync.replicas
        region.wait_until(lambda: region.isr("audit") == (leader,), "the ISR down to the leader")
        errors: list[KafkaError] = []
        strict = Producer(
            {
                "bootstrap.servers": region.brokers[leader].bootstrap,
                "acks": "all",
                "message.timeout.ms": 3_000,
                "retries": 0,
            }
        )
        strict.produce("audit", b"refused", partition=0, on_delivery=lambda e, m: errors.append(e))
        strict.flush(10)
        assert [e.code() for e in errors if e] == [KafkaError.NOT_ENOUGH_REPLICAS]
    finally:
        region.brokers[frozen].resume()
        region.brokers[other].resume()
    region.wait_until(lambda: len(region.isr("audit")) == 3, "both followers back")
    assert read_all(region, "audit") == [b"while-frozen"]


def test_a_follower_answers_not_leader_or_follower(region: Region) -> None:
    """Produce, Fetch and ListOffsets sent to a follower are refused with error 6."""
    region.create_topic("routing", 1)
    leader = region.leader("routing")
    follower = next(n for n in region.brokers if n != leader)
    batch = build_batch([Record(0, 0, b"k", b"v")])

    async def ask_follower() -> tuple[int, int, int]:
        async with KafkaClient(
            [(region.brokers[follower].host, region.brokers[follower].port)]
        ) as client:
            await client.refresh_metadata(["routing"])
            produced = await data.produce(client, follower, {("routing", 0): batch})
            fetched = await data.fetch(client, follower, {("routing", 0): 0}, max_wait_ms=0)
            listed = await data.list_offsets(client, follower, {("routing", 0): data.LATEST})
            return (
                produced[("routing", 0)].error,
                fetched[("routing", 0)].error,
                listed[("routing", 0)][0],
            )

    assert anyio.run(ask_follower) == (6, 6, 6)
