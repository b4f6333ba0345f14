"""Producer snapshots in a real partition directory: written at roll and close, pruned,
removed by truncation, and used on reopen so only the log's tail is replayed."""

from __future__ import annotations

from pathlib import Path

from broker.log import LogConfig, PartitionLog
from broker.log.producer_snapshot_files import (
    KEPT_SNAPSHOTS,
    restore_producer_state,
    snapshot_offsets,
    snapshot_path,
)
from broker.producer_state import ProducerStateTable
from broker.protocol.batch import read_header
from broker.protocol.records import NewRecord, build_batch

SMALL = LogConfig(segment_bytes=4096, index_interval_bytes=256)


def idempotent_batch(producer_id: int, sequence: int, count: int = 3) -> bytearray:
    records = [NewRecord(b"k", b"v" * 40, (), 1000 + i) for i in range(count)]
    return bytearray(
        build_batch(records, producer_id=producer_id, producer_epoch=0, base_sequence=sequence)
    )


class Producing:
    """A log with its producer state, appended to as the Produce handler does."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.table = ProducerStateTable()
        self.log = PartitionLog.open(directory, SMALL, now_ms=0)
        self.log.producers = self.table
        self.replayed_from = restore_producer_state(self.log, self.table)
        self.sequences: dict[int, int] = {}

    def send(self, producer_id: int, count: int = 3) -> int:
        sequence = self.sequences.get(producer_id, 0)
        data = idempotent_batch(producer_id, sequence, count)
        header = read_header(data)
        assert self.table.check(header) is None
        appended = self.log.append(data, leader_epoch=0, now_ms=0)
        self.table.record(header, appended.first_offset, appended.last_offset)
        self.sequences[producer_id] = sequence + count
        return appended.first_offset

    def fill(self, batches: int, producers: int = 4) -> None:
        for number in range(batches):
            self.send(number % producers)

    def reopen(self, *, clean: bool = True) -> Producing:
        if clean:
            self.log.close()
        reopened = Producing(self.directory)
        reopened.sequences = dict(self.sequences)
        return reopened


def full_scan(log: PartitionLog) -> ProducerStateTable:
    table = ProducerStateTable()
    table.rebuild(header for header, _ in log.iter_batches(log.log_start_offset))
    return table


def state(table: ProducerStateTable) -> dict[int, tuple[int, list[object]]]:
    return {pid: (entry.epoch, list(entry.batches)) for pid, entry in table.items()}


def test_each_roll_writes_a_snapshot_at_the_new_base_and_keeps_the_newest_two(
    tmp_path: Path,
) -> None:
    p = Producing(tmp_path)
    p.fill(60)
    assert p.log.segment_count > 3
    assert snapshot_offsets(tmp_path) == [s.base_offset for s in p.log._segments[-KEPT_SNAPSHOTS:]]


def test_reopen_after_close_replays_nothing_and_restores_the_same_state(tmp_path: Path) -> None:
    p = Producing(tmp_path)
    p.fill(60)
    before = state(p.table)
    end = p.log.log_end_offset
    again = p.reopen()
    assert again.replayed_from == end
    assert snapshot_offsets(tmp_path)[-1] == end
    assert state(again.table) == before == state(full_scan(again.log))


def test_reopen_after_a_crash_replays_only_the_active_segment(tmp_path: Path) -> None:
    p = Producing(tmp_path)
    p.fill(60)
    before = state(p.table)
    again = p.reopen(clean=False)
    assert again.replayed_from == again.log.active.base_offset > 0
    assert state(again.table) == before


def test_retries_after_restart_get_their_original_offsets(tmp_path: Path) -> None:
    p = Producing(tmp_path)
    p.fill(40)
    first_offset = p.send(1)
    retried = read_header(idempotent_batch(1, p.sequences[1] - 3))
    for clean in (True, False):
        p = p.reopen(clean=clean)
        earlier = p.table.check(retried)
        assert earlier is not None and earlier.first_offset == first_offset
        assert p.send(1) == p.log.log_end_offset - 3  # the next sequence is still in order


def test_a_corrupt_newest_snapshot_falls_back_to_the_older_one_then_to_a_scan(
    tmp_path: Path,
) -> None:
    p = Producing(tmp_path)
    p.fill(60)
    before = state(p.table)
    p.log.close()
    older, newest = snapshot_offsets(tmp_path)
    snapshot_path(tmp_path, newest).write_bytes(snapshot_path(tmp_path, newest).read_bytes()[:-3])
    again = Producing(tmp_path)
    assert again.replayed_from == older
    assert state(again.table) == before
    again.log.close()  # rewrites the newest
    for offset in snapshot_offsets(tmp_path):
        snapshot_path(tmp_path, offset).write_bytes(b"garbage")
    scanned = Producing(tmp_path)
    assert scanned.replayed_from == scanned.log.log_start_offset
    assert state(scanned.table) == before


def test_truncation_removes_snapshots_past_the_new_end(tmp_path: Path) -> None:
    p = Producing(tmp_path)
    p.fill(60)
    p.log.close()
    p = Producing(tmp_path)
    cut = snapshot_offsets(tmp_path)[0] - 1
    p.log.truncate_to(cut)
    assert all(offset <= p.log.log_end_offset for offset in snapshot_offsets(tmp_path))
    assert restore_producer_state(p.log, p.table) < cut
    assert state(p.table) == state(full_scan(p.log))


def test_a_snapshot_above_the_log_end_is_ignored_and_deleted(tmp_path: Path) -> None:
    p = Producing(tmp_path)
    p.fill(10)
    p.log.close()
    end = snapshot_offsets(tmp_path)[-1]
    snapshot_path(tmp_path, end + 100).write_bytes(snapshot_path(tmp_path, end).read_bytes())
    again = Producing(tmp_path)
    assert end + 100 not in snapshot_offsets(tmp_path)
    assert again.replayed_from == end


def test_deleting_old_segments_removes_snapshots_below_the_new_start(tmp_path: Path) -> None:
    p = Producing(tmp_path)
    p.fill(60)
    newest = snapshot_offsets(tmp_path)[-1]
    p.log.delete_records_before(newest)
    assert snapshot_offsets(tmp_path) == [newest]
    p.log.truncate_fully_and_start_at(p.log.log_end_offset + 10)
    assert snapshot_offsets(tmp_path) == []
