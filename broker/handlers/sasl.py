"""SaslHandshake (17) and SaslAuthenticate (36): the connection's SASL session answers.

The session (broker/security/sasl.py) decides; the connection driver (broker/server.py)
closes after a failure. On a listener without SASL both are answered ILLEGAL_SASL_STATE,
as Kafka answers them there.

SaslHandshake v0 (Kafka before 1.0) means the client sends the mechanism's tokens as bare
frames rather than SaslAuthenticate requests: the session is told, and the driver then
feeds those frames to it. librdkafka, kafka-python and the Java client use v1 when the
broker advertises it, as we do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import response_builder
from broker.protocol.versions import ApiKey

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo

NOT_SASL = "this listener does not use SASL (its security protocol is {})"


@handles(ApiKey.SASL_HANDSHAKE)
async def sasl_handshake(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.SASL_HANDSHAKE, request.header.api_version)
    session = info.sasl
    if session is None:
        return build.make(
            "SaslHandshakeResponse", error_code=ErrorCode.illegal_sasl_state, mechanisms=()
        )
    raw_tokens = request.header.api_version == 0
    answer = session.handshake(request.body.mechanism, raw_tokens=raw_tokens)
    return build.make(
        "SaslHandshakeResponse", error_code=answer.error_code, mechanisms=session.enabled
    )


@handles(ApiKey.SASL_AUTHENTICATE)
async def sasl_authenticate(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.SASL_AUTHENTICATE, request.header.api_version)
    session = info.sasl
    if session is None:
        return build.make(
            "SaslAuthenticateResponse",
            error_code=ErrorCode.illegal_sasl_state,
            error_message=NOT_SASL.format(info.security_protocol),
            auth_bytes=b"",
            session_lifetime=0,
        )
    answer = session.authenticate(request.body.auth_bytes)
    return build.make(
        "SaslAuthenticateResponse",
        error_code=answer.error_code,
        error_message=answer.error_message,
        auth_bytes=answer.auth_bytes,
        session_lifetime=0,  # no re-authentication (KIP-368) is asked for
    )
