"""A region's place in a failover topology: topology epoch, role, and the primary's alias.

These are cluster-level configs (IncrementalAlterConfigs / DescribeConfigs on resource type
BROKER with name ""), kept by the topic registry of a single node or by the controller quorum
of a region. The epoch only moves forward, so a region told about a newer role change never
takes an older one back — that is what fences an old primary that returns. Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EPOCH = "regionlink.topology.epoch"
ROLE = "regionlink.region.role"
PRIMARY = "regionlink.topology.primary"
CLUSTER_CONFIG_DEFAULTS: dict[str, str] = {EPOCH: "0", ROLE: "", PRIMARY: ""}

PRIMARY_ROLE = "primary"
STANDBY_ROLE = "standby"
ROLES = (PRIMARY_ROLE, STANDBY_ROLE, "")  # "" = no failover configured: all writable


@dataclass(frozen=True, slots=True)
class Topology:
    epoch: int = 0
    role: str = ""
    primary: str = ""

    @property
    def is_standby(self) -> bool:
        return self.role == STANDBY_ROLE

    @classmethod
    def from_configs(cls, configs: Mapping[str, str]) -> Topology:
        """Parse cluster configs (missing keys take their defaults); ValueError names a bad one."""
        unknown = sorted(set(configs) - set(CLUSTER_CONFIG_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown cluster config {unknown[0]!r}")
        values = {**CLUSTER_CONFIG_DEFAULTS, **configs}
        raw_epoch = values[EPOCH].strip()
        try:
            epoch = int(raw_epoch)
        except ValueError:
            raise ValueError(f"{EPOCH}={raw_epoch!r} is not an integer") from None
        if epoch < 0:
            raise ValueError(f"{EPOCH}={epoch} is negative")
        role = values[ROLE].strip()
        if role not in ROLES:
            raise ValueError(f"{ROLE}={role!r} must be primary, standby or empty")
        return cls(epoch, role, values[PRIMARY].strip())

    def configs(self) -> dict[str, str]:
        return {EPOCH: str(self.epoch), ROLE: self.role, PRIMARY: self.primary}


def stale_epoch_message(epoch: int, current: int) -> str:
    return f"topology epoch {epoch} is older than this region's {current}"


def with_changes(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`current` with each change applied: a value sets its key, None deletes it (default)."""
    updated = dict(current)
    for key, value in changes.items():
        if value is None:
            updated.pop(key, None)
        else:
            updated[key] = value
    return updated


def checked_update(current: Mapping[str, str], updated: Mapping[str, str]) -> Topology:
    """The topology `updated` describes, if it may replace `current`.

    ValueError for unknown keys, bad values, or an epoch lower than the current one (an equal
    epoch is accepted, so a failover step can be repeated).
    """
    before, after = Topology.from_configs(current), Topology.from_configs(updated)
    if after.epoch < before.epoch:
        raise ValueError(stale_epoch_message(after.epoch, before.epoch))
    return after


def supersedes(startup: Topology | None, persisted: Topology) -> bool:
    """Whether start-up options replace the region's own topology: a newer epoch, or the
    same epoch for a region that holds no role yet (how a topology with a write lease gives
    its regions their roles at epoch 0)."""
    if startup is None:
        return False
    return startup.epoch > persisted.epoch or (
        startup.epoch == persisted.epoch and not persisted.role and bool(startup.role)
    )


def newest(persisted: Topology, startup: Topology | None) -> Topology:
    """The topology to enforce: the persisted one, unless start-up options supersede it."""
    if startup is not None and supersedes(startup, persisted):
        return startup
    return persisted
