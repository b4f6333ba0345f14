"""WAN links end to end (issue 12): `regionlink up topologies/active-passive-wan.toml`.

Traffic between the regions goes through the fault proxy: the mirror's worker writes into
eu-west through it (and is told the proxy's address by eu-west's named listener), clients
inside a region connect directly, `regionlink status` shows both directions with the link's
toxics, and cutting the link (as a drill does, with toxiproxy-python) stops the mirror and
lets us-east's write lease expire; healing it brings both back. A region of several brokers
is entered through a proxy per broker, each broker advertising every other one's proxy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from chaos.drill.deployment import Deployment
from mirror.runtime.state import StateDB
from mirror.runtime.wan import toxiproxy_server
from tests.integration.mirror_harness import create_topic, end_offsets, read_all, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "active-passive-wan.toml"
# eu-west runs three brokers (one controller is enough here): us-east's worker writes into it
# through three proxies. No failover, so no lease: us-east takes writes while the link is cut.
THREE_BROKER_TARGET = """\
name = "wan-three-brokers"

[regions.us-east]

[regions.eu-west]
brokers = 3
controllers = 1

[[flows]]
source = "us-east"
target = "eu-west"
refresh_topics_interval_s = 1

[links."us-east:eu-west"]
latency_ms = 5
"""


def regionlink(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror.cli", *args],
        capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
    )  # fmt: skip


@contextmanager
def _up(topology: Path, state_dir: Path) -> Iterator[Path]:
    done = regionlink("up", str(topology), "--state-dir", str(state_dir), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    try:
        yield state_dir
    finally:
        regionlink("down", "--state-dir", str(state_dir), timeout_s=90)


@pytest.fixture
def wan(tmp_path: Path) -> Iterator[Path]:
    with _up(TOPOLOGY, tmp_path / "state") as state_dir:
        yield state_dir


@pytest.fixture
def wan_three_brokers(tmp_path: Path) -> Iterator[Path]:
    topology = tmp_path / "wan-three-brokers.toml"
    topology.write_text(THREE_BROKER_TARGET)
    with _up(topology, tmp_path / "state") as state_dir:
        yield state_dir


def _status(state_dir: Path) -> dict[str, Any]:
    done = regionlink("status", "--state-dir", str(state_dir), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _advertised(bootstrap: str) -> set[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        brokers = consumer.list_topics(timeout=10).brokers.values()
        return {f"{b.host}:{b.port}" for b in brokers}
    finally:
        consumer.close()


def _described(bootstrap: str) -> tuple[set[str], str]:
    """DescribeCluster's brokers and a group's coordinator (FindCoordinator), as host:port."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    nodes = admin.describe_cluster(request_timeout=10).result(15).nodes
    group = admin.describe_consumer_groups(["probe"], request_timeout=10)["probe"].result(15)
    coordinator = group.coordinator
    return {f"{n.host}:{n.port}" for n in nodes}, f"{coordinator.host}:{coordinator.port}"


def _leaders(bootstrap: str, topic: str) -> set[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p.leader for p in partitions.values()}
    finally:
        consumer.close()


def _contents(bootstrap: str, topic: str) -> list[tuple[int, bytes | None]]:
    return [(r.partition, r.value) for r in read_all(bootstrap, topic)]


def _send(bootstrap: str, count: int) -> list[KafkaError | None]:
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 5000})
    for i in range(count):
        producer.produce("orders", b"v%d" % i, on_delivery=lambda e, _m: errors.append(e))
    producer.flush(15)
    return errors


def test_cross_region_traffic_goes_through_the_link(wan: Path) -> None:
    status = _status(wan)
    us = status["regions"]["us-east"]["bootstrap"]
    eu = status["regions"]["eu-west"]["bootstrap"]
    links = {link["name"]: link for link in status["links"]}
    assert set(links) == {"us-east->eu-west", "eu-west->us-east"}
    forward = links["us-east->eu-west"]
    assert forward["enabled"] is True
    assert {(t["type"], t["stream"]) for t in forward["toxics"]} == {
        (kind, stream) for kind in ("latency", "bandwidth") for stream in ("upstream", "downstream")
    }
    # Through the proxy eu-west advertises the proxy; directly, itself.
    assert _advertised(forward["listen"]) == {forward["listen"]}
    assert _advertised(eu) == {eu}
    flow_file = (wan / "flows" / "us-east--eu-west.toml").read_text()
    assert forward["listen"] in flow_file, "the worker reaches eu-west over the link"

    create_topic(us, "orders", 2)
    assert _send(us, 300) == [None] * 300
    wait_until(lambda: end_offsets(eu, "orders") == end_offsets(us, "orders"), 30, "mirrored")

    # Cut the link as a drill does: the mirror stops, us-east's lease expires (5 s).
    api = StateDB(wan).meta()["wan"]["api"]
    proxies = toxiproxy_server(api).proxies()
    for proxy in proxies.values():
        proxy.disable()
    assert not any(link["enabled"] for link in _status(wan)["links"])
    time.sleep(7)
    refused = _send(us, 5)
    assert all(e is not None for e in refused), refused
    assert {e.code() for e in refused if e is not None} == {KafkaError.POLICY_VIOLATION}

    for proxy in proxies.values():
        proxy.enable()

    time.sleep(3)  # the lease is renewed at the next probe (every 1.25 s with lease_s = 5)
    assert _send(us, 10) == [None] * 10, "us-east takes writes again once it reaches eu-west"
    wait_until(lambda: end_offsets(eu, "orders") == end_offsets(us, "orders"), 30, "caught up")


def test_links_can_live_in_a_toxiproxy_server_of_ones_own(tmp_path: Path) -> None:
    """`[chaos] toxiproxy_url`: the proxies are created there; no proxy process of ours."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mirror.cli", "chaos", "proxy", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        api = server.stdout.readline().split()[-1]
        topology = tmp_path / "wan.toml"
        topology.write_text(TOPOLOGY.read_text() + f'\n[chaos]\ntoxiproxy_url = "http://{api}"\n')
        state_dir = tmp_path / "state"
        done = regionlink("up", str(topology), "--state-dir", str(state_dir), "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        try:
            status = _status(state_dir)
            assert "wan/proxy" not in {p["name"] for p in status["processes"]}
            assert {link["name"] for link in status["links"]} == {
                "us-east->eu-west", "eu-west->us-east",
            }  # fmt: skip
            assert set(toxiproxy_server(api).proxies()) == {"us-east->eu-west", "eu-west->us-east"}
        finally:
            regionlink("down", "--state-dir", str(state_dir), timeout_s=90)
    finally:
        server.terminate()
        server.wait(10)


def test_a_region_of_three_brokers_is_entered_through_a_proxy_per_broker(
    wan_three_brokers: Path,
) -> None:
    status = _status(wan_three_brokers)
    us = status["regions"]["us-east"]["bootstrap"]
    eu = status["regions"]["eu-west"]["bootstrap"]
    into_eu = [link for link in status["links"] if link["link"] == "us-east->eu-west"]
    assert [link["name"] for link in into_eu] == [f"us-east->eu-west@broker-{n}" for n in (1, 2, 3)]
    proxies = {link["listen"] for link in into_eu}
    # Through any proxy eu-west names every broker at its proxy (Metadata, DescribeCluster,
    # FindCoordinator); directly, at its own address.
    for link in into_eu:
        assert _advertised(link["listen"]) == proxies
    nodes, coordinator = _described(into_eu[1]["listen"])
    assert nodes == proxies and coordinator in proxies
    direct = set(eu.split(","))
    assert _advertised(eu) == direct
    nodes, coordinator = _described(eu)
    assert nodes == direct and coordinator in direct
    flow_file = (wan_three_brokers / "flows" / "us-east--eu-west.toml").read_text()
    assert all(proxy in flow_file for proxy in proxies), "the worker reaches eu-west over the link"

    mirrored = "us-east.orders"
    create_topic(us, "orders", 3)
    assert _send(us, 300) == [None] * 300
    wait_until(lambda: end_offsets(eu, mirrored) == end_offsets(us, "orders"), 30, "mirrored")
    assert _leaders(eu, mirrored) == {1, 2, 3}, "every broker of eu-west takes mirror writes"

    # A drill's cut of the direction: all three proxies. No partition reaches eu-west.
    cut = Deployment(wan_three_brokers).link_proxies(["us-east->eu-west"])
    assert sorted(proxy.name for proxy in cut) == [link["name"] for link in into_eu]
    for proxy in cut:
        proxy.disable()
    before = end_offsets(eu, mirrored)
    assert _send(us, 300) == [None] * 300
    time.sleep(4)
    assert end_offsets(eu, mirrored) == before, "nothing reaches eu-west around the link"

    for proxy in cut:
        proxy.enable()
    wait_until(lambda: end_offsets(eu, mirrored) == end_offsets(us, "orders"), 60, "caught up")
    assert _contents(eu, mirrored) == _contents(us, "orders")
