"""The mirror's internal topics: names, creation, and keyed single-partition I/O.

MM2's own names and formats (so MM2 tools read them) plus our exact offset map:
- `heartbeats` on the target,
- `<source>.checkpoints.internal` on the target,
- `mm2-offset-syncs.<target>.internal` on the source (MM2's default location),
- `regionlink-offset-map.<source>.internal` on the target: every run start of every
  mirrored partition (never compacted, so the exact map survives),
- `regionlink-source-ends.<source>.internal` on the target (compacted): the last observed
  end offset of every mirrored source partition, for a forced failover's loss manifest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from broker.client import KafkaClient, KafkaError
from broker.client.admin import NewTopic, create_topics
from broker.client.data import EARLIEST, fetch_now, latest_offsets, list_offsets, produce
from broker.protocol.batch import iter_valid_prefix
from broker.protocol.errors import ErrorCode
from broker.protocol.records import NewRecord, build_batch, decode_batch_records

COMPACTED = {"cleanup.policy": "compact"}
KEEP_FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def checkpoints_topic(source_alias: str) -> str:
    return f"{source_alias}.checkpoints.internal"


def offset_syncs_topic(other_alias: str) -> str:
    """MM2: named after the target when kept on the source, after the source when on the target."""
    return f"mm2-offset-syncs.{other_alias}.internal"


def offset_map_topic(source_alias: str) -> str:
    return f"regionlink-offset-map.{source_alias}.internal"


def source_ends_topic(source_alias: str) -> str:
    return f"regionlink-source-ends.{source_alias}.internal"


@dataclass(frozen=True)
class KeyedRecord:
    offset: int
    key: bytes
    value: bytes


class InternalTopic:
    """One single-partition internal topic on one cluster."""

    def __init__(self, client: KafkaClient, name: str, configs: dict[str, str]) -> None:
        self.client = client
        self.name = name
        self.configs = configs
        self._ready = False

    async def ensure(self) -> None:
        """Create the topic if it is missing (an existing one is used as it is)."""
        if self._ready:
            return
        topic = NewTopic(self.name, 1, -1, self.configs)
        error, message = (await create_topics(self.client, [topic]))[self.name]
        if error not in (0, ErrorCode.topic_already_exists):
            raise KafkaError(error, f"creating internal topic {self.name}", message)
        self._ready = True

    async def write(self, records: list[tuple[bytes, bytes]]) -> None:
        """Append keyed records with acks=all; raises KafkaError/KafkaConnectionError."""
        if not records:
            return
        await self.ensure()
        now_ms = int(time.time() * 1000)
        batch = build_batch([NewRecord(k, v, (), now_ms) for k, v in records])
        leader = await self.client.leader_for(self.name, 0)
        result = (await produce(self.client, leader, {(self.name, 0): batch}))[(self.name, 0)]
        if result.error in (ErrorCode.not_leader_or_follower, ErrorCode.unknown_topic_or_partition):
            await self.client.refresh_metadata([self.name])
        if result.error:
            raise KafkaError(result.error, f"writing {self.name}", result.message)

    async def read(self, from_offset: int = 0) -> tuple[list[KeyedRecord], int]:
        """Every record from `from_offset` to the current end → (records, next offset)."""
        await self.ensure()
        leader = await self.client.leader_for(self.name, 0)
        tp = (self.name, 0)
        ends = await latest_offsets(self.client, leader, [tp])
        end = ends[tp][1]
        if from_offset == 0:
            from_offset = (await list_offsets(self.client, leader, {tp: EARLIEST}))[tp][1]
        out: list[KeyedRecord] = []
        position = from_offset
        while position < end:
            fetched = await fetch_now(self.client, leader, tp, position)
            if fetched.error:
                raise KafkaError(fetched.error, f"reading {self.name}")
            for header in iter_valid_prefix(fetched.records):
                if header.is_control:
                    position = header.next_offset
                    continue
                for record in decode_batch_records(fetched.records, header):
                    if record.offset >= position and record.key and record.value is not None:
                        out.append(KeyedRecord(record.offset, record.key, record.value))
                position = max(position, header.next_offset)
            if not fetched.records:
                break
        return out, position
