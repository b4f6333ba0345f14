"""The bytes of a producer-state snapshot (Kafka's `<offset>.snapshot`), sans I/O.

Rebuilding idempotent-producer state by reading every batch header of a log makes a
broker's start-up grow with its data; a snapshot taken at offset N holds the state after
every batch below N, so a restart replays only the batches from N on. A snapshot is only
an optimisation: one that is torn, corrupt or of an unknown version is refused here
(SnapshotError) and the caller falls back to scanning the log.

Layout, big-endian: version i16 | crc32c u32 of everything after it | offset i64 |
producer count i32, then per producer: producer id i64 | epoch i16 | batch count i8,
then per cached batch: first sequence i32 | last sequence i32 | first offset i64 |
last offset i64.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from broker.producer_state import CACHED_BATCHES_PER_PRODUCER, AppendedBatch, ProducerStateTable

VERSION = 1
_PREFIX = struct.Struct(">hI")  # version, crc
_BODY_HEAD = struct.Struct(">qi")  # offset, producer count
_PRODUCER = struct.Struct(">qhb")  # producer id, epoch, batch count
_BATCH = struct.Struct(">iiqq")  # first/last sequence, first/last offset


class SnapshotError(ValueError):
    """The bytes are not a whole, intact snapshot of a version this code reads."""


@dataclass(frozen=True, slots=True)
class ProducerSnapshotEntry:
    producer_id: int
    epoch: int
    batches: tuple[AppendedBatch, ...]  # oldest first, at most CACHED_BATCHES_PER_PRODUCER


@dataclass(frozen=True, slots=True)
class ProducerSnapshot:
    offset: int  # the state after every batch below this offset, none at or above it
    producers: tuple[ProducerSnapshotEntry, ...]


def encode(snapshot: ProducerSnapshot) -> bytes:
    parts = [_BODY_HEAD.pack(snapshot.offset, len(snapshot.producers))]
    for producer in snapshot.producers:
        parts.append(_PRODUCER.pack(producer.producer_id, producer.epoch, len(producer.batches)))
        parts.extend(
            _BATCH.pack(b.first_sequence, b.last_sequence, b.first_offset, b.last_offset)
            for b in producer.batches
        )
    body = b"".join(parts)
    return _PREFIX.pack(VERSION, crc32c.crc32c(body)) + body


def decode(data: bytes) -> ProducerSnapshot:
    """The snapshot in data; SnapshotError if it is short, long, corrupt or unknown."""
    view = memoryview(data)
    if len(view) < _PREFIX.size + _BODY_HEAD.size:
        raise SnapshotError(f"{len(view)} bytes is too short for a snapshot")
    version, crc = _PREFIX.unpack_from(view)
    if version != VERSION:
        raise SnapshotError(f"snapshot version {version}, this broker reads {VERSION}")
    body = view[_PREFIX.size :]
    if crc32c.crc32c(body) != crc:
        raise SnapshotError("snapshot fails its CRC check")
    try:
        return _decode_body(body)
    except struct.error as exc:
        raise SnapshotError(f"snapshot is truncated: {exc}") from None


def _decode_body(body: memoryview) -> ProducerSnapshot:
    offset, count = _BODY_HEAD.unpack_from(body)
    position = _BODY_HEAD.size
    producers = []
    for _ in range(count):
        producer_id, epoch, batch_count = _PRODUCER.unpack_from(body, position)
        position += _PRODUCER.size
        if not 0 <= batch_count <= CACHED_BATCHES_PER_PRODUCER:
            raise SnapshotError(f"producer {producer_id} has {batch_count} cached batches")
        end = position + batch_count * _BATCH.size
        if end > len(body):
            raise SnapshotError(f"producer {producer_id}'s batches are cut off")
        batches = tuple(AppendedBatch(*f) for f in _BATCH.iter_unpack(body[position:end]))
        position = end
        producers.append(ProducerSnapshotEntry(producer_id, epoch, batches))
    if position != len(body):
        raise SnapshotError(f"{len(body) - position} bytes after the last producer")
    return ProducerSnapshot(offset, tuple(producers))


def from_table(table: ProducerStateTable, offset: int) -> ProducerSnapshot:
    """A snapshot of table, which holds the state after every batch below offset."""
    return ProducerSnapshot(
        offset,
        tuple(
            ProducerSnapshotEntry(producer_id, entry.epoch, tuple(entry.batches))
            for producer_id, entry in table.items()
        ),
    )


def restore_into(table: ProducerStateTable, snapshot: ProducerSnapshot) -> None:
    """Replace table's state with the snapshot's."""
    table.truncate()
    for producer in snapshot.producers:
        table.restore(producer.producer_id, producer.epoch, producer.batches)
