"""Admin requests: topics, partitions, configs and producer ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.client.client import KafkaClient, check
from broker.protocol.messages import MessageBuilder
from broker.protocol.versions import ApiKey

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4  # with the name "": the cluster-wide dynamic configs
CONFIG_SET = 0
CONFIG_DELETE = 1
# DescribeConfigs config_source values that mean "set on this topic" (not a default).
TOPIC_CONFIG_SOURCE = 1


@dataclass(frozen=True)
class NewTopic:
    name: str
    partitions: int
    replication_factor: int = -1
    configs: Mapping[str, str] | None = None


async def _controller(client: KafkaClient) -> int | None:
    if client.view.controller_id < 0:
        await client.refresh_metadata([])
    return client.view.controller_id if client.view.controller_id >= 0 else None


async def create_topics(
    client: KafkaClient, topics: list[NewTopic], timeout_ms: int = 30_000
) -> dict[str, tuple[int, str | None]]:
    """CreateTopics at the controller → {name: (error_code, error_message)}."""

    def build(b: MessageBuilder, version: int) -> Any:
        creatable = tuple(
            b.make(
                "CreatableTopic",
                name=t.name,
                num_partitions=t.partitions,
                replication_factor=t.replication_factor,
                assignments=(),
                configs=tuple(
                    b.make("CreatableTopicConfig", name=k, value=v)
                    for k, v in (t.configs or {}).items()
                ),
            )
            for t in topics
        )
        return b.make(
            "CreateTopicsRequest", topics=creatable, timeout=timeout_ms, validate_only=False
        )

    response = await client.call(ApiKey.CREATE_TOPICS, build, await _controller(client))
    return {t.name: (int(t.error_code), getattr(t, "error_message", None)) for t in response.topics}


async def create_partitions(
    client: KafkaClient, counts: Mapping[str, int], timeout_ms: int = 30_000
) -> dict[str, tuple[int, str | None]]:
    """Grow topics to the given partition counts → {name: (error_code, error_message)}."""

    def build(b: MessageBuilder, version: int) -> Any:
        parts = tuple(
            b.make("CreatePartitionsTopic", name=name, count=count, assignments=None)
            for name, count in counts.items()
        )
        return b.make(
            "CreatePartitionsRequest", topics=parts, timeout=timeout_ms, validate_only=False
        )

    response = await client.call(ApiKey.CREATE_PARTITIONS, build, await _controller(client))
    return {r.name: (int(r.error_code), r.error_message) for r in response.results}


async def describe_configs(
    client: KafkaClient, resource_type: int, names: list[str], only_overrides: bool = True
) -> dict[str, dict[str, str]]:
    """Configs of resources of one type; with `only_overrides`, only those set on each."""

    def build(b: MessageBuilder, version: int) -> Any:
        resources = tuple(
            b.make(
                "DescribeConfigsResource",
                resource_type=resource_type,
                resource_name=name,
                configuration_keys=None,
            )
            for name in names
        )
        return b.make("DescribeConfigsRequest", resources=resources, include_synonyms=False)

    response = await client.call(ApiKey.DESCRIBE_CONFIGS, build)
    configs: dict[str, dict[str, str]] = {}
    for result in response.results:
        check(result.error_code, f"DescribeConfigs {result.resource_name}", result.error_message)
        configs[result.resource_name] = {
            c.name: c.value
            for c in result.configs
            if c.value is not None
            and not c.is_sensitive
            and (not only_overrides or int(getattr(c, "config_source", 1)) == TOPIC_CONFIG_SOURCE)
        }
    return configs


async def describe_topic_configs(
    client: KafkaClient, topics: list[str], only_overrides: bool = True
) -> dict[str, dict[str, str]]:
    """Topic configs; with `only_overrides`, only those set on the topic itself."""
    return await describe_configs(client, TOPIC_RESOURCE, topics, only_overrides)


async def alter_configs(
    client: KafkaClient,
    resource_type: int,
    changes: Mapping[str, Mapping[str, str | None]],
) -> None:
    """IncrementalAlterConfigs: per resource name, SET each key (DELETE where the value is
    None); raises KafkaError on the first resource refused."""

    def build(b: MessageBuilder, version: int) -> Any:
        resources = tuple(
            b.make(
                "AlterConfigsResource",
                resource_type=resource_type,
                resource_name=name,
                configs=tuple(
                    b.make(
                        "AlterableConfig",
                        name=k,
                        config_operation=CONFIG_SET if v is not None else CONFIG_DELETE,
                        value=v,
                    )
                    for k, v in values.items()
                ),
            )
            for name, values in changes.items()
        )
        return b.make("IncrementalAlterConfigsRequest", resources=resources, validate_only=False)

    response = await client.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, build)
    for r in response.responses:
        check(r.error_code, f"IncrementalAlterConfigs {r.resource_name}", r.error_message)


async def alter_topic_configs(
    client: KafkaClient, changes: Mapping[str, Mapping[str, str]]
) -> None:
    """IncrementalAlterConfigs SET for each topic's keys; raises KafkaError on failure."""
    await alter_configs(client, TOPIC_RESOURCE, changes)


async def init_producer_id(client: KafkaClient) -> tuple[int, int]:
    """A fresh idempotent producer id and epoch (no transactional id)."""

    def build(b: MessageBuilder, version: int) -> Any:
        return b.make(
            "InitProducerIdRequest",
            transactional_id=None,
            transaction_timeout=60_000,
            producer_id=-1,
            producer_epoch=-1,
        )

    response = await client.call(ApiKey.INIT_PRODUCER_ID, build)
    check(response.error_code, "InitProducerId")
    return int(response.producer_id), int(response.producer_epoch)
