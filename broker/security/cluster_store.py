"""A multi-broker region's ACLs and SCRAM users as one broker sees them: its metadata image.

The controller quorum replicates the metadata log to every broker (broker/replication/
cluster.py), so each broker decides on the same ACLs once it has caught up, and they survive
any broker's or controller's restart. Changing them goes through the quorum: the controllers'
AlterSecurity RPC validates the records against the committed image, all or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from broker.security.acl import AclBinding
from broker.security.scram import ScramCredential, ScramMechanism

if TYPE_CHECKING:
    from broker.replication.cluster import ClusterLink
    from broker.security.store import SecurityRecord


class ClusterSecurityStore:
    def __init__(self, link: ClusterLink) -> None:
        self._link = link

    def acls(self) -> frozenset[AclBinding]:
        return self._link.image.acls

    def scram_credential(self, mechanism: ScramMechanism, user: str) -> ScramCredential | None:
        return self._link.image.scram_credential(mechanism, user)

    def scram_users(self) -> dict[str, list[tuple[ScramMechanism, int]]]:
        return self._link.image.scram_users()

    async def alter(self, records: Sequence[SecurityRecord]) -> None:
        """Through the controllers' AlterSecurity RPC; returns once this broker's image
        holds the change (ClusterLink.alter_security)."""
        await self._link.alter_security(records)
