"""Which of the source's topic ACLs a flow copies onto its remote topics (pure).

MirrorMaker 2's `sync.topic.acls.enabled`, with our differences (docs/security.md, "ACL
sync across a link"). A remote topic is written by the mirror alone, so what the target
gets is the *read side* of the source's ACLs, under the remote names:

- ``ALLOW`` READ, DESCRIBE and DESCRIBE_CONFIGS are copied as they are; ``ALLOW ALL``
  becomes ``ALLOW READ`` (as MM2), which implies DESCRIBE;
- no other ``ALLOW`` is copied — WRITE (as MM2), nor CREATE, DELETE, ALTER, ALTER_CONFIGS
  (which MM2 does copy): each would let a principal change a topic only the mirror may change;
- ``DENY`` bindings are copied as they are, whatever their operation: a principal refused at
  the source must not read the copy, and a DENY can only take access away;
- ``LITERAL`` bindings of a mirrored topic, and ``PREFIXED`` bindings whose prefix covers
  at least one mirrored topic (onto the remote prefix: ``ord`` -> ``us-east.ord``); the
  wildcard ``*`` is not copied, since on the target it would name the target's own topics too;
- the principal and host are kept.

Only bindings the target lacks are planned; nothing is ever deleted (the target cannot tell
a binding the sync made from one an operator made).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from broker.security.acl import (
    WILDCARD,
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from mirror.copy.policy import ReplicationPolicy

COPIED_ALLOWS = frozenset({Operation.READ, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS})
"""ALLOW operations copied unchanged: those that only read a topic or its settings."""


def covers_mirrored(binding: AclBinding, mirrored: Collection[str]) -> bool:
    """Is `binding` a topic ACL (not the wildcard) naming one of the `mirrored` topics?"""
    if binding.resource_type is not ResourceType.TOPIC or binding.resource_name == WILDCARD:
        return False
    if binding.pattern_type is PatternType.LITERAL:
        return binding.resource_name in mirrored
    if binding.pattern_type is PatternType.PREFIXED:
        return any(topic.startswith(binding.resource_name) for topic in mirrored)
    return False


def remote_acl(binding: AclBinding, policy: ReplicationPolicy) -> AclBinding | None:
    """The binding the target gets for a source topic binding, or None if it is not copied."""
    operation = binding.operation
    if binding.permission is Permission.ALLOW:
        if operation is Operation.ALL:
            operation = Operation.READ
        elif operation not in COPIED_ALLOWS:
            return None
    elif binding.permission is not Permission.DENY:
        return None
    return AclBinding(
        ResourceType.TOPIC,
        policy.remote_topic(binding.resource_name),  # a prefix maps like a name
        binding.pattern_type,
        binding.principal,
        binding.host,
        operation,
        binding.permission,
    )


def plan_acl_sync(
    source: Iterable[AclBinding],
    target: Iterable[AclBinding],
    mirrored: Collection[str],
    policy: ReplicationPolicy,
) -> list[AclBinding]:
    """The bindings to create on the target (sorted, no duplicates): the remote form of
    every copied source binding of a `mirrored` topic that the target does not hold yet."""
    present = set(target)
    wanted = {
        remote
        for binding in source
        if covers_mirrored(binding, mirrored)
        and (remote := remote_acl(binding, policy)) is not None
    }
    return sorted(wanted - present)
