"""Which ACLs each request needs: Kafka's checks, request by request.

The rules follow apache/kafka's `KafkaApis.scala` (core/src/main/scala/kafka/server, the
`handle…Request` methods, and `AclApis` for the ACL requests): the operation, the resource it is
checked on, and the error a refusal answers, per partition, topic, group or request as Kafka
answers it. Handlers check the `Check` constants below; `RULES` lists, per request, the same
constants with when they apply and what a refusal does — docs/security.md's table is rendered
from it (`rules_table`), and a test keeps the two equal.

Where regionlink differs from, or adds to, Kafka:

- Produce checks no IDEMPOTENT_WRITE: as in Kafka since KIP-679, an idempotent producer is
  checked once, at InitProducerId (IDEMPOTENT_WRITE on the cluster, or WRITE on any topic).
- LinkAppend and LinkTruncate, the requests by which a link writes this region's mirror topics,
  need CLUSTER_ACTION on the cluster, as a follower's Fetch does: they place batches at offsets
  the link chooses and cut logs, which no producer may do. WRITE on the topic would let any
  producer of a mirror topic rewrite its history, the very thing mirror topics refuse.
- Transactions are not served, so no request checks WRITE on a transactional id beyond
  InitProducerId and Produce; FindCoordinator checks DESCRIBE on one as Kafka does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.protocol.errors import ErrorCode
from broker.security.acl import (
    CLUSTER_NAME,
    Authorizer,
    Operation,
    Request,
    ResourceType,
)


@dataclass(frozen=True)
class Check:
    """One check Kafka makes: `operation` on a resource of `resource_type`, and the error a
    refusal answers."""

    operation: Operation
    resource_type: ResourceType
    error: ErrorCode

    def __str__(self) -> str:
        return f"{self.operation.name} on {self.resource_type.name}"


def _topic(operation: Operation) -> Check:
    return Check(operation, ResourceType.TOPIC, ErrorCode.topic_authorization_failed)


def _group(operation: Operation) -> Check:
    return Check(operation, ResourceType.GROUP, ErrorCode.group_authorization_failed)


def _cluster(operation: Operation) -> Check:
    return Check(operation, ResourceType.CLUSTER, ErrorCode.cluster_authorization_failed)


def _transactional_id(operation: Operation) -> Check:
    return Check(
        operation, ResourceType.TRANSACTIONAL_ID, ErrorCode.transactional_id_authorization_failed
    )


READ_TOPIC = _topic(Operation.READ)
WRITE_TOPIC = _topic(Operation.WRITE)
CREATE_TOPIC = _topic(Operation.CREATE)
DELETE_TOPIC = _topic(Operation.DELETE)
ALTER_TOPIC = _topic(Operation.ALTER)
DESCRIBE_TOPIC = _topic(Operation.DESCRIBE)
DESCRIBE_TOPIC_CONFIGS = _topic(Operation.DESCRIBE_CONFIGS)
ALTER_TOPIC_CONFIGS = _topic(Operation.ALTER_CONFIGS)
READ_GROUP = _group(Operation.READ)
DESCRIBE_GROUP = _group(Operation.DESCRIBE)
CLUSTER_ACTION = _cluster(Operation.CLUSTER_ACTION)
CREATE_CLUSTER = _cluster(Operation.CREATE)
ALTER_CLUSTER = _cluster(Operation.ALTER)
DESCRIBE_CLUSTER = _cluster(Operation.DESCRIBE)
DESCRIBE_CLUSTER_CONFIGS = _cluster(Operation.DESCRIBE_CONFIGS)
ALTER_CLUSTER_CONFIGS = _cluster(Operation.ALTER_CONFIGS)
IDEMPOTENT_WRITE = _cluster(Operation.IDEMPOTENT_WRITE)
WRITE_TRANSACTIONAL_ID = _transactional_id(Operation.WRITE)
DESCRIBE_TRANSACTIONAL_ID = _transactional_id(Operation.DESCRIBE)
# A follower's Fetch: Kafka answers a refusal with TOPIC_AUTHORIZATION_FAILED per partition.
REPLICA_FETCH = Check(
    Operation.CLUSTER_ACTION, ResourceType.CLUSTER, ErrorCode.topic_authorization_failed
)


class Access:
    """One request's view of the authorizer: who asks, and from which address."""

    __slots__ = ("_authorizer", "host", "principal")

    def __init__(self, authorizer: Authorizer, principal: str, host: str) -> None:
        self._authorizer = authorizer
        self.principal = principal
        self.host = host

    def allows(self, check: Check, name: str = CLUSTER_NAME) -> bool:
        """May the principal do the check's operation on the resource `name` (the cluster's
        own name for CLUSTER checks)?"""
        return self._authorizer.authorize(
            Request(self.principal, self.host, check.operation, check.resource_type, name)
        )

    def allows_any(self, check: Check) -> bool:
        """May the principal do the check's operation on some resource of its type?"""
        return self._authorizer.authorize_any(
            self.principal, self.host, check.operation, check.resource_type
        )

    def refused(self, check: Check, names: Iterable[str]) -> frozenset[str]:
        """The names among `names` the check refuses, each name asked once."""
        return frozenset(name for name in set(names) if not self.allows(check, name))


NOTHING: frozenset[str] = frozenset()
"""What no authorizer refuses."""


def refused(access: Access | None, check: Check, names: Iterable[str]) -> frozenset[str]:
    """`Access.refused`, or nothing with no authorizer."""
    return NOTHING if access is None else access.refused(check, names)


def allowed(access: Access | None, check: Check, name: str = CLUSTER_NAME) -> bool:
    """`Access.allows`, or True with no authorizer."""
    return access is None or access.allows(check, name)


# Kafka's `AclEntry.supportedOperations`: what `authorized_operations` reports on, per type.
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[Operation, ...]] = {
    ResourceType.TOPIC: (
        Operation.READ,
        Operation.WRITE,
        Operation.CREATE,
        Operation.DESCRIBE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE),
    ResourceType.CLUSTER: (
        Operation.CREATE,
        Operation.CLUSTER_ACTION,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
        Operation.IDEMPOTENT_WRITE,
        Operation.ALTER,
        Operation.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (Operation.DESCRIBE, Operation.WRITE),
}


def authorized_operations(
    access: Access | None, resource_type: ResourceType, name: str = CLUSTER_NAME
) -> int:
    """The 32-bit field (bit = operation code) of what the principal may do on the resource,
    as Metadata, DescribeGroups and DescribeCluster answer when asked (KIP-430); every
    supported operation with no authorizer, as Kafka answers."""
    operations = SUPPORTED_OPERATIONS[resource_type]
    if access is not None:
        operations = tuple(
            op for op in operations if access.allows(Check(op, resource_type, ErrorCode.none), name)
        )
    return sum(1 << op for op in operations)


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Needs any one of `checks`, on `applies_to`; a refusal answers `error` (None: no
    error, what is refused is left out) as `refusal` says."""

    checks: tuple[Check, ...]
    applies_to: str
    refusal: str
    error: ErrorCode | None


def _rule(
    checks: Check | tuple[Check, ...], applies_to: str, refusal: str, *, filters: bool = False
) -> Rule:
    checks = checks if isinstance(checks, tuple) else (checks,)
    return Rule(checks, applies_to, refusal, None if filters else checks[0].error)


_PER_PARTITION = "for each of its partitions"
_PER_TOPIC = "for that topic"
_PER_GROUP = "for that group"
_WHOLE = "for the whole request"

# Keyed by api key; names as Kafka's (and regionlink's own link requests).
RULES: dict[int, tuple[str, tuple[Rule, ...]]] = {
    0: (
        "Produce",
        (
            _rule(WRITE_TOPIC, "each topic", _PER_PARTITION),
            _rule(WRITE_TRANSACTIONAL_ID, "its transactional id, if it has one", _WHOLE),
        ),
    ),
    1: (
        "Fetch",
        (
            _rule(READ_TOPIC, "each topic, from a consumer", _PER_PARTITION),
            _rule(
                REPLICA_FETCH,
                "the cluster, from a follower (replica id >= 0)",
                "for every partition",
            ),
        ),
    ),
    2: ("ListOffsets", (_rule(DESCRIBE_TOPIC, "each topic", _PER_PARTITION),)),
    3: (
        "Metadata",
        (
            _rule(
                DESCRIBE_TOPIC,
                "each topic",
                "for a named topic; a listing of all topics leaves it out",
            ),
            _rule(
                (CREATE_TOPIC, CREATE_CLUSTER),
                "a missing topic it would auto-create",
                _PER_TOPIC,
            ),
        ),
    ),
    8: (
        "OffsetCommit",
        (
            _rule(READ_GROUP, "the group", _PER_PARTITION + ", before anything else"),
            _rule(READ_TOPIC, "each topic", _PER_PARTITION),
        ),
    ),
    9: (
        "OffsetFetch",
        (
            _rule(DESCRIBE_GROUP, "the group", _WHOLE),
            _rule(
                DESCRIBE_TOPIC,
                "each topic",
                "for each named partition; a fetch of all the group's offsets leaves it out",
            ),
        ),
    ),
    10: (
        "FindCoordinator",
        (
            _rule(DESCRIBE_GROUP, "the group (key type 0)", _WHOLE),
            _rule(DESCRIBE_TRANSACTIONAL_ID, "the transactional id (key type 1)", _WHOLE),
        ),
    ),
    11: ("JoinGroup", (_rule(READ_GROUP, "the group", _WHOLE),)),
    12: ("Heartbeat", (_rule(READ_GROUP, "the group", _WHOLE),)),
    13: ("LeaveGroup", (_rule(READ_GROUP, "the group", _WHOLE),)),
    14: ("SyncGroup", (_rule(READ_GROUP, "the group", _WHOLE),)),
    15: ("DescribeGroups", (_rule(DESCRIBE_GROUP, "each group", _PER_GROUP),)),
    16: (
        "ListGroups",
        (
            _rule(
                (DESCRIBE_CLUSTER, DESCRIBE_GROUP),
                "the cluster, else each group",
                "the list holds only the groups the principal may describe",
                filters=True,
            ),
        ),
    ),
    17: ("SaslHandshake", ()),
    18: ("ApiVersions", ()),
    19: ("CreateTopics", (_rule((CREATE_TOPIC, CREATE_CLUSTER), "each topic", _PER_TOPIC),)),
    20: ("DeleteTopics", (_rule(DELETE_TOPIC, "each topic", _PER_TOPIC),)),
    22: (
        "InitProducerId",
        (
            _rule(
                (IDEMPOTENT_WRITE, WRITE_TOPIC),
                "the cluster, or any one topic, without a transactional id",
                _WHOLE,
            ),
            _rule(WRITE_TRANSACTIONAL_ID, "its transactional id, if it has one", _WHOLE),
        ),
    ),
    23: (
        "OffsetForLeaderEpoch",
        (
            _rule(
                (DESCRIBE_TOPIC, CLUSTER_ACTION),
                "each topic (consumers), or the cluster (followers)",
                _PER_PARTITION,
            ),
        ),
    ),
    29: ("DescribeAcls", (_rule(DESCRIBE_CLUSTER, "the cluster", _WHOLE),)),
    30: ("CreateAcls", (_rule(ALTER_CLUSTER, "the cluster", "for each ACL to create"),)),
    31: ("DeleteAcls", (_rule(ALTER_CLUSTER, "the cluster", "for each filter"),)),
    32: (
        "DescribeConfigs",
        (
            _rule(DESCRIBE_TOPIC_CONFIGS, "each topic resource", "for that resource"),
            _rule(DESCRIBE_CLUSTER_CONFIGS, "each broker resource", "for that resource"),
        ),
    ),
    36: ("SaslAuthenticate", ()),
    37: ("CreatePartitions", (_rule(ALTER_TOPIC, "each topic", _PER_TOPIC),)),
    44: (
        "IncrementalAlterConfigs",
        (
            _rule(ALTER_TOPIC_CONFIGS, "each topic resource", "for that resource"),
            _rule(ALTER_CLUSTER_CONFIGS, "each broker resource", "for that resource"),
        ),
    ),
    50: ("DescribeUserScramCredentials", (_rule(DESCRIBE_CLUSTER, "the cluster", _WHOLE),)),
    51: ("AlterUserScramCredentials", (_rule(ALTER_CLUSTER, "the cluster", "for each user"),)),
    60: ("DescribeCluster", ()),
    10001: ("LinkAppend", (_rule(CLUSTER_ACTION, "the cluster", _PER_PARTITION),)),
    10002: ("LinkTruncate", (_rule(CLUSTER_ACTION, "the cluster", _PER_PARTITION),)),
}


def _needs(rule: Rule) -> str:
    return " or ".join(str(check) for check in rule.checks)


def rules_table() -> str:
    """RULES as the Markdown table docs/security.md carries."""
    lines = [
        "| request | needs | on | a refusal answers |",
        "|---|---|---|---|",
    ]
    for api_key, (name, rules) in sorted(RULES.items()):
        if not rules:
            lines.append(f"| {name} ({api_key}) | nothing | | |")
        for rule in rules:
            error = "" if rule.error is None else f"{rule.error.name.upper()} ({int(rule.error)}) "
            lines.append(
                f"| {name} ({api_key}) | {_needs(rule)} | {rule.applies_to} | "
                f"{error}{rule.refusal} |"
            )
    return "\n".join(lines)
