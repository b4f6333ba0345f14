"""broker.client against a real broker process, on asyncio and trio."""

from __future__ import annotations

import pytest

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.admin import (
    NewTopic,
    alter_topic_configs,
    create_partitions,
    create_topics,
    describe_topic_configs,
    init_producer_id,
)
from broker.client.data import EARLIEST, LATEST, fetch, list_offsets, produce
from broker.client.groups import commit_offsets, describe_group_states, fetch_committed, list_groups
from broker.protocol.batch import iter_valid_prefix
from broker.protocol.records import NewRecord, build_batch, decode_batches
from tests.integration.conftest import BrokerProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _address(broker: BrokerProcess) -> list[tuple[str, int]]:
    return [("127.0.0.1", broker.port)]


async def test_topics_produce_fetch_offsets(broker: BrokerProcess) -> None:
    async with KafkaClient(_address(broker)) as client:
        created = await create_topics(client, [NewTopic("t", 2, configs={"retention.ms": "60000"})])
        assert created["t"][0] == 0
        again = await create_topics(client, [NewTopic("t", 2)])
        assert again["t"][0] == 36  # TOPIC_ALREADY_EXISTS
        leader = await client.leader_for("t", 1)
        batch = build_batch([NewRecord(b"k", b"v1", (("h", b"x"),), 1000), NewRecord(None, b"v2")])
        results = await produce(client, leader, {("t", 1): batch})
        assert results[("t", 1)].error == 0 and results[("t", 1)].base_offset == 0
        offsets = await list_offsets(client, leader, {("t", 1): EARLIEST, ("t", 0): LATEST})
        assert offsets == {("t", 1): (0, 0), ("t", 0): (0, 0)}
        fetched = (await fetch(client, leader, {("t", 1): 0}, max_wait_ms=10))[("t", 1)]
        assert fetched.error == 0 and fetched.high_watermark == 2
        assert [h.base_offset for h in iter_valid_prefix(fetched.records)] == [0]
        assert [r.value for r in decode_batches(fetched.records)] == [b"v1", b"v2"]
        configs = await describe_topic_configs(client, ["t"])
        assert configs["t"] == {"retention.ms": "60000"}
        await alter_topic_configs(client, {"t": {"cleanup.policy": "compact"}})
        assert (await describe_topic_configs(client, ["t"]))["t"]["cleanup.policy"] == "compact"
        assert (await create_partitions(client, {"t": 3}))["t"][0] == 0
        await client.refresh_metadata(["t"])
        assert sorted(client.view.topics["t"].partitions) == [0, 1, 2]
        producer_id, epoch = await init_producer_id(client)
        assert producer_id >= 0 and epoch >= 0


async def test_group_offsets(broker: BrokerProcess) -> None:
    async with KafkaClient(_address(broker)) as client:
        await create_topics(client, [NewTopic("g", 1)])
        errors = await commit_offsets(client, "group-a", {("g", 0): (7, "meta")})
        assert errors == {("g", 0): 0}
        assert await fetch_committed(client, "group-a") == {("g", 0): (7, "meta")}
        assert "group-a" in {g.group_id for g in await list_groups(client)}
        assert (await describe_group_states(client, ["group-a"]))["group-a"] == "Empty"


async def test_unknown_topic_and_dead_broker(tmp_path: object) -> None:
    async with KafkaClient([("127.0.0.1", free_port())], connect_timeout_s=2) as client:
        with pytest.raises(KafkaConnectionError, match="no broker reachable"):
            await client.refresh_metadata()


async def test_unknown_topic_is_a_kafka_error(broker: BrokerProcess) -> None:
    async with KafkaClient(_address(broker)) as client:
        with pytest.raises(KafkaError, match="unknown_topic_or_partition"):
            await client.leader_for("missing", 0)
