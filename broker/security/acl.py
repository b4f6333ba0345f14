"""Kafka's ACL model and its authorizer's decision, as pure code.

The enums carry Kafka's wire values (`AclOperation`, `ResourceType`, `PatternType`,
`AclPermissionType` in apache/kafka's clients), so CreateAcls / DescribeAcls / DeleteAcls
map onto them directly. The decision follows Kafka's StandardAuthorizer:

- a super user may do anything;
- a DENY that matches (principal or `User:*`, host or `*`, operation or ALL) wins over any ALLOW;
- an ALLOW matches on the operation, ALL, or an operation that implies it (READ, WRITE,
  DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS);
- a resource no ACL names at all is allowed only when `allow.everyone.if.no.acl.found`.

A binding names its resource LITERALly (the name, or `*` for every resource of the type) or
by PREFIX. Filters (DescribeAcls, DeleteAcls) add ANY and MATCH, as Kafka's
`AclBindingFilter` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


CLUSTER_NAME = "kafka-cluster"
"""The one CLUSTER resource's name, as in Kafka."""

IMPLIED_BY: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset(
        {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}
    ),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.ALTER_CONFIGS}),
}


class AclError(ValueError):
    """A binding or filter Kafka would refuse (INVALID_REQUEST with this message)."""


@dataclass(frozen=True, order=True)
class AclBinding:
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str  # "User:alice"
    host: str  # "*" or an address
    operation: Operation
    permission: Permission

    def validate(self) -> AclBinding:
        """Self, when it can be stored; Kafka's rules for CreateAcls."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise AclError("a binding names one resource type")
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise AclError("a binding's pattern type is LITERAL or PREFIXED")
        if self.operation in (Operation.UNKNOWN, Operation.ANY):
            raise AclError("a binding names one operation, or ALL")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise AclError("a binding's permission is ALLOW or DENY")
        if not self.resource_name:
            raise AclError("a binding names its resource")
        if ":" not in self.principal or not self.host:
            raise AclError("a principal is TYPE:NAME (e.g. User:alice) and a host is given")
        if self.resource_type is ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            raise AclError(f"the cluster resource is named {CLUSTER_NAME}")
        return self

    def names(self, resource_type: ResourceType, name: str) -> bool:
        """Does this binding's pattern cover the resource?"""
        if resource_type is not self.resource_type:
            return False
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return self.resource_name in (name, WILDCARD)


@dataclass(frozen=True)
class AclFilter:
    """What DescribeAcls and DeleteAcls select; None and ANY match everything."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def matches(self, binding: AclBinding) -> bool:
        return (
            self._resource_matches(binding)
            and self.principal in (None, binding.principal)
            and self.host in (None, binding.host)
            and self.operation in (Operation.ANY, binding.operation)
            and self.permission in (Permission.ANY, binding.permission)
        )

    def _resource_matches(self, binding: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, binding.resource_type):
            return False
        if self.pattern_type is PatternType.MATCH:
            # Every binding that would apply to the resource named by the filter.
            return self.resource_name is None or binding.names(
                binding.resource_type, self.resource_name
            )
        if self.pattern_type not in (PatternType.ANY, binding.pattern_type):
            return False
        return self.resource_name in (None, binding.resource_name)


@dataclass(frozen=True)
class Request:
    """One check: may `principal`, connected from `host`, do `operation` on the resource?"""

    principal: str
    host: str
    operation: Operation
    resource_type: ResourceType
    resource_name: str


class Authorizer:
    """The decision over a set of bindings; rebuilt when the bindings change."""

    def __init__(
        self,
        bindings: Iterable[AclBinding],
        super_users: Iterable[str] = (),
        allow_if_no_acl: bool = False,
    ) -> None:
        self.bindings = tuple(sorted(set(bindings)))
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._by_type: dict[ResourceType, list[AclBinding]] = {}
        for binding in self.bindings:
            self._by_type.setdefault(binding.resource_type, []).append(binding)

    def authorize(self, request: Request) -> bool:
        if request.principal in self.super_users:
            return True
        named = [
            b
            for b in self._by_type.get(request.resource_type, ())
            if b.names(request.resource_type, request.resource_name)
        ]
        if not named:
            return self.allow_if_no_acl
        applying = [b for b in named if _applies_to(b, request.principal, request.host)]
        if any(_denies(b, request.operation) for b in applying):
            return False
        return any(_allows(b, request.operation) for b in applying)

    def authorize_any(
        self, principal: str, host: str, operation: Operation, resource_type: ResourceType
    ) -> bool:
        """May the principal do `operation` on at least one resource of the type? Kafka's
        `Authorizer.authorizeByResourceType`, which InitProducerId asks (WRITE on any topic
        stands in for IDEMPOTENT_WRITE on the cluster, KIP-679): an ALLOW for exactly the
        operation (or ALL) counts unless a DENY covers everything it names."""
        # A made-up name: super users, a wildcard ALLOW, or no ACL at all (with
        # allow.everyone.if.no.acl.found) answer here, before any DENY is looked at.
        if self.authorize(Request(principal, host, operation, resource_type, "hardcode")):
            return True
        applying = [
            b for b in self._by_type.get(resource_type, ()) if _applies_to(b, principal, host)
        ]
        denied = [b for b in applying if _denies(b, operation)]
        denied_names = {b.resource_name for b in denied if b.pattern_type is PatternType.LITERAL}
        denied_prefixes = [
            b.resource_name for b in denied if b.pattern_type is PatternType.PREFIXED
        ]
        if WILDCARD in denied_names:
            return False
        for binding in applying:
            if binding.permission is not Permission.ALLOW or binding.operation not in (
                operation,
                Operation.ALL,
            ):
                continue
            name = binding.resource_name
            if binding.pattern_type is PatternType.LITERAL and name in denied_names:
                continue
            if not any(name.startswith(prefix) for prefix in denied_prefixes):
                return True
        return False


def _applies_to(binding: AclBinding, principal: str, host: str) -> bool:
    return binding.principal in (principal, WILDCARD_PRINCIPAL) and binding.host in (host, WILDCARD)


def _denies(binding: AclBinding, operation: Operation) -> bool:
    return binding.permission is Permission.DENY and binding.operation in (
        operation,
        Operation.ALL,
    )


def _allows(binding: AclBinding, operation: Operation) -> bool:
    if binding.permission is not Permission.ALLOW:
        return False
    return binding.operation in (operation, Operation.ALL) or binding.operation in IMPLIED_BY.get(
        operation, ()
    )
