"""A single-node region's ACLs and users survive a restart; a bad change changes nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import anyio
import pytest

from broker.kraft.metadata import CreateAcl, DeleteAcl, MetadataError, scram_record
from broker.security.acl import AclBinding, Operation, PatternType, Permission, ResourceType
from broker.security.scram import ScramMechanism, make_credential
from broker.security.store import LocalSecurityStore

READ = AclBinding(
    ResourceType.TOPIC, "orders", PatternType.LITERAL, "User:alice", "*",
    Operation.READ, Permission.ALLOW,
)  # fmt: skip
CREDENTIAL = make_credential(ScramMechanism.SHA_256, "wonderland", b"salt", 4096)


def test_changes_persist_and_a_bad_batch_changes_nothing(tmp_path: Path) -> None:
    store = LocalSecurityStore(tmp_path)
    anyio.run(
        store.alter, [CreateAcl.of(READ), scram_record("alice", ScramMechanism.SHA_256, CREDENTIAL)]
    )
    with pytest.raises(MetadataError):
        anyio.run(store.alter, [DeleteAcl.of(READ), DeleteAcl.of(READ)])  # the second fails
    assert store.acls() == {READ}
    again = LocalSecurityStore(tmp_path)
    assert again.acls() == {READ}
    assert again.scram_credential(ScramMechanism.SHA_256, "alice") == CREDENTIAL
    assert again.scram_users() == {"alice": [(ScramMechanism.SHA_256, 4096)]}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert b"wonderland" not in store.path.read_bytes()
