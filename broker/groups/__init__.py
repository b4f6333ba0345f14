"""Consumer groups: membership, rebalances, committed offsets (Kafka's classic protocol)."""

from broker.groups.coordinator import (
    GroupCoordinator,
    GroupDescription,
    LeaveResult,
    MemberDescription,
    MemberLeaveResult,
    OffsetStore,
)
from broker.groups.group import GroupState, JoinedMember, JoinResult, SyncResult
from broker.groups.storage import OffsetAndMetadata

__all__ = [
    "GroupCoordinator",
    "GroupDescription",
    "GroupState",
    "JoinResult",
    "JoinedMember",
    "LeaveResult",
    "MemberDescription",
    "MemberLeaveResult",
    "OffsetAndMetadata",
    "OffsetStore",
    "SyncResult",
]
