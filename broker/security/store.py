"""Where a region keeps its ACLs and SCRAM credentials: the metadata, in both kinds of region.

A multi-broker region holds them in the KRaft metadata image, which the controller quorum
replicates (the cluster store, broker/replication/cluster.py). A single-node region keeps
its own metadata: `LocalSecurityStore` applies the same records (broker/kraft/metadata.py)
to a private image and persists them as one JSON file replaced atomically, so a crash
leaves the old or the new set and a restart finds them again.

Handlers see only `SecurityStore`: what is allowed and who may log in, and `alter` to
change it with metadata records (validated as the controller validates them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeAlias

from broker.kraft.metadata import (
    CreateAcl,
    DeleteAcl,
    DeleteScramCredential,
    MetadataError,
    MetadataImage,
    SetScramCredential,
    decode,
    encode,
)
from broker.security.acl import AclBinding
from broker.security.scram import ScramCredential, ScramMechanism

SecurityRecord: TypeAlias = CreateAcl | DeleteAcl | SetScramCredential | DeleteScramCredential
SECURITY_RECORDS = (CreateAcl, DeleteAcl, SetScramCredential, DeleteScramCredential)
STORE_FILE = "security.json"


class StoreUnavailable(Exception):
    """A change could not be made or confirmed now (no controller reached, or not applied
    in time): it may or may not happen. `error_code` is the Kafka error to answer."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class SecurityStore(Protocol):
    def acls(self) -> frozenset[AclBinding]: ...

    def scram_credential(self, mechanism: ScramMechanism, user: str) -> ScramCredential | None: ...

    def scram_users(self) -> dict[str, list[tuple[ScramMechanism, int]]]: ...

    async def alter(self, records: Sequence[SecurityRecord]) -> None:
        """Apply all the records or none: MetadataError (naming the first bad one) when
        they are refused, StoreUnavailable when the outcome is unknown."""
        ...


class LocalSecurityStore:
    """A single-node region's ACLs and users, in `<data dir>/security.json`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STORE_FILE
        self._image = MetadataImage()
        if self.path.exists():
            for text in json.loads(self.path.read_text())["records"]:
                self._image.apply(decode(text.encode()))

    def acls(self) -> frozenset[AclBinding]:
        return self._image.acls

    def scram_credential(self, mechanism: ScramMechanism, user: str) -> ScramCredential | None:
        return self._image.scram_credential(mechanism, user)

    def scram_users(self) -> dict[str, list[tuple[ScramMechanism, int]]]:
        return self._image.scram_users()

    async def alter(self, records: Sequence[SecurityRecord]) -> None:
        changed = self._image.copy()
        for record in records:
            if not isinstance(record, SECURITY_RECORDS):
                raise MetadataError(f"not a security record: {record!r}")
            changed.apply(record)
        self._persist(changed)
        self._image = changed

    def _persist(self, image: MetadataImage) -> None:
        kept = [encode(r).decode() for r in image.records() if isinstance(r, SECURITY_RECORDS)]
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"records": kept}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
