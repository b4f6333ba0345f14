"""Kafka's rules for DescribeUserScramCredentials and AlterUserScramCredentials, as pure
functions over what the store holds (after KRaft's `ScramControlManager` and `ScramImage`).

Alter:
* a user may appear once per request, in deletions and upsertions together; a second
  mention fails that user with DUPLICATE_RESOURCE;
* an empty user name or a bad credential is UNACCEPTABLE_CREDENTIAL (iterations outside
  4096..16384 — Kafka's bounds —, or an empty salt or salted password);
* a mechanism other than SCRAM-SHA-256 (1) / SCRAM-SHA-512 (2) is UNSUPPORTED_SASL_MECHANISM;
* deleting a credential that does not exist is RESOURCE_NOT_FOUND;
* users that pass become metadata records, applied together; the others are not touched.

An upsertion carries the salt and the *salted* password (the client ran PBKDF2); the
record keeps only StoredKey and ServerKey derived from it, never what was sent.

Describe: no users (null or empty) means every user; a user named twice is
DUPLICATE_RESOURCE; an unknown one RESOURCE_NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from broker.kraft.metadata import DeleteScramCredential, SetScramCredential, scram_record
from broker.protocol.errors import ErrorCode
from broker.security.scram import (
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    ScramMechanism,
    credential_from_salted,
)

DUPLICATE = "A user credential cannot be altered twice in the same request"
DESCRIBE_DUPLICATE = (
    "Cannot describe SCRAM credentials for the same user twice in a single request: "
)
DESCRIBE_UNKNOWN = "Attempt to describe a user credential that does not exist: "
DELETE_UNKNOWN = "Attempt to delete a user credential that does not exist"


@dataclass(frozen=True)
class Upsertion:
    user: str
    mechanism: int  # Kafka's ScramMechanism type
    iterations: int
    salt: bytes
    salted_password: bytes

    def __repr__(self) -> str:  # never print key material
        return f"Upsertion({self.user!r}, mechanism={self.mechanism}, i={self.iterations})"


@dataclass(frozen=True)
class Deletion:
    user: str
    mechanism: int


@dataclass(frozen=True)
class UserResult:
    user: str
    error_code: int = ErrorCode.none
    error_message: str | None = None


@dataclass(frozen=True)
class Described:
    user: str
    error_code: int = ErrorCode.none
    error_message: str | None = None
    credentials: tuple[tuple[int, int], ...] = ()  # (mechanism type, iterations)


ScramChange = SetScramCredential | DeleteScramCredential
Exists = Callable[[ScramMechanism, str], bool]


def alter_credentials(
    deletions: Sequence[Deletion], upsertions: Sequence[Upsertion], exists: Exists
) -> tuple[list[UserResult], list[ScramChange]]:
    """One result per user named (in order of first mention), and the records for the
    users that passed. `exists(mechanism, user)`: does that credential exist now?"""
    changes: dict[str, ScramChange] = {}
    errors: dict[str, UserResult] = {}
    order: list[str] = []
    items: list[Deletion | Upsertion] = [*deletions, *upsertions]
    for item in items:
        user = item.user
        if user not in order:
            order.append(user)
        if user in errors:
            continue
        if changes.pop(user, None) is not None:
            errors[user] = UserResult(user, ErrorCode.duplicate_resource, DUPLICATE)
            continue
        outcome = _deletion(item, exists) if isinstance(item, Deletion) else _upsertion(item)
        if isinstance(outcome, UserResult):
            errors[user] = outcome
        else:
            changes[user] = outcome
    results = [errors.get(user, UserResult(user)) for user in order]
    return results, [changes[user] for user in order if user in changes]


def _mechanism(user: str, kafka_type: int) -> ScramMechanism | UserResult:
    if not user:
        return UserResult(user, ErrorCode.unacceptable_credential, "Username must not be empty")
    mechanism = ScramMechanism.of_type(kafka_type)
    if mechanism is None:
        return UserResult(user, ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
    return mechanism


def _deletion(item: Deletion, exists: Exists) -> ScramChange | UserResult:
    mechanism = _mechanism(item.user, item.mechanism)
    if isinstance(mechanism, UserResult):
        return mechanism
    if not exists(mechanism, item.user):
        return UserResult(item.user, ErrorCode.resource_not_found, DELETE_UNKNOWN)
    return DeleteScramCredential(item.user, mechanism.kafka_type)


def _upsertion(item: Upsertion) -> ScramChange | UserResult:
    mechanism = _mechanism(item.user, item.mechanism)
    if isinstance(mechanism, UserResult):
        return mechanism
    if item.iterations < MIN_ITERATIONS:
        return UserResult(item.user, ErrorCode.unacceptable_credential, "Too few iterations")
    if item.iterations > MAX_ITERATIONS:
        return UserResult(item.user, ErrorCode.unacceptable_credential, "Too many iterations")
    if not item.salt or not item.salted_password:
        return UserResult(
            item.user, ErrorCode.unacceptable_credential, "Salt and salted password are required"
        )
    credential = credential_from_salted(mechanism, item.salted_password, item.salt, item.iterations)
    return scram_record(item.user, mechanism, credential)


def describe_credentials(
    users: Sequence[str] | None, known: Mapping[str, Sequence[tuple[ScramMechanism, int]]]
) -> list[Described]:
    """What DescribeUserScramCredentials answers for `users` (None or empty: all)."""
    if not users:
        return [_described(user, known[user]) for user in sorted(known)]
    results = []
    for user in dict.fromkeys(users):
        if users.count(user) > 1:
            results.append(Described(user, ErrorCode.duplicate_resource, DESCRIBE_DUPLICATE + user))
        elif user not in known:
            results.append(Described(user, ErrorCode.resource_not_found, DESCRIBE_UNKNOWN + user))
        else:
            results.append(_described(user, known[user]))
    return results


def _described(user: str, credentials: Sequence[tuple[ScramMechanism, int]]) -> Described:
    return Described(user, credentials=tuple((m.kafka_type, i) for m, i in credentials))
