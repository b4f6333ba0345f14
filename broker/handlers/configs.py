"""DescribeConfigs and IncrementalAlterConfigs for topics and for the region's cluster-level
configs (resource BROKER with name "", Kafka's cluster-wide default: topology epoch and role);
a named broker shows its static settings, read-only, with those cluster configs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker import links
from broker.handlers import handles
from broker.log import TOPIC_CONFIG_DEFAULTS, LogConfig
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, response_builder
from broker.protocol.versions import ApiKey
from broker.security.authz import (
    ALTER_CLUSTER_CONFIGS,
    ALTER_TOPIC_CONFIGS,
    DESCRIBE_CLUSTER_CONFIGS,
    DESCRIBE_TOPIC_CONFIGS,
    Access,
    Check,
)
from broker.topics import TopicError
from broker.topology import CLUSTER_CONFIG_DEFAULTS

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
CLUSTER_RESOURCE_NAME = ""
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3


def _entries(broker: Broker, resource: Any) -> dict[str, tuple[str, int]]:
    """name -> (value, source) for the resource; raises KeyError for unknown topics."""
    if resource.resource_type == BROKER_RESOURCE:
        return _cluster_entries(broker) | (
            {} if resource.resource_name == CLUSTER_RESOURCE_NAME else _static_entries(broker)
        )
    info = broker.topics.get(resource.resource_name)
    if info is None:
        raise KeyError(resource.resource_name)
    entries = {name: (value, SOURCE_DEFAULT) for name, value in TOPIC_CONFIG_DEFAULTS.items()}
    entries.update({name: (value, SOURCE_DYNAMIC_TOPIC) for name, value in info.configs.items()})
    return entries


def _static_entries(broker: Broker) -> dict[str, tuple[str, int]]:
    host, _port = broker.config.advertised
    return {
        "broker.id": (str(broker.config.node_id), SOURCE_STATIC_BROKER),
        "advertised.listeners": (f"PLAINTEXT://{host}:{broker.port}", SOURCE_STATIC_BROKER),
        "log.dirs": (str(broker.config.data_dir), SOURCE_STATIC_BROKER),
    }


def _cluster_entries(broker: Broker) -> dict[str, tuple[str, int]]:
    """The topology the broker enforces; keys never set show as defaults."""
    explicit = broker.topics.cluster_configs
    return {
        name: (value, SOURCE_DYNAMIC_DEFAULT_BROKER if name in explicit else SOURCE_DEFAULT)
        for name, value in broker.topology.configs().items()
    }


def _refusal(access: Access | None, resource: Any, topic: Check, cluster: Check) -> int:
    """The ACL check for a config resource: the topic's own, or the cluster's for a broker
    resource (any broker, or the cluster-wide default). The error, or 0."""
    if access is None:
        return 0
    if resource.resource_type == BROKER_RESOURCE:
        return 0 if access.allows(cluster) else cluster.error
    if resource.resource_type == TOPIC_RESOURCE:
        return 0 if access.allows(topic, resource.resource_name) else topic.error
    return 0  # refused later as an unknown resource type


def _describe(broker: Broker, build: MessageBuilder, resource: Any, access: Access | None) -> Any:
    def failed(error: int, message: str | None) -> Any:
        return build.make(
            "DescribeConfigsResult",
            error_code=error,
            error_message=message,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            configs=(),
        )

    if error := _refusal(access, resource, DESCRIBE_TOPIC_CONFIGS, DESCRIBE_CLUSTER_CONFIGS):
        return failed(error, None)
    try:
        entries = _entries(broker, resource)
    except KeyError:
        return failed(
            ErrorCode.unknown_topic_or_partition, f"unknown topic {resource.resource_name!r}"
        )
    wanted = resource.configuration_keys
    configs = tuple(
        build.make(
            "DescribeConfigsResourceResult",
            name=name,
            value=value,
            read_only=source == SOURCE_STATIC_BROKER,
            config_source=source,
            is_default=source == SOURCE_DEFAULT,
            is_sensitive=False,
            synonyms=(),
        )
        for name, (value, source) in sorted(entries.items())
        if wanted is None or name in wanted
    )
    return build.make(
        "DescribeConfigsResult",
        error_code=0,
        error_message=None,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
        configs=configs,
    )


@handles(ApiKey.DESCRIBE_CONFIGS)
async def describe_configs(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DESCRIBE_CONFIGS, request.header.api_version)
    access = broker.access(info)
    results = tuple(_describe(broker, build, r, access) for r in request.body.resources)
    return build.make("DescribeConfigsResponse", throttle_time=0, results=results)


def _apply(current: dict[str, str], change: Any) -> None:
    name, value = change.name, change.value or ""
    if change.config_operation == OP_SET:
        current[name] = value
    elif change.config_operation == OP_DELETE:
        current.pop(name, None)
    elif change.config_operation in (OP_APPEND, OP_SUBTRACT):
        base = current.get(name, TOPIC_CONFIG_DEFAULTS.get(name, ""))
        items = [item for item in base.split(",") if item]
        if change.config_operation == OP_APPEND:
            items += [item for item in value.split(",") if item and item not in items]
        else:
            items = [item for item in items if item not in value.split(",")]
        current[name] = ",".join(items)
    else:
        raise ValueError(f"unknown config operation {change.config_operation}")


async def _alter_cluster(
    broker: Broker, resource: Any, validate_only: bool
) -> tuple[int, str | None]:
    if resource.resource_name != CLUSTER_RESOURCE_NAME:
        return ErrorCode.invalid_request, 'only the cluster resource (broker "") can be altered'
    changes: dict[str, str | None] = {}
    for change in resource.configs:
        if change.name not in CLUSTER_CONFIG_DEFAULTS:
            return ErrorCode.invalid_config, f"unknown cluster config {change.name!r}"
        if change.config_operation == OP_SET:
            changes[change.name] = change.value or ""
        elif change.config_operation == OP_DELETE:
            changes[change.name] = None
        else:
            return ErrorCode.invalid_config, f"{change.name} is not a list: use SET or DELETE"
    try:
        await broker.set_cluster_configs(changes, validate_only=validate_only)
    except ValueError as exc:
        return ErrorCode.invalid_config, str(exc)
    except TopicError as exc:
        return exc.error_code, exc.message
    return ErrorCode.none, None


async def _alter(broker: Broker, resource: Any, validate_only: bool) -> tuple[int, str | None]:
    if resource.resource_type == BROKER_RESOURCE:
        return await _alter_cluster(broker, resource, validate_only)
    if resource.resource_type != TOPIC_RESOURCE:
        return ErrorCode.invalid_request, "only topic and cluster configs can be altered"
    info = broker.topics.get(resource.resource_name)
    if info is None:
        return ErrorCode.unknown_topic_or_partition, f"unknown topic {resource.resource_name!r}"
    updated = dict(info.configs)
    try:
        for change in resource.configs:
            known = change.name in TOPIC_CONFIG_DEFAULTS or change.name in links.LINK_TOPIC_CONFIGS
            if not known:
                raise ValueError(f"unknown topic config {change.name!r}")
            _apply(updated, change)
        LogConfig.from_topic_configs(updated)
        links.check_topic_configs(updated)
        if not validate_only:
            await broker.set_topic_configs(info.name, updated)
    except ValueError as exc:
        return ErrorCode.invalid_config, str(exc)
    except TopicError as exc:
        return exc.error_code, exc.message
    return ErrorCode.none, None


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.INCREMENTAL_ALTER_CONFIGS, request.header.api_version)
    access = broker.access(info)
    responses = []
    for resource in request.body.resources:
        if refused := _refusal(access, resource, ALTER_TOPIC_CONFIGS, ALTER_CLUSTER_CONFIGS):
            error, message = refused, None
        else:
            error, message = await _alter(broker, resource, request.body.validate_only)
        responses.append(
            build.make(
                "AlterConfigsResourceResponse",
                error_code=error,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
        )
    return build.make(
        "IncrementalAlterConfigsResponse", throttle_time=0, responses=tuple(responses)
    )
