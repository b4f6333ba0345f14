"""Faults around the mirror: lost source data, dead clusters, refused writes, bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tests.integration.conftest import BrokerProcess, free_port
from tests.integration.mirror_harness import (
    Regions,
    WorkerProcess,
    create_topic,
    end_offsets,
    produce,
    read_all,
    topic_names,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration
WorkerFactory = Callable[..., WorkerProcess]


def _mirrored(bootstrap: str, topic: str, count: int) -> Callable[[], bool]:
    return lambda: sum(end_offsets(bootstrap, topic).values()) >= count


def _partition(worker: WorkerProcess, topic: str) -> dict[str, object]:
    flow = worker.status()["flows"][0]
    return next(p for p in flow["partitions"] if p["source_topic"] == topic)


def test_retention_gap_is_reported_and_mirroring_goes_on(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us = regions.us.bootstrap
    create_topic(us, "metrics", 1, {"segment.bytes": "1024", "retention.bytes": "2048"})
    produce(us, "metrics", [b"early-%d" % i for i in range(5)], partition=0)
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    worker = worker_factory(config, "w")
    wait_until(_mirrored(regions.eu.bootstrap, "us.metrics", 5), 20, "first records mirrored")
    assert worker.stop() == 0, "SIGTERM stops a worker cleanly"
    producer = Producer({"bootstrap.servers": us, "linger.ms": 0})
    for i in range(60):  # while the worker is down, retention deletes unmirrored records
        producer.produce("metrics", value=b"late-%02d-" % i + b"x" * 150, partition=0)
        producer.flush(10)  # one small batch each, so segments roll

    def low_watermark() -> int:
        return min(r.offset for r in read_all(us, "metrics"))

    marks: list[int] = []

    def retention_settled() -> bool:  # the low watermark moved and then stayed put
        marks.append(low_watermark())
        time.sleep(1)
        return marks[-1] > 10 and len(marks) > 1 and marks[-1] == marks[-2]

    wait_until(retention_settled, 30, "retention to delete old segments")
    first_kept = marks[-1]
    worker = worker_factory(config, "w")
    wait_until(
        _mirrored(regions.eu.bootstrap, "us.metrics", 5 + 65 - first_kept),
        20,
        "mirroring to continue after the gap",
    )
    partition = _partition(worker, "metrics")
    assert partition["records_lost"] == first_kept - 5
    assert partition["lost"] == [
        {
            "first_offset": 5,
            "end_offset": first_kept,
            "detected_at_ms": partition["lost"][0]["detected_at_ms"],
        }  # type: ignore[index]
    ]
    assert f"source offsets 5-{first_kept - 1}" in worker.log_text()
    assert "deleted by retention before they" in worker.log_text()
    target = [r.value for r in read_all(regions.eu.bootstrap, "us.metrics")]
    source = [r.value for r in read_all(us, "metrics")]
    assert target == [b"early-%d" % i for i in range(5)] + source


def test_unreachable_source_is_retried_until_it_comes_up(
    broker_factory: type[BrokerProcess], worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    eu = broker_factory(tmp_path / "eu").start()
    us_port = free_port()
    config = write_config(
        tmp_path / "w.toml",
        {"us": f"127.0.0.1:{us_port}", "eu": eu.bootstrap},
        [{"source": "us", "target": "eu", "refresh_topics_interval_s": 0.5}],
    )
    worker = worker_factory(config, "w")

    def reports_error() -> bool:
        flow = worker.status()["flows"][0]
        return flow["state"] == "error" and "no broker reachable" in flow["last_error"]

    wait_until(reports_error, 20, "the dead source to show in status")
    assert worker.alive()
    us = broker_factory(tmp_path / "us", port=us_port).start()
    create_topic(us.bootstrap, "late", 1)
    produce(us.bootstrap, "late", [b"%d" % i for i in range(100)])
    wait_until(_mirrored(eu.bootstrap, "us.late", 100), 30, "mirroring once the source is up")
    assert worker.status()["flows"][0]["state"] == "running"


def test_target_refusing_writes_is_retried_and_loses_nothing(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us, eu = regions.us.bootstrap, regions.eu.bootstrap
    create_topic(us, "images", 1)
    create_topic(eu, "us.images", 1, {"max.message.bytes": "2000"})
    values = [b"%03d" % i + b"i" * 5000 for i in range(20)]
    produce(us, "images", values, partition=0)
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    worker = worker_factory(config, "w")

    def refused() -> bool:
        partitions = worker.status()["flows"][0]["partitions"]
        return bool(partitions) and "message_too_large" in str(partitions[0]["last_error"])

    wait_until(refused, 20, "the refusal to show in status")
    assert _partition(worker, "images")["state"] == "retrying"
    admin = AdminClient({"bootstrap.servers": eu})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "us.images",
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes", "10000000", incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)
    wait_until(_mirrored(eu, "us.images", 20), 30, "mirroring after the target accepts")
    assert [r.value for r in read_all(eu, "us.images")] == values
    assert "retrying in" in worker.log_text()


def test_pause_and_resume_through_the_control_api(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us, eu = regions.us.bootstrap, regions.eu.bootstrap
    create_topic(us, "feed", 1)
    produce(us, "feed", [b"a"] * 10)
    config = write_config(tmp_path / "w.toml", regions.clusters, [{"source": "us", "target": "eu"}])
    worker = worker_factory(config, "w")
    wait_until(_mirrored(eu, "us.feed", 10), 20, "first records")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mirror.cli", "worker", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    paused = cli("pause", "--control", worker.control, "--flow", "us:eu")
    assert paused.returncode == 0 and "paused us->eu" in paused.stdout
    assert worker.status()["flows"][0]["state"] == "paused"
    produce(us, "feed", [b"b"] * 10)
    time.sleep(2)
    assert sum(end_offsets(eu, "us.feed").values()) == 10, "nothing copied while paused"
    resumed = cli("resume", "--control", worker.control, "--flow", "us:eu")
    assert resumed.returncode == 0, resumed.stderr
    wait_until(_mirrored(eu, "us.feed", 20), 20, "copying after resume")
    unknown = cli("pause", "--control", worker.control, "--flow", "eu:us")
    assert unknown.returncode == 2 and "no flow eu->us" in unknown.stderr
    table = cli("status", "--control", worker.control)
    assert table.returncode == 0 and "us->eu" in table.stdout


def test_active_active_does_not_loop(
    regions: Regions, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    us, eu = regions.us.bootstrap, regions.eu.bootstrap
    create_topic(us, "orders", 1)
    create_topic(eu, "orders", 1)
    produce(us, "orders", [b"from-us"] * 20)
    produce(eu, "orders", [b"from-eu"] * 30)
    flows = [
        {"source": "us", "target": "eu", "refresh_topics_interval_s": 0.5},
        {"source": "eu", "target": "us", "refresh_topics_interval_s": 0.5},
    ]
    config = write_config(tmp_path / "w.toml", regions.clusters, flows)
    worker_factory(config, "w")
    wait_until(_mirrored(eu, "us.orders", 20), 20, "us -> eu")
    wait_until(_mirrored(us, "eu.orders", 30), 20, "eu -> us")
    wait_until(
        lambda: "us.heartbeats" in topic_names(eu) and "eu.heartbeats" in topic_names(us),
        20,
        "heartbeats mirrored both ways",
    )
    time.sleep(3)  # several more discovery rounds
    loops = {
        t for t in topic_names(us) | topic_names(eu) if t.count(".") > 1 and "internal" not in t
    }
    assert not {t for t in loops if t.startswith(("us.eu.", "eu.us."))}, loops
    assert [r.value for r in read_all(eu, "us.orders")] == [b"from-us"] * 20
    assert [r.value for r in read_all(us, "eu.orders")] == [b"from-eu"] * 30


def test_bad_config_is_one_line_naming_file_line_and_key(tmp_path: Path) -> None:
    def run(text: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        path = tmp_path / "bad.toml"
        path.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "mirror.cli", "worker", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        return path, done

    head = '[clusters.us]\nbootstrap = "127.0.0.1:1"\n[clusters.eu]\nbootstrap = "127.0.0.1:2"\n'
    path, done = run(head + '[[flows]]\nsource = "us"\ntarget = "eu"\ntopicz = ["x"]\n')
    assert (
        f"{path}:8: flows[0].topicz: unknown key 'topicz' (did you mean 'topics'?)" in done.stderr
    )
    path, done = run(head + '[[flows]]\nsource = "us"\ntarget = "mars"\n')
    assert f"{path}:7: flows[0].target:" in done.stderr and "mars" in done.stderr
    path, done = run(head + "[[flows]\n")
    assert f"{path}:5: invalid TOML" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "mirror.cli", "worker"], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 2 and "needs --config" in missing.stderr
