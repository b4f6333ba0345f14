"""Failover fencing on real brokers with real clients: mirror topics and standby regions refuse
client writes at once (confluent-kafka, also idempotent, and kcat fail delivery, no retries),
while what the links and groups need keeps working; the topology survives SIGKILL and start-up
options apply only when newer; a region with controllers agrees on it through the quorum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from broker.client import KafkaError as ClientKafkaError
from broker.client.admin import describe_topic_configs
from broker.links import MIRROR_SOURCE, REMOTE_SOURCE
from broker.topology import Topology
from tests.integration.conftest import BrokerProcess
from tests.integration.links_harness import (
    PROMPT_S,
    kcat_produce,
    produce,
    read_topology,
    run,
    set_topology,
)
from tests.integration.region_harness import Region

pytestmark = pytest.mark.integration

STANDBY_AT_3 = Topology(3, "standby", "eu-west")


def create(bootstrap: str, name: str, replication_factor: int = 1, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=1, replication_factor=replication_factor, config=configs)
    for future in admin.create_topics([topic], operation_timeout=10).values():
        future.result(timeout=30)


def alter_topic(bootstrap: str, name: str, key: str, value: str | None) -> None:
    """IncrementalAlterConfigs through confluent-kafka: SET, or DELETE for None."""
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry(key, value or "", incremental_operation=op)
    resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    return {key: entry.value for key, entry in described.items()}


def assert_refused(bootstrap: str, topic: str) -> None:
    """confluent-kafka (plain and idempotent) and kcat fail delivery, promptly, with 44."""
    for idempotent in (False, True):
        delivery = produce(bootstrap, topic, idempotent=idempotent)
        assert delivery.error is not None, f"{topic} took a write (idempotent={idempotent})"
        assert delivery.error.code() == KafkaError.POLICY_VIOLATION
        assert not delivery.error.retriable()
        assert delivery.seconds < PROMPT_S, delivery
    started = kcat_produce(bootstrap, topic)
    assert started.returncode != 0 and "Policy violation" in started.stderr, started.stderr


def assert_writable(bootstrap: str, topic: str) -> int:
    delivery = produce(bootstrap, topic, idempotent=True)
    assert delivery.error is None, (topic, delivery)
    return delivery.offset


def test_mirror_topic_refuses_clients_until_promoted(broker: BrokerProcess) -> None:
    create(broker.bootstrap, "orders", **{MIRROR_SOURCE: "us-east"})
    assert topic_configs(broker.bootstrap, "orders")[MIRROR_SOURCE] == "us-east"
    assert_refused(broker.bootstrap, "orders")
    alter_topic(broker.bootstrap, "orders", MIRROR_SOURCE, None)  # promote
    assert MIRROR_SOURCE not in topic_configs(broker.bootstrap, "orders")
    assert assert_writable(broker.bootstrap, "orders") == 0
    alter_topic(broker.bootstrap, "orders", MIRROR_SOURCE, "us-east")  # demote again
    assert_refused(broker.bootstrap, "orders")
    with pytest.raises(Exception, match="INVALID_CONFIG"):
        alter_topic(broker.bootstrap, "orders", "regionlink.mirror.sauce", "x")


def test_standby_refuses_client_writes_but_not_what_links_and_groups_need(
    broker: BrokerProcess,
) -> None:
    bootstrap = broker.bootstrap
    create(bootstrap, "plain")
    create(bootstrap, "us-east.orders", **{REMOTE_SOURCE: "us-east"})
    assert assert_writable(bootstrap, "plain") == 0
    assert read_topology(bootstrap) == Topology()

    set_topology(bootstrap, STANDBY_AT_3)
    assert read_topology(bootstrap) == STANDBY_AT_3
    assert read_topology(bootstrap, "1") == STANDBY_AT_3  # a named broker shows them too
    assert_refused(bootstrap, "plain")
    for exempt in ("heartbeats", "x.internal", "__regionlink-internal", "us-east.orders"):
        assert_writable(bootstrap, exempt)

    create(bootstrap, "mirrored", **{MIRROR_SOURCE: "us-east"})
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "readers", "enable.auto.commit": False}
    )
    try:  # reading goes on on a standby; its own topics' offsets are the primary's to keep
        consumer.assign([TopicPartition("plain", 0, 0)])
        message = consumer.poll(10)
        assert message is not None and message.error() is None and message.offset() == 0
        with pytest.raises(KafkaException) as refused:
            consumer.commit(message=message, asynchronous=False)
        assert refused.value.args[0].code() == KafkaError.POLICY_VIOLATION
        # A read replica of mirror topics commits (__consumer_offsets is exempt).
        consumer.commit(offsets=[TopicPartition("mirrored", 0, 0)], asynchronous=False)
        committed = consumer.committed([TopicPartition("mirrored", 0)], timeout=10)
        assert committed[0].offset == 0
    finally:
        consumer.close()

    with pytest.raises(ClientKafkaError, match="topology epoch 2 is older than this region's 3"):
        set_topology(bootstrap, Topology(2, "primary", "us-east"))
    set_topology(bootstrap, Topology(3, "primary", "us-east"))  # the same epoch: unfence
    assert assert_writable(bootstrap, "plain") == 1


def test_topology_and_mirror_configs_survive_sigkill(broker: BrokerProcess) -> None:
    set_topology(broker.bootstrap, Topology(4, "standby", "eu-west"))
    create(broker.bootstrap, "orders", **{MIRROR_SOURCE: "us-east"})
    broker.kill()
    broker.start()
    assert read_topology(broker.bootstrap) == Topology(4, "standby", "eu-west")
    configs = run(broker.bootstrap, lambda c: describe_topic_configs(c, ["orders"]))
    assert configs["orders"] == {MIRROR_SOURCE: "us-east"}
    delivery = produce(broker.bootstrap, "orders")
    assert delivery.error is not None and delivery.error.code() == KafkaError.POLICY_VIOLATION


def _startup_args(topology: Topology) -> tuple[str, ...]:
    return (
        "--topology-epoch",
        str(topology.epoch),
        "--region-role",
        topology.role,
        "--topology-primary",
        topology.primary,
    )


def test_start_up_topology_applies_before_clients_only_when_newer(
    broker_factory: type[BrokerProcess], tmp_path: Path
) -> None:
    told = Topology(5, "standby", "eu-west")
    broker = broker_factory(tmp_path / "old-primary", extra_args=_startup_args(told)).start()
    assert produce(broker.bootstrap, "orders").error is not None  # the very first write
    assert read_topology(broker.bootstrap) == told

    broker.stop()
    broker.extra_args = _startup_args(Topology(4, "primary", "us-east"))  # older: ignored
    broker.start()
    assert read_topology(broker.bootstrap) == told
    assert produce(broker.bootstrap, "orders").error is not None

    broker.kill()
    newer = Topology(6, "primary", "eu-west")
    broker.extra_args = _startup_args(newer)
    broker.start()
    assert read_topology(broker.bootstrap) == newer
    assert produce(broker.bootstrap, "orders").error is None


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    region = Region(tmp_path, brokers=2, controllers=3)
    try:
        yield region.start()
    finally:
        region.kill_all()


def test_region_with_controllers_agrees_on_the_topology(region: Region) -> None:
    one, two = (b.bootstrap for b in region.brokers.values())
    create(one, "plain", replication_factor=2)
    region.wait_until(lambda: len(region.isr("plain")) == 2, "plain replicated")
    set_topology(one, STANDBY_AT_3)  # forwarded to the controller quorum
    region.wait_until(lambda: read_topology(two) == STANDBY_AT_3, "broker 2 sees the topology")
    leader = region.brokers[region.leader("plain")]
    delivery = produce(leader.bootstrap, "plain")
    assert delivery.error is not None and delivery.error.code() == KafkaError.POLICY_VIOLATION
    with pytest.raises(ClientKafkaError, match="older than this region's 3"):
        set_topology(two, Topology(2, "primary", "us-east"))

    region.brokers[2].kill()  # a restarted broker learns it from the metadata log
    region.brokers[2].start()
    assert read_topology(two) == STANDBY_AT_3
    set_topology(two, Topology(4, "primary", "eu-west"))
    region.wait_until(lambda: read_topology(one).epoch == 4, "broker 1 sees epoch 4")
    assert produce(region.bootstrap, "plain").error is None

    # A broker restarted with newer start-up options tells the whole region, via the quorum.
    restarted = region.brokers[1]
    restarted.kill()
    restarted.extra_args = (*restarted.extra_args, *_startup_args(Topology(7, "standby", "x")))
    restarted.start()
    region.wait_until(lambda: read_topology(two) == Topology(7, "standby", "x"), "epoch 7")
