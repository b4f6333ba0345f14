"""Offset bookkeeping of the mirror: MM2 record formats and exact offset maps (sans-I/O)."""

from mirror.offsets.mm2_formats import Checkpoint, Heartbeat, MalformedRecord, OffsetSync
from mirror.offsets.offset_map import (
    MirrorCursor,
    OffsetMapError,
    PartitionOffsetMap,
    RunStart,
    apply_sync_records,
    run_to_sync,
)

__all__ = [
    "Checkpoint",
    "Heartbeat",
    "MalformedRecord",
    "MirrorCursor",
    "OffsetMapError",
    "OffsetSync",
    "PartitionOffsetMap",
    "RunStart",
    "apply_sync_records",
    "run_to_sync",
]
