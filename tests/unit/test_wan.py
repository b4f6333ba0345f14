"""WAN links: the topology's [links], the proxy plan, broker listeners, and the lease probe."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from broker.config import Listener
from broker.lease import WriteLease, keep_lease, probe
from mirror.errors import ConfigError
from mirror.runtime.topology import LinkConfig, load_topology
from mirror.runtime.wan import (
    in_direction,
    listener_args,
    plan_proxies,
    remote_bootstrap,
)

ROOT = Path(__file__).resolve().parents[2]

TWO_REGIONS = """\
name = "t"
[regions.us-east]
[regions.eu-west]
{eu_west}
[[flows]]
source = "us-east"
target = "eu-west"
[links."{link}"]
latency_ms = 20
bandwidth_kbps = 8000
"""


def _topology(tmp_path: Path, link: str = "us-east:eu-west", eu_west: str = "") -> Path:
    path = tmp_path / "t.toml"
    path.write_text(TWO_REGIONS.format(link=link, eu_west=eu_west))
    return path


def _ports() -> tuple[dict[str, int], Callable[[str], int]]:
    """Ports by key, as the supervisor keeps them: the same key, the same port."""
    ports: dict[str, int] = {}
    return ports, lambda key: ports.setdefault(key, 30_000 + len(ports))


def test_the_wan_topology_plans_a_proxy_per_direction() -> None:
    topology = load_topology(ROOT / "topologies" / "active-passive-wan.toml")
    ports = itertools.count(30_000)
    proxies = plan_proxies(topology, lambda _key: next(ports))
    assert [p.name for p in proxies] == ["us-east->eu-west", "eu-west->us-east"]
    forward = proxies[0]
    assert remote_bootstrap(proxies, "us-east", "eu-west") == forward.listen
    assert remote_bootstrap(proxies, "eu-west", "eu-west") is None
    assert listener_args(proxies, "eu-west", 1) == (
        "--listener", f"from-us-east={forward.upstream},{forward.listen}",
    )  # fmt: skip


def test_single_node_proxies_keep_their_names_and_ports() -> None:
    """State directories of earlier runs keep their ports by key, drills name the proxies."""
    ports, port = _ports()
    plan_proxies(load_topology(ROOT / "topologies" / "active-passive-wan.toml"), port)
    assert set(ports) == {
        "wan/us-east->eu-west", "eu-west/broker-1/from-us-east",
        "wan/eu-west->us-east", "us-east/broker-1/from-eu-west",
    }  # fmt: skip


def test_a_region_of_three_brokers_is_entered_through_a_proxy_per_broker() -> None:
    topology = load_topology(ROOT / "topologies" / "active-passive-rf3-wan.toml")
    ports, port = _ports()
    proxies = plan_proxies(topology, port)
    assert [p.name for p in proxies] == [
        "us-east->eu-west",
        "eu-west->us-east@broker-1",
        "eu-west->us-east@broker-2",
        "eu-west->us-east@broker-3",
    ]
    assert plan_proxies(topology, port) == proxies, "the same ports at every start"
    assert len(set(ports.values())) == len(ports) == 8
    into_us = proxies[1:]
    assert {p.to_json()["link"] for p in into_us} == {"eu-west->us-east"}
    for node, proxy in enumerate(into_us, start=1):
        assert proxy.broker == node
        assert listener_args(proxies, "us-east", node) == (
            "--listener", f"from-eu-west={proxy.upstream},{proxy.listen}",
        )  # fmt: skip
    assert remote_bootstrap(proxies, "eu-west", "us-east") == ",".join(p.listen for p in into_us)
    assert remote_bootstrap(proxies, "us-east", "eu-west") == proxies[0].listen
    assert listener_args(proxies, "eu-west", 1) == (
        "--listener", f"from-us-east={proxies[0].upstream},{proxies[0].listen}",
    )  # fmt: skip


def test_a_link_direction_is_all_its_proxies_and_only_those() -> None:
    assert in_direction("us-east->eu-west", "us-east->eu-west")
    assert in_direction("us-east->eu-west@broker-3", "us-east->eu-west")
    assert not in_direction("us-east->eu-west-2", "us-east->eu-west")
    assert not in_direction("eu-west->us-east@broker-1", "us-east->eu-west")


def test_a_link_becomes_toxics_on_both_streams() -> None:
    toxics = LinkConfig(latency_ms=20, jitter_ms=5, bandwidth_kbps=8000).toxics()
    assert {(t["type"], t["stream"]) for t in toxics} == {
        (kind, stream) for kind in ("latency", "bandwidth") for stream in ("upstream", "downstream")
    }
    rates = {t["attributes"]["rate"] for t in toxics if t["type"] == "bandwidth"}  # type: ignore[index]
    assert rates == {1000}  # 8000 kbit/s = 1000 KB/s
    assert LinkConfig().toxics() == []


@pytest.mark.parametrize(
    ("link", "eu_west", "needle"),
    [
        ("us-east:mars", "", "unknown region 'mars'"),
        ("us-east-eu-west", "", 'name a link "REGION:REGION"'),
        (
            "us-east:eu-west",
            'bootstrap = "127.0.0.1:19092"',
            "WAN links need regions regionlink runs; eu-west is external",
        ),
    ],
)
def test_bad_links_are_refused_by_file_line_and_key(
    tmp_path: Path, link: str, eu_west: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_topology(_topology(tmp_path, link, eu_west))
    assert needle in str(caught.value) and "links" in str(caught.value), caught.value


def test_a_link_may_join_regions_of_several_brokers(tmp_path: Path) -> None:
    topology = load_topology(_topology(tmp_path, eu_west="brokers = 3\ncontrollers = 1"))
    assert topology.link_between("eu-west", "us-east") is not None


def test_a_broker_listener_parses_and_refuses_bad_text() -> None:
    listener = Listener.parse("from-us=127.0.0.1:9100,127.0.0.1:9200")
    assert (listener.name, listener.port, listener.advertised) == (
        "from-us",
        9100,
        ("127.0.0.1", 9200),
    )
    for bad in ("client=127.0.0.1:1,127.0.0.1:2", "x=127.0.0.1:1", "=a:1,b:2", "x=a:b,c:1"):
        with pytest.raises(ValueError, match="expected"):
            Listener.parse(bad)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _silent_server(task_status: anyio.abc.TaskStatus[int]) -> None:
    """Accepts connections and reads, but never answers: a one-way blackhole."""

    async def swallow(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    await stream.receive()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
    await listener.serve(swallow)


async def _answering_server(task_status: anyio.abc.TaskStatus[int]) -> None:
    """Answers every request with its correlation id (enough for the probe)."""

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            request = await stream.receive()
            await stream.send(b"\x00\x00\x00\x04" + request[8:12])

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
    await listener.serve(answer)


@pytest.mark.anyio
async def test_a_peer_that_accepts_but_never_answers_lets_the_lease_expire() -> None:
    async with anyio.create_task_group() as tg:
        silent = await tg.start(_silent_server)
        answering = await tg.start(_answering_server)
        await probe("127.0.0.1", answering)  # a round trip: fine
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.5):
                await probe("127.0.0.1", silent)
        lease = WriteLease(lease_s=1.0, last_reached_s=time.monotonic())
        tg.start_soon(keep_lease, lease, [("127.0.0.1", silent)])
        await anyio.sleep(1.6)
        assert lease.expired(time.monotonic()), "a connect alone does not renew the lease"
        tg.cancel_scope.cancel()
