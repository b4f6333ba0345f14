"""LinkAppend and LinkTruncate against real brokers: batches land at their source offsets (gaps
and empty batches kept, read past by confluent-kafka and kcat), a link out of step is refused
with the log end to resume from, and nothing of a refused append is written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from broker.client import KafkaClient
from broker.client.admin import NewTopic, create_topics
from broker.client.data import (
    EARLIEST,
    LATEST,
    LinkResult,
    link_append,
    link_truncate,
    list_offsets,
)
from broker.links import MIRROR_SOURCE
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, build_batch
from broker.topology import Topology
from tests.integration.conftest import BrokerProcess
from tests.integration.links_harness import PROMPT_S, kcat_offsets, produce, run, set_topology
from tests.integration.region_harness import Region

pytestmark = pytest.mark.integration

TP = ("orders", 0)
SOURCE = "us-east"


def data(base_offset: int, count: int) -> bytes:
    """A source batch of `count` records from `base_offset`, values naming their offsets."""
    return build_batch(
        [
            Record(base_offset + i, 1_000 + i, None, f"v{base_offset + i}".encode())
            for i in range(count)
        ]
    )


def empty(base_offset: int, offsets: int) -> bytes:
    return build_batch(
        [], base_offset=base_offset, last_offset_delta=offsets - 1, max_timestamp_ms=1_000
    )


def append(
    bootstrap: str,
    expected: int,
    records: bytes,
    *,
    source: str = SOURCE,
    epoch: int = 0,
    tp: tuple[str, int] = TP,
    node_id: int = 1,
) -> LinkResult:
    results = run(
        bootstrap,
        lambda c: link_append(c, node_id, source, epoch, {tp: (expected, records)}, 10_000),
    )
    return results[tp]


def truncate(
    bootstrap: str, offset: int, *, source: str = SOURCE, epoch: int = 0, node_id: int = 1
) -> LinkResult:
    results = run(bootstrap, lambda c: link_truncate(c, node_id, source, epoch, {TP: offset}))
    return results[TP]


def create_mirror(bootstrap: str, name: str = "orders", replication_factor: int = -1) -> None:
    topic = NewTopic(name, 1, replication_factor, configs={MIRROR_SOURCE: SOURCE})
    created = run(bootstrap, lambda c: create_topics(c, [topic]))
    assert created[name][0] == 0, created


def consumed(bootstrap: str, count: int, start: int = 0) -> list[tuple[int, str]]:
    """(offset, value) of the first `count` records confluent-kafka reads from `start`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "check",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a mirror starts where its source's log does
        }
    )
    got: list[tuple[int, str]] = []
    try:
        consumer.assign([TopicPartition(TP[0], TP[1], start)])
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                got.append((message.offset(), (message.value() or b"").decode()))
    finally:
        consumer.close()
    return got


def offsets(bootstrap: str) -> tuple[int, int]:
    """(log start, high watermark) as ListOffsets answers them."""

    async def ask(client: KafkaClient) -> tuple[int, int]:
        answer = await list_offsets(client, 1, {TP: EARLIEST})
        latest = await list_offsets(client, 1, {TP: LATEST})
        return answer[TP][1], latest[TP][1]

    return run(bootstrap, ask)


def test_batches_land_at_their_source_offsets_gaps_and_empty_batches_kept(
    broker: BrokerProcess,
) -> None:
    create_mirror(broker.bootstrap)
    # 100-102, an empty batch over 103-105 (a marker, aborted data), a gap 106-109, 110-111.
    first = data(100, 3) + empty(103, 3) + data(110, 2)
    assert append(broker.bootstrap, 0, first) == LinkResult(0, 112, None)
    assert offsets(broker.bootstrap) == (100, 112)  # an empty mirror starts where its source does
    expected = [(100, "v100"), (101, "v101"), (102, "v102"), (110, "v110"), (111, "v111")]
    assert consumed(broker.bootstrap, 5) == expected
    assert kcat_offsets(broker.bootstrap, "orders") == expected

    # An empty batch at the end, then more: a consumer at 112 reads past it.
    assert append(broker.bootstrap, 112, empty(112, 4)).log_end_offset == 116
    assert append(broker.bootstrap, 116, data(116, 1)).log_end_offset == 117
    assert consumed(broker.bootstrap, 1, start=112) == [(116, "v116")]

    broker.kill()  # recovery keeps the gaps and the empty batches
    broker.start()
    assert offsets(broker.bootstrap) == (100, 117)
    assert kcat_offsets(broker.bootstrap, "orders") == [*expected, (116, "v116")]


def test_a_link_out_of_step_is_refused_with_the_log_end(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    create_mirror(bootstrap)
    assert append(bootstrap, 0, data(0, 5)).error == 0

    duplicate = append(bootstrap, 0, data(0, 5))  # a retry of an append that happened
    assert (duplicate.error, duplicate.log_end_offset) == (
        ErrorCode.out_of_order_sequence_number,
        5,
    )
    stale = append(bootstrap, 3, data(3, 5))
    assert (stale.error, stale.log_end_offset) == (45, 5)
    assert stale.message == "expected the log to end at 3, it ends at 5"

    wrong = append(bootstrap, 5, data(5, 1), source="eu-west")
    assert (wrong.error, wrong.message) == (44, "orders mirrors us-east, not eu-west")

    set_topology(bootstrap, Topology(5, "standby", SOURCE))
    old = append(bootstrap, 5, data(5, 1), epoch=4)
    assert (old.error, old.log_end_offset) == (ErrorCode.stale_controller_epoch, 5)
    assert old.message == "topology epoch 4 is older than this region's 5"

    corrupt = bytearray(data(6, 2))
    corrupt[-1] ^= 0xFF
    for bad in (data(5, 1) + bytes(corrupt), data(5, 2) + data(6, 1), data(4, 2)):
        refused = append(bootstrap, 5, bad, epoch=5)
        assert (refused.error, refused.log_end_offset) == (ErrorCode.corrupt_message, 5), refused
    assert offsets(bootstrap) == (0, 5)  # nothing of a refused append was written
    assert append(bootstrap, 5, data(5, 1), epoch=5) == LinkResult(0, 6, None)
    assert append(bootstrap, 6, data(6, 1), epoch=6).error == 0  # a newer link epoch is fine

    create_mirror(bootstrap, "plain")
    run(bootstrap, lambda c: c.refresh_metadata())
    not_mirror = run(
        bootstrap,
        lambda c: link_append(c, 1, "eu-west", 5, {("plain", 0): (0, data(0, 1))}),
    )[("plain", 0)]
    assert not_mirror.error == 44
    missing = append(bootstrap, 0, data(0, 1), tp=("missing", 0))
    assert (missing.error, missing.log_end_offset) == (ErrorCode.unknown_topic_or_partition, -1)
    assert consumed(bootstrap, 7) == [(o, f"v{o}") for o in range(7)]


def test_link_truncate_cuts_a_single_node_mirror(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    create_mirror(bootstrap)
    for offset in range(10):
        assert append(bootstrap, offset, data(offset, 1)).error == 0
    assert truncate(bootstrap, 6, source="eu-west").error == 44
    set_topology(bootstrap, Topology(2, "primary", "eu-west"))
    assert truncate(bootstrap, 6, epoch=1).error == ErrorCode.stale_controller_epoch
    assert offsets(bootstrap) == (0, 10)

    assert truncate(bootstrap, 6, epoch=2) == LinkResult(0, 6, None)
    assert truncate(bootstrap, 50, epoch=2) == LinkResult(0, 6, None)  # past the end: no-op
    assert offsets(bootstrap) == (0, 6)
    assert append(bootstrap, 6, data(6, 1) + data(8, 1), epoch=2).log_end_offset == 9
    assert [o for o, _ in kcat_offsets(bootstrap, "orders")] == [0, 1, 2, 3, 4, 5, 6, 8]


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    region = Region(tmp_path, brokers=2, controllers=3)
    try:
        yield region.start()
    finally:
        region.kill_all()


def test_link_append_replicates_in_a_region_and_truncate_is_refused(region: Region) -> None:
    create_mirror(region.bootstrap, replication_factor=2)
    plain = NewTopic("plain", 1, 2)
    run(region.bootstrap, lambda c: create_topics(c, [plain]))
    for topic in ("orders", "plain"):
        region.wait_until(lambda t=topic: len(region.isr(t)) == 2, f"{topic} replicated")
    leader = region.leader("orders")
    batches = data(500, 3) + empty(503, 2) + data(510, 1)
    answer = append(region.bootstrap, 0, batches, node_id=leader)
    assert answer == LinkResult(0, 511, None)  # answered once the ISR holds it
    refused = truncate(region.bootstrap, 505, node_id=leader)
    assert refused.error == ErrorCode.invalid_request
    assert refused.message == "LinkTruncate is not supported on replicated regions yet"

    region.brokers[leader].kill()  # the follower, now leader, has the same offsets
    other = next(n for n in region.brokers if n != leader)
    region.wait_until(lambda: region.leader("orders") == other, "the follower leads")
    survivor = region.brokers[other].bootstrap
    assert consumed(survivor, 4) == [(500, "v500"), (501, "v501"), (502, "v502"), (510, "v510")]
    # The survivor is the only in-sync replica: its own appends move the high watermark.
    assert append(survivor, 511, data(511, 1), node_id=other) == LinkResult(0, 512, None)
    delivery = produce(survivor, "plain")  # acks=all
    assert delivery.error is None and delivery.seconds < PROMPT_S, delivery
