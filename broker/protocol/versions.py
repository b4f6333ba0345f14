"""The (api_key, version) table we serve, and what we advertise in ApiVersions.

We always advertise MinVersion 0: librdkafka 2.0.2 silently disables features
(record batch v2, idempotence, groups) when a version it probes for lies outside
the advertised range. Requests below `codec_min` (kio's oldest schema) are
refused at request time instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from kio.schema.index import api_key_map, schema_name_map


class ApiKey(IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    INCREMENTAL_ALTER_CONFIGS = 44
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_CLUSTER = 60
    # regionlink's own requests from a link to a mirror topic (protocol/link.py): served but
    # never advertised, and absent from the SERVED table below.
    LINK_APPEND = 10001
    LINK_TRUNCATE = 10002


@dataclass(frozen=True)
class VersionRange:
    advertised_min: int
    served_min: int
    served_max: int

    def serves(self, version: int) -> bool:
        return self.served_min <= version <= self.served_max


# Maxima keep the hot APIs non-flexible and free of topic IDs (DESIGN.md).
_MAX_VERSION: dict[ApiKey, int] = {
    ApiKey.PRODUCE: 8,
    ApiKey.FETCH: 11,
    ApiKey.LIST_OFFSETS: 5,
    ApiKey.METADATA: 9,  # librdkafka trusts leader epochs from v9 (broker.protocol.lenient)
    ApiKey.OFFSET_COMMIT: 7,
    ApiKey.OFFSET_FETCH: 7,
    ApiKey.FIND_COORDINATOR: 2,
    ApiKey.JOIN_GROUP: 5,
    ApiKey.HEARTBEAT: 3,
    ApiKey.LEAVE_GROUP: 3,
    ApiKey.SYNC_GROUP: 3,
    ApiKey.DESCRIBE_GROUPS: 4,
    ApiKey.LIST_GROUPS: 4,
    ApiKey.SASL_HANDSHAKE: 1,  # v0: tokens follow as bare frames (broker/handlers/sasl.py)
    ApiKey.API_VERSIONS: 4,
    ApiKey.CREATE_TOPICS: 4,
    ApiKey.DELETE_TOPICS: 4,
    ApiKey.INIT_PRODUCER_ID: 4,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: 4,
    ApiKey.DESCRIBE_ACLS: 3,  # kio reads v1-3 (Kafka 4 dropped v0); librdkafka asks v1
    ApiKey.CREATE_ACLS: 3,
    ApiKey.DELETE_ACLS: 3,
    ApiKey.DESCRIBE_CONFIGS: 1,
    ApiKey.SASL_AUTHENTICATE: 1,  # v2 is flexible; 1 carries session_lifetime_ms
    ApiKey.CREATE_PARTITIONS: 2,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: 1,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: 0,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: 0,
    ApiKey.DESCRIBE_CLUSTER: 0,
}
# OffsetForLeaderEpoch is advertised from 2: v0-1 lack the leader epoch we need.
_ADVERTISED_MIN: dict[ApiKey, int] = {ApiKey.OFFSET_FOR_LEADER_EPOCH: 2}


def _codec_min(api_key: ApiKey) -> int:
    return min(schema_name_map[api_key_map[api_key]])


SERVED: dict[int, VersionRange] = {
    int(key): VersionRange(
        advertised_min=_ADVERTISED_MIN.get(key, 0),
        served_min=max(_codec_min(key), _ADVERTISED_MIN.get(key, 0)),
        served_max=max_version,
    )
    for key, max_version in _MAX_VERSION.items()
}


def serves(api_key: int, version: int) -> bool:
    served = SERVED.get(api_key)
    return served is not None and served.serves(version)
