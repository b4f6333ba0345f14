"""Cross-region: a mirror's copy of each partition against its source, from their final reads.

With mirror topics a target partition is its source's log at the same offsets, up to the
mirror's position (the target's end offset): every offset below it must hold the same key and
value in both, gaps included, and the target must hold nothing its source lacks. What the
mirror has not copied yet is lag, reported in offsets, not a divergence. The runner names the
pairs (source region, target region) that the drill's flows ran at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chaos.findings import Anomaly, Finding
from chaos.model import PartitionContents, StoredRecord


@dataclass(frozen=True)
class MirrorPair:
    source: str  # region
    target: str


def mirror_findings(contents: Sequence[PartitionContents], pair: MirrorPair) -> Iterator[Finding]:
    sources = {c.topic_partition: c for c in contents if c.region == pair.source}
    for target in contents:
        source = sources.get(target.topic_partition)
        if target.region == pair.target and source is not None:
            yield from _compare(source, target)


def mirror_lag_offsets(contents: Sequence[PartitionContents], pair: MirrorPair) -> int:
    """Offsets the targets still lack, summed over the source's partitions."""
    targets = {c.topic_partition: c for c in contents if c.region == pair.target}
    lag = 0
    for source in contents:
        if source.region == pair.source:
            target = targets.get(source.topic_partition)
            copied = target.end_offset if target is not None else source.start_offset
            lag += max(0, source.end_offset - copied)
    return lag


def _compare(source: PartitionContents, target: PartitionContents) -> Iterator[Finding]:
    position = target.end_offset
    theirs = _below(source, position)
    ours = _below(target, position)
    for offset in sorted(theirs.keys() | ours.keys()):
        if offset < source.start_offset:
            continue
        expected, found = theirs.get(offset), ours.get(offset)
        if expected != found:
            record = expected or found
            assert record is not None
            yield Finding(
                Anomaly.MIRROR_DIVERGENCE,
                target.topic,
                target.partition,
                offset,
                record.value,
                region=target.region,
                actor=f"{source.region} -> {target.region}",
                detail=f"source has {_show(expected)}, target has {_show(found)}",
            )


def _below(contents: PartitionContents, position: int) -> dict[int, StoredRecord]:
    return {r.offset: r for r in contents.records if r.offset < position}


def _show(record: StoredRecord | None) -> str:
    return "nothing" if record is None else f"key={record.key!r} value={record.value!r}"
