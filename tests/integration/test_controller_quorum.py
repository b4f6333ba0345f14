"""Three real `regionlink controller` processes: brokers (played by the test) register and
heartbeat, topics are created, the Raft leader is SIGKILLed and the quorum carries on, the
killed member catches up after a restart, a silent broker is fenced and loses its
leaderships, and the whole quorum survives a SIGKILL of every member."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from broker.kraft.controller_client import ControllerClient, ControllerError, TopicSpec
from broker.kraft.metadata import MetadataImage
from tests.integration.conftest import free_port
from tests.integration.region_harness import ControllerProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SESSION_TIMEOUT_MS = 2_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grpc.aio runs on asyncio only


@pytest.fixture
def controllers(tmp_path: Path) -> Iterator[dict[int, ControllerProcess]]:
    ports = {n: free_port() for n in (1, 2, 3)}
    quorum = ",".join(f"{n}@127.0.0.1:{p}" for n, p in ports.items())
    procs = {
        n: ControllerProcess(n, tmp_path / f"c{n}", p, quorum, SESSION_TIMEOUT_MS)
        for n, p in ports.items()
    }
    try:
        for proc in procs.values():
            proc.start()
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()


def addresses(procs: dict[int, ControllerProcess]) -> dict[int, tuple[str, int]]:
    return {n: ("127.0.0.1", p.port) for n, p in procs.items()}


def current_leader(procs: dict[int, ControllerProcess]) -> int:
    best = max(((max(p.leader_terms(), default=0), n) for n, p in procs.items()))
    assert best[0] > 0, "no controller has become the leader"
    return best[1]


class Follower:
    """A broker's view of the metadata: applies what FetchMetadata returns."""

    def __init__(self) -> None:
        self.image = MetadataImage()
        self.offset = 0

    async def poll(self, client: ControllerClient, wait_ms: int = 200) -> None:
        update = await client.fetch_metadata(self.offset, wait_ms=wait_ms)
        if update.snapshot is not None:
            self.image = update.snapshot
        for record in update.records:
            self.image.apply(record)
        self.offset = update.next_offset

    async def until(self, client: ControllerClient, check: object, timeout_s: float) -> None:
        with anyio.fail_after(timeout_s):
            while not check(self.image):  # type: ignore[operator]
                await self.poll(client)


def listening_socket() -> socket.socket:
    """A listener for a fake broker: the controller probes a late broker's listener and
    fences at once if the connection is refused (the process is gone)."""
    return socket.create_server(("127.0.0.1", 0))


class Brokers:
    """Fake brokers that heartbeat every 200 ms until told to stop (one by one)."""

    def __init__(self, client: ControllerClient, follower: Follower) -> None:
        self.client = client
        self.follower = follower
        self.epochs: dict[int, int] = {}
        self.silent: set[int] = set()
        self.listeners: dict[int, socket.socket] = {}

    async def register(self, *ids: int) -> None:
        for b in ids:
            self.listeners[b] = listener = listening_socket()
            port = listener.getsockname()[1]
            self.epochs[b] = await self.client.register_broker(b, f"inc-{b}", "127.0.0.1", port)

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()

    async def run(self) -> None:
        while True:
            for b, epoch in self.epochs.items():
                if b not in self.silent:
                    with contextlib.suppress(ControllerError):  # a failover: keep trying
                        await self.client.heartbeat(b, epoch, self.follower.offset)
            await anyio.sleep(0.2)


@pytest.fixture
async def client(controllers: dict[int, ControllerProcess]) -> AsyncIterator[ControllerClient]:
    c = ControllerClient(addresses(controllers), timeout_s=10.0)
    yield c
    await c.aclose()


async def test_quorum_failover_catch_up_and_fencing(
    controllers: dict[int, ControllerProcess], client: ControllerClient
) -> None:
    follower = Follower()
    heartbeat_client = ControllerClient(addresses(controllers), timeout_s=3.0)
    brokers = Brokers(heartbeat_client, follower)
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tasks:
            await brokers.register(1, 2, 3)
            assert sorted(brokers.epochs.values()) == list(brokers.epochs.values())
            tasks.start_soon(brokers.run)
            await follower.until(client, lambda i: i.unfenced_brokers() == (1, 2, 3), 10)

            results = await client.create_topics([TopicSpec("orders", 3, 3)])
            assert [r.error_code for r in results] == [0]
            await follower.until(client, lambda i: i.topic("orders") is not None, 5)
            orders = follower.image.topic("orders")
            assert orders is not None
            partitions = follower.image.partitions(orders.topic_id)
            assert len(partitions) == 3
            assert all(len(p.isr) == 3 for p in partitions.values())
            assert sorted(p.leader for p in partitions.values()) == [1, 2, 3]

            # SIGKILL the Raft leader: the others elect a new one and the client carries on.
            leader = current_leader(controllers)
            controllers[leader].kill()
            started = time.monotonic()
            results = await client.create_topics([TopicSpec("after-failover", 1, 2)])
            assert [r.error_code for r in results] == [0]
            assert time.monotonic() - started < 8
            assert current_leader(controllers) != leader

            # The killed controller restarts from its WAL and catches up from the leader. In a
            # worker thread: start() blocks until the process is ready (seconds on a loaded
            # machine), and the fake brokers heartbeat on this event loop; blocking it longer
            # than the session would silence them, and the controller would rightly fence them.
            await anyio.to_thread.run_sync(controllers[leader].start)
            only_it = ControllerClient({leader: ("127.0.0.1", controllers[leader].port)})
            rejoined = Follower()
            try:
                await rejoined.until(only_it, lambda i: i.topic("after-failover") is not None, 15)
            finally:
                await only_it.aclose()
            await follower.until(client, lambda i: i.topic("after-failover") is not None, 5)
            names = {t.name for t in rejoined.image.topics.values()}
            assert names == {"orders", "after-failover"}

            # A broker that stops heartbeating is fenced and its leaderships move away.
            brokers.silent.add(2)
            silent_since = time.monotonic()

            def fenced_and_moved(image: MetadataImage) -> bool:
                info = image.broker(2)
                assert info is not None
                moved = all(
                    p.leader != 2 and 2 not in p.isr
                    for t in image.topics
                    for p in image.partitions(t).values()
                )
                return info.fenced and moved

            await follower.until(client, fenced_and_moved, SESSION_TIMEOUT_MS / 1000 + 8)
            assert time.monotonic() - silent_since >= SESSION_TIMEOUT_MS / 1000 - 0.5
            assert follower.image.unfenced_brokers() == (1, 3)

            # A broker whose process is gone (its listener refuses) is fenced sooner.
            brokers.silent.add(3)
            brokers.listeners[3].close()
            gone_since = time.monotonic()
            await follower.until(client, lambda i: i.unfenced_brokers() == (1,), 10)
            assert time.monotonic() - gone_since < SESSION_TIMEOUT_MS / 1000
            tasks.cancel_scope.cancel()
    await heartbeat_client.aclose()
    brokers.close()

    # Every member SIGKILLed and restarted: the metadata is still there.
    expected = follower.image
    for proc in controllers.values():
        proc.kill()
    for proc in controllers.values():
        proc.start()
    # The brokers are gone too (heartbeats stopped, listeners closed). Broker 1 was unfenced:
    # the new leader gives it a fresh session, then fences it (its listener refuses once its
    # heartbeat is 0.5 s late, or the session expires). Whether `fresh` first reads the image
    # before or after that fence is a race (on a slow machine the last controller is still
    # starting when the leader fences), so broker 1's `fenced=False` is not promised after the
    # restart. What is promised: every registration survives as it was (incarnation,
    # listener, epoch), brokers 2 and 3 stay fenced, and broker 1 ends fenced.
    gone = {b: replace(info, fenced=True) for b, info in expected.brokers.items()}
    fresh = Follower()
    try:
        await fresh.until(
            client,
            lambda i: i.topic("after-failover") is not None and dict(i.brokers) == gone,
            20 + SESSION_TIMEOUT_MS / 1000,
        )
    except TimeoutError:
        pytest.fail(
            f"after the full-quorum restart the brokers are {dict(fresh.image.brokers)}, "
            f"not the registrations from before it, all fenced: {gone}"
        )
    assert fresh.image.topic("orders") is not None


async def test_controller_api_errors_and_producer_ids(client: ControllerClient) -> None:
    with anyio.fail_after(30):
        listener = listening_socket()
        port = listener.getsockname()[1]
        epoch = await client.register_broker(1, "inc-1", "127.0.0.1", port)
        with pytest.raises(ControllerError) as stale:
            await client.heartbeat(1, epoch + 100, 0)
        assert stale.value.error_code == 77
        blocks = [await client.allocate_producer_ids(1, epoch) for _ in range(3)]
        assert blocks == [(1000, 1000), (2000, 1000), (3000, 1000)]
        # One fenced broker: no topic with RF 1 can be placed yet.
        results = await client.create_topics([TopicSpec("t", 1, 1)])
        assert results[0].error_code == 38
        follower = Follower()
        await follower.poll(client)
        reply = await client.heartbeat(1, epoch, follower.offset)
        assert reply.fenced is False
        results = await client.create_topics(
            [TopicSpec("t", 1, 1, {"retention.ms": "5"}), TopicSpec("..")], validate_only=True
        )
        assert [r.error_code for r in results] == [0, 17]
        assert (await client.create_topics([TopicSpec("t", 1, 1)]))[0].error_code == 0
        assert (await client.create_partitions("t", 2)).error_code == 0
        assert (await client.create_partitions("t", 2)).error_code == 37
        assert (await client.set_topic_configs("t", {"retention.ms": "9"})).error_code == 0
        await follower.until(client, lambda i: len(i.config_resources) == 1, 5)
        topic = follower.image.topic("t")
        assert topic is not None
        p = follower.image.partition(topic.topic_id, 0)
        assert p is not None
        with pytest.raises(ControllerError) as fenced:
            await client.alter_partition(1, epoch, topic.topic_id, 0, p.leader_epoch + 1, 0, [1])
        assert fenced.value.error_code == 74
        same = await client.alter_partition(1, epoch, topic.topic_id, 0, p.leader_epoch, 0, [1])
        assert same == p
        shutdown = await client.heartbeat(1, epoch, follower.offset, want_shutdown=True)
        assert shutdown.fenced and shutdown.shutdown_ok
        assert [r.error_code for r in await client.delete_topics(["t", "nope"])] == [0, 3]
        listener.close()


def test_bad_quorum_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (
        ["--node-id", "1", "--quorum", "1@nohost"],
        ["--node-id", "4", "--quorum", "1@127.0.0.1:1"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mirror.cli", "controller", "--data-dir", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr and "--" in done.stderr
