"""SCRAM user administration, Kafka's rules (KRaft's ScramControlManager / ScramImage), and
the controller's all-or-nothing check of security records."""

from __future__ import annotations

from dataclasses import replace

from broker.kraft.controller import logic
from broker.kraft.metadata import (
    CreateAcl,
    DeleteAcl,
    DeleteScramCredential,
    MetadataImage,
    RegisterBroker,
    SetScramCredential,
    scram_record,
)
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclBinding, Operation, PatternType, Permission, ResourceType
from broker.security.scram import ScramClient, ScramMechanism, ScramServer, make_credential
from broker.security.scram_admin import (
    Deletion,
    Upsertion,
    UserResult,
    alter_credentials,
    describe_credentials,
)

SHA256, SHA512 = ScramMechanism.SHA_256, ScramMechanism.SHA_512


def upsert(
    user: str, mechanism: int = 2, iterations: int = 4096, password: str = "pw"
) -> Upsertion:
    m = ScramMechanism.of_type(mechanism) or SHA512
    salt = f"salt-of-{user}".encode()
    return Upsertion(user, mechanism, iterations, salt, m.salted_password(password, salt, 4096))


def nothing(mechanism: ScramMechanism, user: str) -> bool:
    return False


def test_an_upsertion_stores_keys_from_the_salted_password_and_they_authenticate() -> None:
    results, records = alter_credentials([], [upsert("alice", password="wonderland")], nothing)
    assert results == [UserResult("alice")]
    [record] = records
    assert isinstance(record, SetScramCredential)
    image = MetadataImage()
    image.apply(record)
    server = ScramServer(SHA512, lambda u: image.scram_credential(SHA512, u), "srv")
    client = ScramClient(SHA512, "alice", "wonderland", "cli")
    client.verify(server.final(client.final(server.first(client.first()))))
    assert server.user == "alice"
    assert "wonderland" not in repr(record) and "salted" not in repr(upsert("alice"))


def test_kafkas_refusals_fail_only_their_user() -> None:
    exists = {("carol", SHA256)}
    results, records = alter_credentials(
        [Deletion("carol", 1), Deletion("dave", 1), Deletion("erin", 7)],
        [
            upsert("alice"),
            upsert("bob", iterations=4095),
            upsert("frank", iterations=16385),
            upsert("", mechanism=1),
            upsert("gina", mechanism=0),
            replace(upsert("hank"), salt=b""),
            upsert("alice", mechanism=1),  # alice a second time
            upsert("carol"),  # carol deleted above: a second mention too
        ],
        lambda m, u: (u, m) in exists,
    )
    by_user = {r.user: r.error_code for r in results}
    assert by_user == {
        "carol": ErrorCode.duplicate_resource,
        "dave": ErrorCode.resource_not_found,
        "erin": ErrorCode.unsupported_sasl_mechanism,
        "alice": ErrorCode.duplicate_resource,
        "bob": ErrorCode.unacceptable_credential,
        "frank": ErrorCode.unacceptable_credential,
        "": ErrorCode.unacceptable_credential,
        "gina": ErrorCode.unsupported_sasl_mechanism,
        "hank": ErrorCode.unacceptable_credential,
    }
    assert [r.user for r in results][:3] == ["carol", "dave", "erin"]  # first mention order
    assert records == []


def test_deletions_and_upsertions_of_different_users_go_together() -> None:
    results, records = alter_credentials(
        [Deletion("carol", 1)], [upsert("alice", 1)], lambda m, u: (u, m) == ("carol", SHA256)
    )
    assert [r.error_code for r in results] == [0, 0]
    assert records[0] == DeleteScramCredential("carol", 1)
    assert isinstance(records[1], SetScramCredential) and records[1].user == "alice"


def test_describe_answers_all_users_or_the_ones_asked_for() -> None:
    known = {"alice": [(SHA256, 4096), (SHA512, 8192)], "bob": [(SHA512, 4096)]}
    everyone = describe_credentials(None, known)
    assert [(d.user, d.credentials) for d in everyone] == [
        ("alice", ((1, 4096), (2, 8192))),
        ("bob", ((2, 4096),)),
    ]
    assert describe_credentials([], known) == everyone
    asked = describe_credentials(["bob", "zed", "alice", "alice"], known)
    assert [(d.user, d.error_code) for d in asked] == [
        ("bob", ErrorCode.none),
        ("zed", ErrorCode.resource_not_found),
        ("alice", ErrorCode.duplicate_resource),
    ]
    assert asked[1].error_message.endswith("zed")  # type: ignore[union-attr]


def test_the_controller_applies_security_records_all_or_none() -> None:
    image = MetadataImage()
    image.apply(RegisterBroker(1, "inc", "127.0.0.1", 9092, 1))
    acl = AclBinding(
        ResourceType.TOPIC, "orders", PatternType.LITERAL, "User:alice", "*",
        Operation.READ, Permission.ALLOW,
    )  # fmt: skip
    user = scram_record("alice", SHA512, make_credential(SHA512, "pw", b"salt", 4096))
    good = [CreateAcl.of(acl), user]
    assert logic.alter_security(image, good) == good
    for bad in (
        [CreateAcl.of(acl), DeleteAcl.of(replace(acl, principal="User:bob"))],
        [user, DeleteScramCredential("alice", 1)],  # alice has no SHA-256 credential
        [user, RegisterBroker(2, "inc", "127.0.0.1", 9093, 2)],  # not a security record
    ):
        decision = logic.alter_security(image, bad)
        assert isinstance(decision, logic.Rejected), bad
        assert decision.error_code == ErrorCode.invalid_request
        assert "record 1" in decision.message
    assert image.acls == frozenset() and image.scram_users() == {}  # the image untouched
