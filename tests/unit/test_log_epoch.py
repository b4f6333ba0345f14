"""Leader epoch cache: OffsetForLeaderEpoch answers, checkpoint file, truncation."""

from __future__ import annotations

from pathlib import Path

from broker.log import LeaderEpochCache, LogConfig, PartitionLog
from broker.protocol.records import NewRecord, build_batch


def cache(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    epochs = LeaderEpochCache(tmp_path / "leader-epoch-checkpoint")
    for epoch, start in entries:
        epochs.assign(epoch, start)
    return epochs


def test_end_offset_for_follows_kafka(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (1, 0), (3, 10), (6, 25))
    assert epochs.end_offset_for(6, 40) == (6, 40)  # the latest epoch ends at the log end
    assert epochs.end_offset_for(3, 40) == (3, 25)
    assert epochs.end_offset_for(4, 40) == (3, 25)  # unknown epoch: the largest one below it
    assert epochs.end_offset_for(1, 40) == (1, 10)
    assert epochs.end_offset_for(0, 40) == (0, 0)  # older than the first epoch
    assert epochs.end_offset_for(7, 40) == (-1, -1)  # newer than anything we know
    assert epochs.end_offset_for(-1, 40) == (-1, -1)


def test_empty_cache(tmp_path: Path) -> None:
    assert LeaderEpochCache(tmp_path / "f").end_offset_for(0, 10) == (-1, -1)


def test_assign_ignores_stale_epochs_and_persists(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (2, 0), (2, 5), (1, 7), (4, 9))
    assert epochs.entries == [(2, 0), (4, 9)]
    loaded = LeaderEpochCache.load(tmp_path)
    assert loaded is not None and loaded.entries == [(2, 0), (4, 9)]
    assert (tmp_path / "leader-epoch-checkpoint").read_text() == "0\n2\n2 0\n4 9\n"


def test_truncation_from_both_ends(tmp_path: Path) -> None:
    epochs = cache(tmp_path, (1, 0), (2, 10), (3, 20))
    epochs.truncate_from_end(20)
    assert epochs.entries == [(1, 0), (2, 10)]
    epochs.truncate_from_start(15)
    assert epochs.entries == [(2, 15)]
    assert LeaderEpochCache.load(tmp_path).entries == [(2, 15)]  # type: ignore[union-attr]


def test_truncate_from_start_keeps_epochs_starting_exactly_there(tmp_path: Path) -> None:
    # Found by the log model: epoch 0 was moved to 5, then epoch 2 began at 5 on an empty log;
    # an unclean restart re-applies truncate_from_start(5) and must not drop epoch 0.
    cache = LeaderEpochCache(tmp_path / "leader-epoch-checkpoint", [(0, 5), (2, 5)])
    cache.truncate_from_start(5)
    assert cache.entries == [(0, 5), (2, 5)]
    assert cache.end_offset_for(1, log_end_offset=6) == (0, 5)
    cache.truncate_from_start(6)
    assert cache.entries == [(2, 6)]


def test_corrupt_checkpoint_loads_as_none(tmp_path: Path) -> None:
    (tmp_path / "leader-epoch-checkpoint").write_text("0\n3\n1 0\n")
    assert LeaderEpochCache.load(tmp_path) is None


def test_partition_log_tracks_epochs_through_truncation(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=500), now_ms=0)
    for epoch in (0, 0, 2, 2, 2, 5):
        log.append(
            bytearray(build_batch([NewRecord(b"k", b"v")] * 2)), leader_epoch=epoch, now_ms=0
        )
    assert log.end_offset_for_epoch(0) == (0, 4)
    assert log.end_offset_for_epoch(1) == (0, 4)
    assert log.end_offset_for_epoch(2) == (2, 10)
    assert log.end_offset_for_epoch(5) == (5, 12)
    log.truncate_to(8)  # a follower: divergent history from offset 8
    assert log.end_offset_for_epoch(2) == (2, 8)
    assert log.end_offset_for_epoch(5) == (-1, -1)
    log.close()
    assert PartitionLog.open(tmp_path, LogConfig(), now_ms=0).end_offset_for_epoch(2) == (2, 8)
