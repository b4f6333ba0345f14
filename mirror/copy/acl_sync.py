"""Copy a flow's topic ACLs onto its remote topics (the I/O around mirror/copy/acl_plan.py).

Run by the flow's member 0 at the cadence of topic and config sync: DescribeAcls on the
source for topic ACLs, DescribeAcls on the target, CreateAcls for what the plan says is
missing. A cluster without an authorizer (SECURITY_DISABLED) has no ACLs to copy or none to
hold them, so the sync then does nothing, quietly. The worker's principal needs DESCRIBE on
the source's cluster and ALTER on the target's (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from broker.client import KafkaClient, KafkaError
from broker.client.acls import create_acls, describe_acls
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclBinding, AclFilter, ResourceType
from mirror.copy.acl_plan import covers_mirrored, plan_acl_sync
from mirror.copy.policy import ReplicationPolicy

log = logging.getLogger(__name__)

TOPIC_ACLS = AclFilter(resource_type=ResourceType.TOPIC)


async def sync_topic_acls(
    source: KafkaClient,
    target: KafkaClient,
    mirrored: Collection[str],
    policy: ReplicationPolicy,
) -> list[AclBinding]:
    """Create on the target the remote form of the source's ACLs of the `mirrored` topics;
    the bindings created. KafkaError when a cluster refuses (other than SECURITY_DISABLED)."""
    if not mirrored:
        return []
    try:
        source_acls = await describe_acls(source, TOPIC_ACLS)
        if not any(covers_mirrored(binding, mirrored) for binding in source_acls):
            return []
        target_acls = await describe_acls(target, TOPIC_ACLS)
    except KafkaError as exc:
        if exc.code == ErrorCode.security_disabled:
            return []
        raise
    missing = plan_acl_sync(source_acls, target_acls, mirrored, policy)
    if missing:
        await create_acls(target, missing)
        log.info("synced %d topic ACLs: %s", len(missing), "; ".join(map(_shown, missing)))
    return missing


def _shown(binding: AclBinding) -> str:
    """A binding as kafka-acls lists it, for the log."""
    return (
        f"{binding.principal} from {binding.host} {binding.permission.name} "
        f"{binding.operation.name} on {binding.pattern_type.name} TOPIC {binding.resource_name}"
    )
