"""Consumer groups: membership, rebalances, committed offsets."""

from broker.groups.coordinator import GroupCoordinator, GroupDescription, OffsetStore
from broker.groups.group import JoinResult, SyncResult
from broker.groups.storage import OffsetAndMetadata

__all__ = [
    "GroupCoordinator",
    "GroupDescription",
    "JoinResult",
    "OffsetAndMetadata",
    "OffsetStore",
    "SyncResult",
]
