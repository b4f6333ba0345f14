"""ApiVersions: what we serve, always with MinVersion 0 advertised (see versions.py)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from broker.handlers import handles
from broker.protocol.codec import Request
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import response_builder
from broker.protocol.versions import SERVED, ApiKey

if TYPE_CHECKING:
    from broker.broker import Broker
    from broker.server import ConnectionInfo


@handles(ApiKey.API_VERSIONS)
async def api_versions(broker: Broker, request: Request, info: ConnectionInfo) -> Any:
    build = response_builder(ApiKey.API_VERSIONS, request.header.api_version)
    keys = tuple(
        build.make(
            "ApiVersion",
            api_key=key,
            min_version=served.advertised_min,
            max_version=served.served_max,
        )
        for key, served in sorted(SERVED.items())
    )
    return build.make(
        "ApiVersionsResponse", error_code=ErrorCode.none, api_keys=keys, throttle_time=0
    )


def unsupported_api_versions_response(correlation_id: int) -> bytes:
    """A v0-layout body with UNSUPPORTED_VERSION and our ranges; the client retries lower.

    Written by hand because the version the client asked for may be one kio has no
    schema for: header v0 + error_code + [api_key, min, max].
    """
    parts = [struct.pack(">ihi", correlation_id, int(ErrorCode.unsupported_version), len(SERVED))]
    for key, served in sorted(SERVED.items()):
        parts.append(struct.pack(">hhh", key, served.advertised_min, served.served_max))
    return b"".join(parts)
