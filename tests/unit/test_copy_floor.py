"""The replication bench's floor (bench/copy_floor.py) and its memory warm-up, on small sizes."""

from __future__ import annotations

from pathlib import Path

from bench.copy_floor import FOLLOWERS, measure_floor
from bench.machine import warm_memory


def test_the_floor_moves_the_bytes_through_every_process_and_cleans_up(tmp_path: Path) -> None:
    floor = measure_floor(tmp_path, 8)
    assert floor.single_s_per_gb > 0 and floor.follower_s_per_gb > 0
    # The leader stores what a single node does and sends it on to each follower.
    assert floor.leader_s_per_gb > floor.single_s_per_gb
    assert floor.region_s_per_gb == floor.leader_s_per_gb + FOLLOWERS * floor.follower_s_per_gb
    assert floor.ratio > 1
    assert list(tmp_path.iterdir()) == []  # every store deleted its log and directory


def test_warming_memory_leaves_nothing_behind(tmp_path: Path) -> None:
    warm_memory(tmp_path, 3 << 20)
    warm_memory(tmp_path, 0)
    assert list(tmp_path.iterdir()) == []
