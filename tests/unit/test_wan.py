"""WAN links: the topology's [links], the proxy plan, broker listeners, and the lease probe."""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import anyio
import pytest

from broker.config import Listener
from broker.lease import WriteLease, keep_lease, probe
from mirror.errors import ConfigError
from mirror.runtime.topology import LinkConfig, load_topology
from mirror.runtime.wan import listener_args, plan_proxies, remote_bootstrap

ROOT = Path(__file__).resolve().parents[2]

TWO_REGIONS = """\
name = "t"
[regions.us-east]
[regions.eu-west]
brokers = {brokers}
{controllers}
[[flows]]
source = "us-east"
target = "eu-west"
[links."{link}"]
latency_ms = 20
bandwidth_kbps = 8000
"""


def _topology(tmp_path: Path, link: str = "us-east:eu-west", brokers: int = 1) -> Path:
    controllers = "controllers = 3" if brokers > 1 else ""
    path = tmp_path / "t.toml"
    path.write_text(TWO_REGIONS.format(link=link, brokers=brokers, controllers=controllers))
    return path


def test_the_wan_topology_plans_a_proxy_per_direction() -> None:
    topology = load_topology(ROOT / "topologies" / "active-passive-wan.toml")
    ports = itertools.count(30_000)
    proxies = plan_proxies(topology, lambda _key: next(ports))
    assert [p.name for p in proxies] == ["us-east->eu-west", "eu-west->us-east"]
    forward = proxies[0]
    assert remote_bootstrap(proxies, "us-east", "eu-west") == forward.listen
    assert remote_bootstrap(proxies, "eu-west", "eu-west") is None
    assert listener_args(proxies, "eu-west") == (
        "--listener", f"from-us-east={forward.upstream},{forward.listen}",
    )  # fmt: skip


def test_a_link_becomes_toxics_on_both_streams() -> None:
    toxics = LinkConfig(latency_ms=20, jitter_ms=5, bandwidth_kbps=8000).toxics()
    assert {(t["type"], t["stream"]) for t in toxics} == {
        (kind, stream) for kind in ("latency", "bandwidth") for stream in ("upstream", "downstream")
    }
    rates = {t["attributes"]["rate"] for t in toxics if t["type"] == "bandwidth"}  # type: ignore[index]
    assert rates == {1000}  # 8000 kbit/s = 1000 KB/s
    assert LinkConfig().toxics() == []


@pytest.mark.parametrize(
    ("link", "brokers", "needle"),
    [
        ("us-east:mars", 1, "unknown region 'mars'"),
        ("us-east-eu-west", 1, 'name a link "REGION:REGION"'),
        ("us-east:eu-west", 3, "WAN links need single-node regions for now; eu-west is not"),
    ],
)
def test_bad_links_are_refused_by_file_line_and_key(
    tmp_path: Path, link: str, brokers: int, needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_topology(_topology(tmp_path, link, brokers))
    assert needle in str(caught.value) and "links" in str(caught.value), caught.value


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
