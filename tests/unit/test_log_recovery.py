"""Crash recovery: torn tails, garbage, zero fill, lost indexes, and a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import NewRecord, build_batch, decode_batches

CONFIG = LogConfig(segment_bytes=8192, index_interval_bytes=512)
REPO_ROOT = Path(__file__).resolve().parents[2]


def batch(number: int) -> bytearray:
    records = [NewRecord(b"k%d" % i, b"value-%d-%d" % (number, i), (), number) for i in range(4)]
    return bytearray(build_batch(records))


def crashed_log(directory: Path, batches: int) -> list[int]:
    """Append without close (no clean-shutdown marker); return each batch's end offset."""
    log = PartitionLog.open(directory, CONFIG, now_ms=0)
    ends = [log.append(batch(n), leader_epoch=1, now_ms=0).last_offset for n in range(batches)]
    for segment in log._segments:
        segment.close()  # the process "dies": descriptors go, no marker is written
    return ends


def offsets(log: PartitionLog) -> list[int]:
    return [r.offset for _, data in log.iter_batches() for r in decode_batches(data)]


def last_log_file(directory: Path) -> Path:
    return sorted(directory.glob("*.log"))[-1]


@pytest.mark.parametrize("cut_bytes", [1, 7, 30, 61, 62])
def test_torn_write_keeps_every_whole_batch(tmp_path: Path, cut_bytes: int) -> None:
    ends = crashed_log(tmp_path, 100)
    path = last_log_file(tmp_path)
    os.truncate(path, path.stat().st_size - cut_bytes)
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert log.log_end_offset == ends[-2] + 1
    assert offsets(log) == list(range(ends[-2] + 1))
    assert log.append(batch(0), leader_epoch=1, now_ms=0).first_offset == ends[-2] + 1


@pytest.mark.parametrize("tail", [b"\x00" * 4096, os.urandom(3000), b"\x00" * 11 + b"\x7f"])
def test_garbage_and_zero_fill_are_cut(tmp_path: Path, tail: bytes) -> None:
    ends = crashed_log(tmp_path, 100)
    path = last_log_file(tmp_path)
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(tail)
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert log.log_end_offset == ends[-1] + 1
    assert path.stat().st_size == size
    assert offsets(log) == list(range(ends[-1] + 1))


def test_corrupt_last_batch_is_cut(tmp_path: Path) -> None:
    ends = crashed_log(tmp_path, 50)
    path = last_log_file(tmp_path)
    with path.open("r+b") as file:
        file.seek(-5, os.SEEK_END)
        file.write(b"XXXXX")
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert log.log_end_offset == ends[-2] + 1


def test_missing_and_corrupt_indexes_are_rebuilt(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    for number in range(200):
        log.append(batch(number), leader_epoch=1, now_ms=0)
    expected = {start: log.read(start, 1) for start in range(0, 800, 13)}
    log.close()
    indexes = sorted(tmp_path.glob("*.index"))
    indexes[0].unlink()
    indexes[1].write_bytes(os.urandom(37))
    (sorted(tmp_path.glob("*.timeindex"))[2]).write_bytes(b"\x00" * 24)
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert {start: log.read(start, 1) for start in expected} == expected
    assert log.offset_for_timestamp(150) is not None


def test_leftover_compaction_output_is_discarded(tmp_path: Path) -> None:
    crashed_log(tmp_path, 100)
    first = sorted(tmp_path.glob("*.log"))[0]
    leftover = first.with_name(first.name + ".cleaned")
    leftover.write_bytes(b"half a cleaned segment")
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert not leftover.exists()
    assert offsets(log) == list(range(400))


def test_lost_epoch_checkpoint_is_rebuilt(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    for epoch in (1, 1, 3, 3, 7):
        log.append(batch(0), leader_epoch=epoch, now_ms=0)
    log.close()
    (tmp_path / "leader-epoch-checkpoint").unlink()
    log = PartitionLog.open(tmp_path, CONFIG, now_ms=0)
    assert log.end_offset_for_epoch(1) == (1, 8)
    assert log.end_offset_for_epoch(3) == (3, 16)
    assert log.end_offset_for_epoch(7) == (7, 20)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from broker.log import LogConfig, PartitionLog
    from broker.protocol.records import NewRecord, build_batch

    log = PartitionLog.open(Path(sys.argv[1]), LogConfig(segment_bytes=64 * 1024), now_ms=0)
    number = 0
    while True:
        records = [NewRecord(b"k", b"x" * 200, (), number)] * (1 + number % 5)
        info = log.append(bytearray(build_batch(records)), leader_epoch=0, now_ms=0)
        print(info.first_offset, info.last_offset, flush=True)
        number += 1
    """
)


def test_sigkill_loses_no_acknowledged_append(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
    )  # fmt: skip
    assert child.stdout is not None
    acknowledged: list[tuple[int, int]] = []
    deadline = time.monotonic() + 3.0
    while len(acknowledged) < 3000 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        first, last = map(int, line.split())
        acknowledged.append((first, last))
    child.send_signal(signal.SIGKILL)  # mid-run: it is still appending
    child.wait(timeout=5)
    child.stdout.close()
    assert len(acknowledged) > 100, "the child did not get going"
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=64 * 1024), now_ms=0)
    assert log.log_end_offset >= acknowledged[-1][1] + 1
    present = set(offsets(log))
    assert all(first in present and last in present for first, last in acknowledged)
    assert sorted(present) == list(range(log.log_end_offset))
