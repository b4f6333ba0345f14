"""The workload's clients: confluent-kafka producers and group consumers that record everything.

Each client runs in its own thread (librdkafka's callbacks run on the thread that polls, so a
delivery report or a rebalance is recorded in the client's own order) and can be told to move
to another region: it finishes with the old one as an application would — a producer flushes,
then purges what is still unanswered; a consumer commits what it read and leaves its group —
and connects to the new one with the same identity. Sends are recorded before they are handed
to librdkafka, so a send whose report never comes (the process died) reads back as unknown.

A delivery error that may still have written the record (a timeout, a purge in flight, a
partial replication) is `unknown`, any other `error`: the verifier treats neither as
acknowledged, but the counts tell an operator which is which. Consumers commit explicitly —
every `commit_interval_s` and, synchronously, on every revoke — so a partition handed over
inside a region resumes exactly where its last owner stopped, and any difference is real.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from chaos.endpoint import Endpoint
from chaos.history import HistoryWriter
from chaos.model import EventKind, SendStatus
from mirror.client_tracing import TracedProducer, process_span, traced_producer

MOVE_FLUSH_S = 5.0  # a moving producer waits this long for answers from the old region
PURGE_REPORT_S = 1.0
CONSUME_BATCH = 500
CONSUME_WAIT_S = 0.2
LEAVE_S = 3.0  # a moving consumer waits this long for its last commit and its close
MAYBE_WRITTEN = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._PURGE_INFLIGHT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    }
)
CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",  # the verifier expects a new group to start at the start
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
}


@dataclass(frozen=True)
class ProducerSpec:
    topic: str  # logical name (as in the primary region)
    rate_per_s: float = 100.0
    max_sends: int = 10_000
    keys: int = 16  # keys k0 .. k{keys-1}, round robin
    acks: str = "all"
    idempotence: bool = True
    delivery_timeout_s: float = 30.0  # librdkafka's message.timeout.ms

    def __post_init__(self) -> None:
        assert self.rate_per_s > 0 and self.max_sends >= 0 and self.keys > 0, self
        assert not self.idempotence or self.acks == "all", "idempotence needs acks=all"


@dataclass(frozen=True)
class GroupSpec:
    group: str  # the group.id
    topics: tuple[str, ...]  # logical names
    consumers: int = 1
    commit_interval_s: float = 1.0


class Progress:
    """The highest offset acknowledged in each partition, and read by each group, under the
    partition's name in the region where it happened: a workload drains until every group has
    read, in the region it is in, up to everything acknowledged there (with mirror topics,
    everything acknowledged in either region)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acked: dict[tuple[str, int], int] = {}
        self._read: dict[tuple[str, str, int], int] = {}

    def acked(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self._acked[(topic, partition)] = max(offset, self._acked.get((topic, partition), -1))

    def read(self, group: str, topic: str, partition: int, offset: int) -> None:
        key = (group, topic, partition)
        with self._lock:
            self._read[key] = max(offset, self._read.get(key, -1))

    def caught_up(self, groups: Sequence[GroupSpec], endpoint: Endpoint) -> bool:
        with self._lock:
            return all(
                self._read.get((g.group, topic, partition), -1) >= offset
                for g in groups
                for (topic, partition), offset in self._acked.items()
                if topic in {endpoint.topic(t) for t in g.topics}
            )


class Client(ABC):
    """One client thread that can be moved to another region while it runs."""

    def __init__(self, name: str, endpoint: Endpoint, history: HistoryWriter) -> None:
        self.name = name
        self.history = history
        self.endpoint = endpoint  # where the thread is connected
        self._wanted = endpoint
        self._finished = False
        self._lock = threading.Lock()
        self._settled = threading.Event()
        self._settled.set()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def move(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._wanted = endpoint
            if not self._finished and endpoint is not self.endpoint:
                self._settled.clear()

    def settled(self, timeout_s: float) -> bool:
        """Whether the client reached the last region it was told (or has finished)."""
        return self._settled.wait(timeout_s)

    @abstractmethod
    def run(self) -> None:
        """The client's life, in its thread."""

    def wanted(self) -> Endpoint | None:
        """The region to move to, if the client is told to move."""
        with self._lock:
            return None if self._wanted is self.endpoint else self._wanted

    def arrived(self, endpoint: Endpoint) -> None:
        detail = {"client": self.name, "from": self.endpoint.region, "to": endpoint.region}
        self.history.event(EventKind.CLIENT_MOVED, detail)
        with self._lock:
            self.endpoint = endpoint
            if self._wanted is endpoint:
                self._settled.set()

    def _main(self) -> None:
        try:
            self.run()
        finally:
            with self._lock:
                self._finished = True
                self._settled.set()


class ProducerClient(Client):
    """Sends `<run>:<name>:<n>` at a steady rate until its deadline or `max_sends`."""

    def __init__(
        self,
        name: str,
        spec: ProducerSpec,
        endpoint: Endpoint,
        history: HistoryWriter,
        progress: Progress,
        stop: threading.Event,
        deadline_s: float,  # time.monotonic()
    ) -> None:
        super().__init__(name, endpoint, history)
        self.spec = spec
        self._progress = progress
        self._stop = stop
        self._deadline_s = deadline_s

    def run(self) -> None:
        producer = self._connect()
        next_s = time.monotonic()
        try:
            for n in range(self.spec.max_sends):
                if self._stop.is_set() or time.monotonic() >= self._deadline_s:
                    break
                target = self.wanted()
                if target is not None:
                    self._finish(producer, MOVE_FLUSH_S)
                    self.arrived(target)
                    producer = self._connect()
                self._send(producer, n)
                next_s += 1 / self.spec.rate_per_s
                while (left_s := next_s - time.monotonic()) > 0:
                    producer.poll(left_s)
        finally:
            self._finish(producer, self.spec.delivery_timeout_s)

    def _connect(self) -> TracedProducer:
        """A producer whose records carry trace contexts (mirror/client_tracing.py)."""
        config = {
            "bootstrap.servers": self.endpoint.bootstrap,
            "acks": self.spec.acks,
            "enable.idempotence": self.spec.idempotence,
            "linger.ms": 5,
            "message.timeout.ms": int(self.spec.delivery_timeout_s * 1000),
            "on_delivery": self._delivered,
        }
        return traced_producer(config, self.endpoint.region)

    def _send(self, producer: TracedProducer, n: int) -> None:
        topic = self.endpoint.topic(self.spec.topic)
        key, value = f"k{n % self.spec.keys}", f"{self.history.run_id}:{self.name}:{n}"
        self.history.send(self.name, self.endpoint.region, topic, key, value)
        while True:
            try:
                producer.produce(topic, value=value.encode(), key=key.encode())
                return
            except BufferError:  # librdkafka's queue is full: let answers make room
                producer.poll(0.1)
            except KafkaException as exc:
                self.history.failed(value, SendStatus.ERROR, str(exc), None)
                return

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        value = (message.value() or b"").decode()
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if error is None:
            assert topic is not None and partition is not None and offset is not None
            self.history.acked(value, partition, offset)
            self._progress.acked(topic, partition, offset)
            return
        status = SendStatus.UNKNOWN if error.code() in MAYBE_WRITTEN else SendStatus.ERROR
        known = partition if partition is not None and partition >= 0 else None
        self.history.failed(value, status, str(error), known)

    def _finish(self, producer: TracedProducer, timeout_s: float) -> None:
        producer.flush(timeout_s)
        if len(producer.original_producer()):  # the instrumentation's proxy has no len()
            producer.purge(in_queue=True, in_flight=True)  # reported as _PURGE_QUEUE/_INFLIGHT
            producer.flush(PURGE_REPORT_S)


class ConsumerClient(Client):
    """A member of a group: polls, records each record, commits explicitly."""

    def __init__(
        self,
        name: str,
        spec: GroupSpec,
        endpoint: Endpoint,
        history: HistoryWriter,
        progress: Progress,
        stop: threading.Event,
    ) -> None:
        super().__init__(name, endpoint, history)
        self.spec = spec
        self._progress = progress
        self._stop = stop
        self._positions: dict[tuple[str, int], int] = {}  # next offset, by name in the region
        self._committed: dict[tuple[str, int], int] = {}

    def run(self) -> None:
        consumer = self._connect()
        next_commit_s = time.monotonic() + self.spec.commit_interval_s
        try:
            while not self._stop.is_set():
                target = self.wanted()
                if target is not None:
                    self._leave(consumer)
                    self.arrived(target)
                    consumer = self._connect()
                for message in consumer.consume(CONSUME_BATCH, CONSUME_WAIT_S):
                    self._record(message)
                if time.monotonic() >= next_commit_s:
                    self._commit(consumer, list(self._positions))
                    next_commit_s = time.monotonic() + self.spec.commit_interval_s
        finally:
            self._leave(consumer)

    def _connect(self) -> Consumer:
        region = self.endpoint.region
        consumer = Consumer(
            CONSUMER_CONFIG
            | {
                "bootstrap.servers": self.endpoint.bootstrap,
                "group.id": self.spec.group,
                "on_commit": lambda error, partitions: self._on_commit(region, error, partitions),
            }
        )
        consumer.subscribe(
            [self.endpoint.topic(topic) for topic in self.spec.topics],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )
        return consumer

    def _record(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if message.error() is not None or topic is None or partition is None or offset is None:
            return  # librdkafka reports transient errors this way and retries by itself
        key = message.key()
        with process_span(message, self.spec.group, self.endpoint.region, self.endpoint.bootstrap):
            self.history.poll(
                self.name,
                self.spec.group,
                self.endpoint.region,
                topic,
                partition,
                offset,
                None if key is None else key.decode(errors="replace"),
                (message.value() or b"").decode(errors="replace"),
            )
        self._positions[(topic, partition)] = offset + 1
        self._progress.read(self.spec.group, topic, partition, offset)

    def _commit(self, consumer: Consumer, partitions: Sequence[tuple[str, int]]) -> None:
        """Commit the positions of `partitions`, asynchronously: a synchronous commit to a
        region that stopped answering (frozen, cut off) blocks for minutes, and a client
        must be able to give up on it and move. `_on_commit` records the answer."""
        offsets = [
            TopicPartition(topic, partition, self._positions[(topic, partition)])
            for topic, partition in partitions
            if (topic, partition) in self._positions
            and self._positions[(topic, partition)] != self._committed.get((topic, partition))
        ]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            self._on_commit(self.endpoint.region, exc.args[0], offsets)

    def _on_commit(
        self, region: str, error: KafkaError | None, partitions: list[TopicPartition]
    ) -> None:
        for tp in partitions:
            failed = error or tp.error
            self.history.commit(
                self.name, self.spec.group, region, tp.topic, tp.partition, tp.offset,
                "" if failed is None else str(failed),
            )  # fmt: skip
            if failed is None and region == self.endpoint.region:
                self._committed[(tp.topic, tp.partition)] = tp.offset

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._record_assignment(partitions, assigned=True)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(consumer, [(tp.topic, tp.partition) for tp in partitions])
        self._lost(consumer, partitions)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Taken away without a chance to commit (or after committing, from `_revoked`)."""
        self._record_assignment(partitions, assigned=False)
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)

    def _record_assignment(self, partitions: list[TopicPartition], assigned: bool) -> None:
        for tp in partitions:
            self.history.assignment(
                self.name, self.spec.group, self.endpoint.region, tp.topic, tp.partition, assigned
            )

    def _leave(self, consumer: Consumer) -> None:
        """Commit the last positions and leave the group, for at most about 2 x LEAVE_S: a
        region that does not answer is abandoned with the consumer still open (it may
        commit later, when the region answers again, as a real client would)."""
        self._commit(consumer, list(self._positions))
        closer = threading.Thread(target=consumer.close, name=f"{self.name}-close", daemon=True)
        closer.start()  # close serves the commit's answer, revokes (and commits) the rest
        closer.join(2 * LEAVE_S)
