"""DescribeAcls and CreateAcls from our client, in the pure model of broker/security/acl.py.

Used by the mirror's ACL sync (mirror/copy/acl_sync.py), which reads one cluster's topic
ACLs and writes their remote form on another; either may be any Kafka-compatible cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.client.client import KafkaClient, check
from broker.protocol.messages import MessageBuilder
from broker.protocol.versions import ApiKey
from broker.security.acl import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)


async def describe_acls(client: KafkaClient, selected: AclFilter) -> list[AclBinding]:
    """The bindings the cluster holds that `selected` matches; KafkaError when refused
    (SECURITY_DISABLED from a cluster without an authorizer)."""

    def build(b: MessageBuilder, version: int) -> Any:
        return b.make(
            "DescribeAclsRequest",
            resource_type_filter=selected.resource_type,
            resource_name_filter=selected.resource_name,
            pattern_type_filter=selected.pattern_type,
            principal_filter=selected.principal,
            host_filter=selected.host,
            operation=selected.operation,
            permission_type=selected.permission,
        )

    response = await client.call(ApiKey.DESCRIBE_ACLS, build)
    check(response.error_code, "DescribeAcls", response.error_message)
    return [
        AclBinding(
            ResourceType(resource.resource_type),
            resource.resource_name,
            PatternType(resource.pattern_type),
            acl.principal,
            acl.host,
            Operation(acl.operation),
            Permission(acl.permission_type),
        )
        for resource in response.resources
        for acl in resource.acls
    ]


async def create_acls(client: KafkaClient, bindings: Sequence[AclBinding]) -> None:
    """Create every binding (one that exists already is no change); KafkaError on the first
    refused."""
    if not bindings:
        return

    def build(b: MessageBuilder, version: int) -> Any:
        creations = tuple(
            b.make(
                "AclCreation",
                resource_type=binding.resource_type,
                resource_name=binding.resource_name,
                resource_pattern_type=binding.pattern_type,
                principal=binding.principal,
                host=binding.host,
                operation=binding.operation,
                permission_type=binding.permission,
            )
            for binding in bindings
        )
        return b.make("CreateAclsRequest", creations=creations)

    response = await client.call(ApiKey.CREATE_ACLS, build)
    for binding, result in zip(bindings, response.results, strict=True):
        check(result.error_code, f"CreateAcls {binding}", result.error_message)
