"""Every process of a running topology serves `/metrics`: parsed by prometheus_client's own
text parser, the figures agree with `regionlink status --json` and with what was produced.

active-passive-rf3: us-east has three controllers and three brokers (a topic with RF 3),
eu-west one broker holding mirror topics, written by two workers sharing the flow.
"""

from __future__ import annotations

import json
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from mirror.runtime.drill_steps import record_step
from tests.integration.mirror_harness import end_offsets, produce, wait_until
from tests.integration.test_runtime import TOPOLOGIES, regionlink, status

pytestmark = pytest.mark.integration
TOPOLOGY = TOPOLOGIES / "active-passive-rf3.toml"
FLOW = "us-east->eu-west"
RECORDS, PARTITIONS = 600, 3

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """{(sample name, labels): value} of one endpoint, through the Prometheus text parser."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def values(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return [
        (dict(found), value)
        for (sample, found), value in samples.items()
        if sample == name and wanted <= found
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for _, value in values(samples, name, **labels))


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "state"
    yield directory
    regionlink("down", "--state-dir", str(directory))


def test_every_process_serves_metrics_that_match_status(state_dir: Path) -> None:
    started = regionlink("up", str(TOPOLOGY), "--state-dir", str(state_dir), "--json")
    assert started.returncode == 0, started.stderr
    us, eu = (json.loads(started.stdout)["regions"][r]["bootstrap"] for r in ("us-east", "eu-west"))
    admin = AdminClient({"bootstrap.servers": us})
    topic = NewTopic("orders", PARTITIONS, 3, config={"min.insync.replicas": "2"})
    admin.create_topics([topic])["orders"].result(30)
    produce(us, "orders", [b"order-%d" % i for i in range(RECORDS)])
    wait_until(lambda: sum(end_offsets(eu, "orders").values()) == RECORDS, 60, "orders mirrored")

    def caught_up() -> bool:
        flow = status(state_dir)["flows"][0]
        return flow["records_copied"] == RECORDS and flow["lag_records"] == 0

    wait_until(caught_up, 30, "status to show the flow caught up")
    now = status(state_dir)
    processes = now["processes"]
    assert {p["kind"] for p in processes} == {"controller", "broker", "worker"}
    assert all(p["metrics_url"].startswith("http://127.0.0.1:") for p in processes)
    scraped = {p["name"]: scrape(p["metrics_url"]) for p in processes}
    record_step(state_dir, "wan-partition", "cut", True)  # as a drill's runner does
    supervisor = scrape(now["supervisor"]["metrics_url"])

    _check_workers(now, {n: s for n, s in scraped.items() if "/worker-" in n})
    _check_brokers({n: s for n, s in scraped.items() if "/broker-" in n})
    _check_controllers({n: s for n, s in scraped.items() if "/controller-" in n})
    _check_supervisor(now, supervisor)


def _check_workers(now: dict[str, Any], workers: dict[str, Samples]) -> None:
    """Both workers together report exactly the partitions and figures status shows."""
    assert len(workers) == 2
    flow = now["flows"][0]
    by_partition: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for samples in workers.values():
        for name in ("regionlink_mirror_records_total", "regionlink_mirror_lag_records"):
            for labels, value in values(samples, name, flow=FLOW):
                key = (labels["topic"], labels["partition"])
                assert name not in by_partition[key], f"{key} reported by both workers"
                by_partition[key][name] = value
    shown = {(p["source_topic"], str(p["partition"])): p for p in flow["partitions"]}
    assert set(by_partition) == set(shown)
    for key, partition in shown.items():
        assert by_partition[key]["regionlink_mirror_records_total"] == partition["records_copied"]
        assert by_partition[key]["regionlink_mirror_lag_records"] == partition["lag_records"] == 0
    copied = sum(total(s, "regionlink_mirror_records_total", flow=FLOW) for s in workers.values())
    assert copied == flow["records_copied"] == RECORDS
    batches = sum(
        total(s, "regionlink_replication_latency_seconds_count", flow=FLOW)
        for s in workers.values()
    )
    seconds = sum(
        total(s, "regionlink_replication_latency_seconds_sum", flow=FLOW) for s in workers.values()
    )
    assert 1 <= batches <= RECORDS, "one latency per mirrored batch"
    assert 0 <= seconds / batches < 30
    for samples in workers.values():  # a worker may own no partition that had records to copy
        copied_bytes = total(samples, "regionlink_mirror_bytes_total", flow=FLOW)
        copied_records = total(samples, "regionlink_mirror_records_total", flow=FLOW)
        assert (copied_bytes > 0) == (copied_records > 0)
        assert copied_bytes >= copied_records * len(b"order-0")


def _check_brokers(brokers: dict[str, Samples]) -> None:
    """Each us-east partition has one leader, which reports a full ISR; the appends add up."""
    assert len(brokers) == 4
    us_east = {n: s for n, s in brokers.items() if n.startswith("us-east/")}
    leaders: dict[str, list[str]] = defaultdict(list)
    high_watermarks = 0.0
    for name, samples in us_east.items():
        for labels, value in values(samples, "regionlink_partition_leader", topic="orders"):
            if value == 1:
                leaders[labels["partition"]].append(name)
        for labels, isr in values(samples, "regionlink_partition_isr_size", topic="orders"):
            assert isr == 3, labels
        assert total(samples, "regionlink_partition_replicas", topic="orders") == 3 * len(
            values(samples, "regionlink_partition_isr_size", topic="orders")
        )
        high_watermarks += total(samples, "regionlink_partition_high_watermark", topic="orders")
        assert total(samples, "regionlink_under_replicated_partitions") == 0
        assert total(samples, "regionlink_under_min_isr_partitions") == 0
    assert sorted(leaders) == [str(p) for p in range(PARTITIONS)]
    assert all(len(names) == 1 for names in leaders.values()), leaders
    assert high_watermarks == RECORDS
    produced = sum(
        total(s, "regionlink_broker_produce_records_total", topic="orders")
        for s in us_east.values()
    )
    assert produced == RECORDS
    replicated = sum(
        total(s, "regionlink_broker_fetch_bytes_total", topic="orders", fetcher="replica")
        for s in us_east.values()
    )
    assert replicated > 0, "followers fetch the leaders' batches"
    eu_west = brokers["eu-west/broker-1"]
    assert total(eu_west, "regionlink_broker_link_records_total", topic="orders") == RECORDS
    assert total(eu_west, "regionlink_partition_high_watermark", topic="orders") == RECORDS
    for samples in brokers.values():
        assert total(samples, "regionlink_broker_role") == 1, "one role at a time"


def _check_controllers(controllers: dict[str, Samples]) -> None:
    assert len(controllers) == 3
    leading = {n for n, s in controllers.items() if total(s, "regionlink_controller_is_leader")}
    assert len(leading) == 1, leading
    (leader,) = leading
    terms = {n: total(s, "regionlink_controller_term") for n, s in controllers.items()}
    assert all(term <= terms[leader] for term in terms.values()) and terms[leader] >= 1
    for samples in controllers.values():
        assert total(samples, "regionlink_controller_brokers", state="active") == 3
        assert total(samples, "regionlink_controller_brokers", state="fenced") == 0


def _check_supervisor(now: dict[str, Any], supervisor: Samples) -> None:
    for process in now["processes"]:
        labels = {"process": process["name"], "kind": process["kind"]}
        assert total(supervisor, "regionlink_process_up", **labels) == 1
        assert total(supervisor, "regionlink_process_restarts_total", **labels) == float(
            process["restarts"]
        )
    assert total(supervisor, "regionlink_failover_primary", region="us-east") == 1
    assert total(supervisor, "regionlink_failover_primary", region="eu-west") == 0
    assert total(supervisor, "regionlink_failover_epoch") == now["failover"]["epoch"] == 0
    assert total(supervisor, "regionlink_failover_operations_unfinished") == 0
    steps = {"drill": "wan-partition", "action": "cut", "outcome": "ok"}
    assert total(supervisor, "regionlink_drill_steps_total", **steps) == 1
