"""Consumer groups with real clients: rebalancing and durable committed offsets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, TopicPartition

from tests.integration.conftest import BrokerProcess
from tests.integration.test_clients import create_topic, produce_confluent

PARTITIONS = 6


class GroupMember(threading.Thread):
    """A confluent-kafka consumer polling in its own thread, recording its assignment."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, strategy: str, **config: object
    ) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": strategy,
                **config,
            }
        )
        self.consumer.subscribe([topic])
        self.stop_event = threading.Event()
        self.assigned: set[int] = set()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.consumer.poll(0.1)
            with self.lock:
                self.assigned = {tp.partition for tp in self.consumer.assignment()}
        self.consumer.close()

    def partitions(self) -> set[int]:
        with self.lock:
            return set(self.assigned)


def _wait_for(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@contextmanager
def running(members: list[GroupMember]) -> Iterator[list[GroupMember]]:
    for member in members:
        member.start()
    try:
        yield members
    finally:
        for member in members:
            member.stop_event.set()
        for member in members:
            member.join(15)


def _covers_all_disjointly(members: list[GroupMember]) -> bool:
    sets = [m.partitions() for m in members]
    union = set().union(*sets)
    return union == set(range(PARTITIONS)) and sum(len(s) for s in sets) == PARTITIONS and all(sets)


def test_three_consumers_share_partitions_and_rebalance_when_one_leaves(
    broker: BrokerProcess,
) -> None:
    create_topic(broker.bootstrap, "shared", partitions=PARTITIONS)
    members = [GroupMember(broker.bootstrap, "shared", "trio", "range") for _ in range(3)]
    with running(members):
        assert _wait_for(lambda: _covers_all_disjointly(members), 30), [
            m.partitions() for m in members
        ]
        assert all(len(m.partitions()) == 2 for m in members)
        leaving = members.pop()
        leaving.stop_event.set()
        leaving.join(15)
        assert _wait_for(lambda: _covers_all_disjointly(members), 30), [
            m.partitions() for m in members
        ]
        assert sorted(len(m.partitions()) for m in members) == [3, 3]


def test_cooperative_sticky_assignor(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "sticky", partitions=PARTITIONS)
    members = [
        GroupMember(broker.bootstrap, "sticky", "coop", "cooperative-sticky") for _ in range(2)
    ]
    for member in members:
        member.start()
    try:
        assert _wait_for(lambda: _covers_all_disjointly(members), 30), [
            m.partitions() for m in members
        ]
    finally:
        for member in members:
            member.stop_event.set()
        for member in members:
            member.join(15)


def test_committed_offsets_survive_restart(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "commits", partitions=2)
    produce_confluent(broker.bootstrap, "commits", 50)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "durable"})
    consumer.commit(
        offsets=[TopicPartition("commits", 0, 17), TopicPartition("commits", 1, 9)],
        asynchronous=False,
    )
    consumer.close()
    broker.kill()
    broker.start()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "durable"})
    committed = consumer.committed(
        [TopicPartition("commits", 0), TopicPartition("commits", 1)], timeout=10
    )
    consumer.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 17), (1, 9)]


def test_static_member_rejoins_under_its_instance_id(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "static", partitions=PARTITIONS)
    for attempt in range(2):  # the second consumer takes over the first one's instance id
        member = GroupMember(
            broker.bootstrap, "static", "statics", "range", **{"group.instance.id": "pod-0"}
        )
        with running([member]):
            assert _wait_for(lambda m=member: m.partitions() == set(range(PARTITIONS)), 30), attempt
