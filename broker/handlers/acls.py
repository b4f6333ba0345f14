"""CreateAcls, DescribeAcls and DeleteAcls over the broker's SecurityStore.

As Kafka's `AclApis`: the requester needs ALTER (create, delete) or DESCRIBE (describe) on
the cluster; a broker with no authorizer answers SECURITY_DISABLED; a binding or filter
Kafka would refuse is answered INVALID_REQUEST with the reason, on its own creation or
filter. The accepted changes of one request are stored all together or not at all
(CreateAcl/DeleteAcl metadata records through `SecurityStore.alter`), so a restart or a
controller failover finds them all or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.kraft.metadata import CreateAcl, DeleteAcl, MetadataError
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import MessageBuilder, response_builder
from broker.protocol.versions import ApiKey
from broker.security.acl import (
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from broker.security.authz import ALTER_CLUSTER, DESCRIBE_CLUSTER, Check
from broker.security.store import StoreUnavailable

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.security.store import SecurityRecord
    from broker.server import ConnectionInfo

Outcome = tuple[int, str | None]  # error code, message
OK: Outcome = (ErrorCode.none, None)
NO_AUTHORIZER = "no authorizer is configured on the broker (regionlink broker --authorizer)"


def _refusal(broker: Broker, info: ConnectionInfo, check: Check) -> Outcome:
    """Why the whole request is refused, Kafka's way, or OK."""
    access = broker.access(info)
    if access is None:
        return ErrorCode.security_disabled, NO_AUTHORIZER
    if not access.allows(check):
        return check.error, f"{info.principal} may not {check}"
    return OK


def _binding(creation: Any) -> AclBinding:
    """The binding a creation asks for; AclError (or ValueError for unknown enum values)."""
    return AclBinding(
        ResourceType(creation.resource_type),
        creation.resource_name,
        PatternType(creation.resource_pattern_type),
        creation.principal,
        creation.host,
        Operation(creation.operation),
        Permission(creation.permission_type),
    ).validate()


def _filter(body: Any) -> AclFilter:
    """A DescribeAcls request or DeleteAcls filter as an AclFilter; AclError if Kafka would
    refuse it (an UNKNOWN anywhere), ValueError for values no enum has."""
    selected = AclFilter(
        ResourceType(body.resource_type_filter),
        body.resource_name_filter,
        PatternType(body.pattern_type_filter),
        body.principal_filter,
        body.host_filter,
        Operation(body.operation),
        Permission(body.permission_type),
    )
    unknown = (
        ResourceType.UNKNOWN,
        PatternType.UNKNOWN,
        Operation.UNKNOWN,
        Permission.UNKNOWN,
    )
    if any(
        value in unknown
        for value in (
            selected.resource_type,
            selected.pattern_type,
            selected.operation,
            selected.permission,
        )
    ):
        raise AclError("a filter has no UNKNOWN field")
    return selected


async def _store(broker: Broker, records: Sequence[SecurityRecord]) -> Outcome:
    """Apply the records all together; the error for each change they carry, or OK."""
    if not records:
        return OK
    try:
        await broker.security.alter(records)
    except StoreUnavailable as exc:  # no controller answered: it may or may not happen
        return exc.error_code, exc.message
    except MetadataError as exc:  # refused on the committed metadata (changed meanwhile)
        return ErrorCode.unknown_server_error, f"not applied: {exc}"
    return OK


@handles(ApiKey.CREATE_ACLS)
async def create_acls(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.CREATE_ACLS, request.header.api_version)
    creations = request.body.creations
    refused = _refusal(broker, info, ALTER_CLUSTER)
    outcomes: list[Outcome] = [refused] * len(creations)
    if refused == OK:
        wanted: dict[int, AclBinding] = {}
        for index, creation in enumerate(creations):
            try:
                wanted[index] = _binding(creation)
            except (AclError, ValueError) as exc:
                outcomes[index] = (ErrorCode.invalid_request, str(exc))
        present = broker.security.acls()
        new = sorted({b for b in wanted.values() if b not in present})  # existing: no-op
        stored = await _store(broker, [CreateAcl.of(b) for b in new])
        for index in wanted:
            outcomes[index] = stored
    results = tuple(
        build.make("AclCreationResult", error_code=error, error_message=message)
        for error, message in outcomes
    )
    return build.make("CreateAclsResponse", throttle_time=0, results=results)


@handles(ApiKey.DESCRIBE_ACLS)
async def describe_acls(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DESCRIBE_ACLS, request.header.api_version)
    error, message = _refusal(broker, info, DESCRIBE_CLUSTER)
    resources: tuple[Any, ...] = ()
    if error == ErrorCode.none:
        try:
            selected = _filter(request.body)
        except (AclError, ValueError) as exc:
            error, message = ErrorCode.invalid_request, str(exc)
        else:
            resources = _described(
                build, [b for b in broker.security.acls() if selected.matches(b)]
            )
    return build.make(
        "DescribeAclsResponse",
        throttle_time=0,
        error_code=error,
        error_message=message,
        resources=resources,
    )


def _described(build: MessageBuilder, bindings: list[AclBinding]) -> tuple[Any, ...]:
    """Bindings grouped by resource pattern, as DescribeAcls answers them."""
    by_resource: dict[tuple[ResourceType, str, PatternType], list[AclBinding]] = {}
    for binding in sorted(bindings):
        key = (binding.resource_type, binding.resource_name, binding.pattern_type)
        by_resource.setdefault(key, []).append(binding)
    return tuple(
        build.make(
            "DescribeAclsResource",
            resource_type=resource_type,
            resource_name=name,
            pattern_type=pattern_type,
            acls=tuple(
                build.make(
                    "AclDescription",
                    principal=b.principal,
                    host=b.host,
                    operation=b.operation,
                    permission_type=b.permission,
                )
                for b in group
            ),
        )
        for (resource_type, name, pattern_type), group in by_resource.items()
    )


@handles(ApiKey.DELETE_ACLS)
async def delete_acls(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.DELETE_ACLS, request.header.api_version)
    filters = request.body.filters
    refused = _refusal(broker, info, ALTER_CLUSTER)
    outcomes: list[Outcome] = [refused] * len(filters)
    matched: list[list[AclBinding]] = [[] for _ in filters]
    if refused == OK:
        present = sorted(broker.security.acls())
        for index, body in enumerate(filters):
            try:
                selected = _filter(body)
            except (AclError, ValueError) as exc:
                outcomes[index] = (ErrorCode.invalid_request, str(exc))
                continue
            matched[index] = [b for b in present if selected.matches(b)]
        doomed = sorted({b for bindings in matched for b in bindings})
        stored = await _store(broker, [DeleteAcl.of(b) for b in doomed])
        for index in range(len(filters)):
            if outcomes[index] == OK:
                outcomes[index] = stored
                if stored != OK:
                    matched[index] = []
    results = tuple(
        build.make(
            "DeleteAclsFilterResult",
            error_code=error,
            error_message=message,
            matching_acls=tuple(_deleted(build, b) for b in bindings),
        )
        for (error, message), bindings in zip(outcomes, matched, strict=True)
    )
    return build.make("DeleteAclsResponse", throttle_time=0, filter_results=results)


def _deleted(build: MessageBuilder, binding: AclBinding) -> Any:
    return build.make(
        "DeleteAclsMatchingAcl",
        error_code=ErrorCode.none,
        error_message=None,
        resource_type=binding.resource_type,
        resource_name=binding.resource_name,
        pattern_type=binding.pattern_type,
        principal=binding.principal,
        host=binding.host,
        operation=binding.operation,
        permission_type=binding.permission,
    )
