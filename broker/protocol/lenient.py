"""Hand readers for requests that kio's generated readers refuse but Kafka accepts.

librdkafka sends MetadataRequest v9 with a tagged field after the body; Kafka skips
tagged fields it does not know (that is what they are for), kio raises on them. Metadata
v9 matters because librdkafka trusts leader epochs only from v9 on (KIP-320), and without
them it waits a whole metadata round longer before producing to a new leader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kio.schema.metadata.v9.request import MetadataRequest, MetadataRequestTopic
from kio.schema.types import TopicName

from broker.protocol.cursor import Cursor

Reader = Callable[[bytes | bytearray, int], Any]


def read_metadata_request_v9(frame: bytes | bytearray, offset: int) -> MetadataRequest:
    """MetadataRequest v9; the request's own trailing tagged fields are not read."""
    cursor = Cursor(frame, offset)
    count = cursor.uvarint() - 1
    topics: tuple[MetadataRequestTopic, ...] | None = None
    if count >= 0:
        names = []
        for _ in range(count):
            names.append(cursor.compact_string())
            cursor.skip_tagged_fields()
        topics = tuple(MetadataRequestTopic(name=TopicName(n)) for n in names)
    allow_auto, cluster_ops, topic_ops = (cursor.byte() != 0 for _ in range(3))
    return MetadataRequest(
        topics=topics,
        allow_auto_topic_creation=allow_auto,
        include_cluster_authorized_operations=cluster_ops,
        include_topic_authorized_operations=topic_ops,
    )


LENIENT_READERS: dict[tuple[int, int], Reader] = {(3, 9): read_metadata_request_v9}
