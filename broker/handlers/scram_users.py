"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51): SCRAM users, managed
by admin clients (`kafka-configs --alter --add-config 'SCRAM-SHA-512=[...]'`, confluent-kafka's
`AdminClient.alter_user_scram_credentials`) and kept in the region's SecurityStore — the
metadata, so every broker of a region sees the same users. Kafka's rules are in
broker/security/scram_admin.py; this module moves them on and off the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.kraft.metadata import MetadataError
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import response_builder
from broker.protocol.versions import ApiKey
from broker.security.authz import ALTER_CLUSTER, DESCRIBE_CLUSTER, allowed
from broker.security.scram_admin import (
    Deletion,
    Upsertion,
    UserResult,
    alter_credentials,
    describe_credentials,
)
from broker.security.store import StoreUnavailable

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo


def cluster_refusal(broker: Broker, info: ConnectionInfo, operation: str) -> str | None:
    """Why the principal may not do `operation` ("ALTER" or "DESCRIBE") on the CLUSTER
    resource — what Kafka asks of these two APIs (broker/security/authz.py) —, or None;
    always None with no authorizer."""
    check = ALTER_CLUSTER if operation == "ALTER" else DESCRIBE_CLUSTER
    if allowed(broker.access(info), check):
        return None
    return f"{info.principal} may not {check}"


@handles(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS)
async def describe_user_scram_credentials(
    broker: Broker, request: Request, info: ConnectionInfo
) -> Any:
    build = response_builder(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, request.header.api_version)
    refused = cluster_refusal(broker, info, "DESCRIBE")
    if refused is not None:
        return build.make(
            "DescribeUserScramCredentialsResponse",
            throttle_time=0,
            error_code=ErrorCode.cluster_authorization_failed,
            error_message=refused,
            results=(),
        )
    users = [u.name for u in request.body.users] if request.body.users else None
    results = tuple(
        build.make(
            "DescribeUserScramCredentialsResult",
            user=d.user,
            error_code=d.error_code,
            error_message=d.error_message,
            credential_infos=tuple(
                build.make("CredentialInfo", mechanism=m, iterations=i) for m, i in d.credentials
            ),
        )
        for d in describe_credentials(users, broker.security.scram_users())
    )
    return build.make(
        "DescribeUserScramCredentialsResponse",
        throttle_time=0,
        error_code=ErrorCode.none,
        error_message=None,
        results=results,
    )


@handles(ApiKey.ALTER_USER_SCRAM_CREDENTIALS)
async def alter_user_scram_credentials(
    broker: Broker, request: Request, info: ConnectionInfo
) -> Any:
    build = response_builder(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, request.header.api_version)
    body = request.body
    deletions = [Deletion(d.name, d.mechanism) for d in body.deletions]
    upsertions = [
        Upsertion(u.name, u.mechanism, u.iterations, u.salt, u.salted_password)
        for u in body.upsertions
    ]
    refused = cluster_refusal(broker, info, "ALTER")
    if refused is not None:
        users = dict.fromkeys([d.user for d in deletions] + [u.user for u in upsertions])
        results = [UserResult(u, ErrorCode.cluster_authorization_failed, refused) for u in users]
    else:
        store = broker.security
        results, records = alter_credentials(
            deletions, upsertions, lambda m, user: store.scram_credential(m, user) is not None
        )
        if records:
            failure = await _apply(broker, records)
            if failure is not None:
                results = [r if r.error_code else UserResult(r.user, *failure) for r in results]
    return build.make(
        "AlterUserScramCredentialsResponse",
        throttle_time=0,
        results=tuple(
            build.make(
                "AlterUserScramCredentialsResult",
                user=r.user,
                error_code=r.error_code,
                error_message=r.error_message,
            )
            for r in results
        ),
    )


async def _apply(broker: Broker, records: list[Any]) -> tuple[int, str] | None:
    """Store the changes together; the error every changed user gets if that failed."""
    try:
        await broker.security.alter(records)
    except MetadataError as exc:  # changed meanwhile by another request
        return int(ErrorCode.unknown_server_error), f"not applied: {exc}"
    except StoreUnavailable as exc:
        return exc.error_code, exc.message
    return None
