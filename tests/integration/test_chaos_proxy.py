"""`regionlink chaos proxy` as drills use it: a real server process, toxiproxy-python and raw
HTTP against its API, and each toxic measured on real byte streams to small TCP servers.

Timing tolerances are for a loaded 2-core CI machine: a toxic's delay is a lower bound we
check tightly (a proxy may be late, never early), upper bounds are generous, and every
socket operation has a timeout so no test can hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy.proxy import Proxy

from broker.ports import free_port
from chaos.proxy.chain import Chain

SEED = 12
START_TIMEOUT_S = 20.0
IO_TIMEOUT_S = 10.0

pytestmark = pytest.mark.integration


# The server and small upstreams -------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The proxy's API address; the process must stop cleanly on SIGTERM afterwards."""
    command = ["chaos", "proxy", "--listen", "127.0.0.1:0", "--seed", str(SEED)]
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror.cli", *command],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if "ready on" not in line:
        process.kill()
        pytest.fail(f"the proxy did not start: {line!r}")
    try:
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        assert process.wait(timeout=IO_TIMEOUT_S) == 0


@pytest.fixture
def api(server: str) -> Iterator[Toxiproxy]:
    """toxiproxy-python pointed at our server; every proxy is deleted after the test."""
    host, port = server.rsplit(":", 1)
    client = Toxiproxy()
    client.update_api_consumer(host, int(port))
    yield client
    client.destroy_all()


class Upstream:
    """A TCP server in a thread running `handler` for each connection it accepts."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._handler = handler
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT_S)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        # The proxy resetting or closing us is what some tests are about.
        with conn, contextlib.suppress(OSError):
            self._handler(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=IO_TIMEOUT_S)
        self.listener.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def source(size: int) -> Callable[[socket.socket], None]:
    """Send `size` bytes once the client says "go", then close."""

    def handler(conn: socket.socket) -> None:
        request = b""
        while len(request) < len(b"go") and (data := conn.recv(2 - len(request))):
            request += data
        conn.sendall(pattern(size))

    return handler


def sink(conn: socket.socket) -> None:
    """Count bytes until EOF; answer the count as 8 bytes."""
    total = 0
    while data := conn.recv(65536):
        total += len(data)
    conn.sendall(struct.pack(">Q", total))


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@pytest.fixture
def upstreams() -> Iterator[Callable[[Callable[[socket.socket], None]], Upstream]]:
    started: list[Upstream] = []

    def start(handler: Callable[[socket.socket], None]) -> Upstream:
        started.append(Upstream(handler))
        return started[-1]

    yield start
    for upstream in started:
        upstream.close()


def connect(proxy: Proxy) -> socket.socket:
    host, port = proxy.listen.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT_S)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def recv_all(conn: socket.socket) -> bytes:
    chunks = []
    while data := conn.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def round_trip_s(conn: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    conn.sendall(payload)
    got = b""
    while len(got) < len(payload):
        data = conn.recv(65536)
        assert data, "connection closed mid round trip"
        got += data
    return time.monotonic() - started


# Raw HTTP ---------------------------------------------------------------------------------


def http(server: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
    """(status, parsed JSON body or None) for one request."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server}{path}", data=data, method=method)
    request.add_header("User-Agent", "regionlink-tests")
    try:
        with urllib.request.urlopen(request, timeout=IO_TIMEOUT_S) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    return status, json.loads(text) if text else None


def assert_error(answer: tuple[int, Any], status: int, message: str) -> None:
    assert answer[0] == status, answer
    assert answer[1]["status"] == status and message in answer[1]["error"], answer


# toxiproxy-python -------------------------------------------------------------------------


def test_client_creates_lists_finds_and_destroys_proxies(api: Toxiproxy, upstreams: Any) -> None:
    upstream = upstreams(echo)
    proxy = api.create(upstream=upstream.address, name="echo")
    assert proxy.enabled and proxy.upstream == upstream.address
    assert proxy.listen.startswith("127.0.0.1:") and not proxy.listen.endswith(":0")
    with connect(proxy) as conn:
        assert round_trip_s(conn) < IO_TIMEOUT_S
    found = api.get_proxy("echo")
    assert found is not None and (found.name, found.listen) == ("echo", proxy.listen)
    assert list(api.proxies()) == ["echo"]
    assert api.running()
    assert json.loads(api.version())["version"].startswith("regionlink")
    with pytest.raises(ProxyExists):
        api.create(upstream=upstream.address, name="echo")
    assert api.destroy(proxy)
    assert api.get_proxy("echo") is None and api.proxies() == {}


@pytest.mark.parametrize(
    ("kind", "attributes"),
    [
        ("latency", {"latency": 10, "jitter": 2}),
        ("bandwidth", {"rate": 100}),
        ("slow_close", {"delay": 10}),
        ("timeout", {"timeout": 100}),
        ("reset_peer", {"timeout": 100}),
        ("slicer", {"average_size": 64, "size_variation": 8, "delay": 10}),
        ("limit_data", {"bytes": 1000}),
    ],
)
def test_client_adds_lists_and_destroys_each_toxic_type(
    api: Toxiproxy, kind: str, attributes: dict[str, int]
) -> None:
    proxy = api.create(upstream="127.0.0.1:9", name="toxic")
    proxy.add_toxic(type=kind, attributes=attributes)
    proxy.add_toxic(type=kind, name="up", stream="upstream", toxicity=0.5, attributes=attributes)
    toxics = proxy.toxics()
    assert list(toxics) == ["up", f"{kind}_downstream"]  # upstream first, as Toxiproxy lists
    down, up = toxics[f"{kind}_downstream"], toxics["up"]
    assert (down.type, down.stream, down.toxicity, down.attributes) == (
        kind,
        "downstream",
        1.0,
        attributes,
    )
    assert (up.stream, up.toxicity, up.attributes) == ("upstream", 0.5, attributes)
    assert proxy.get_toxic("up") is not None and proxy.get_toxic("nope") is None
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type=kind, attributes=attributes)
    assert proxy.destroy_toxic("up")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("up")
    assert list(proxy.toxics()) == [f"{kind}_downstream"]


def test_client_bad_toxics_raise_invalid_toxic(api: Toxiproxy) -> None:
    proxy = api.create(upstream="127.0.0.1:9", name="bad")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="packet_loss")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", stream="sideways")


def test_client_disable_closes_connections_and_enable_listens_again(
    api: Toxiproxy, upstreams: Any
) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="flap")
    host, port = proxy.listen.rsplit(":", 1)
    with connect(proxy) as conn:
        round_trip_s(conn)
        proxy.disable()
        assert not proxy.enabled and not api.get_proxy("flap").enabled
        assert conn.recv(10) == b""  # the proxy closed the open connection
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=IO_TIMEOUT_S)
    proxy.enable()
    assert api.get_proxy("flap").listen == proxy.listen  # the same port again
    with connect(proxy) as conn:
        round_trip_s(conn)
        with proxy.down():
            assert conn.recv(10) == b""
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, int(port)), timeout=IO_TIMEOUT_S)
    with connect(proxy) as conn:
        round_trip_s(conn)


def test_client_reset_enables_everything_and_removes_toxics(api: Toxiproxy) -> None:
    first = api.create(upstream="127.0.0.1:9", name="first")
    second = api.create(upstream="127.0.0.1:9", name="second")
    first.add_toxic(type="latency", attributes={"latency": 100})
    second.disable()
    assert api.reset()
    assert all(p.enabled for p in api.proxies().values())
    assert first.toxics() == {} and second.toxics() == {}


def test_client_populate_creates_keeps_and_replaces(api: Toxiproxy, upstreams: Any) -> None:
    one, two = upstreams(echo).address, upstreams(echo).address
    wanted = [
        {"name": "a", "upstream": one, "listen": f"127.0.0.1:{free_port()}"},
        {"name": "b", "upstream": one, "listen": f"127.0.0.1:{free_port()}"},
    ]
    assert sorted(p.name for p in api.populate(wanted)) == ["a", "b"]
    assert api.populate(wanted) == []  # already as asked
    wanted[1]["upstream"] = two
    [replaced] = api.populate(wanted)
    assert (replaced.name, replaced.upstream) == ("b", two)
    with connect(replaced) as conn:
        round_trip_s(conn)


# Raw HTTP: every endpoint and status ------------------------------------------------------


def test_http_proxy_endpoints(server: str, api: Toxiproxy) -> None:
    assert http(server, "GET", "/proxies") == (200, {})
    status, created = http(server, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:9"})
    assert status == 201
    assert set(created) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert created["enabled"] is True and created["toxics"] == []
    assert http(server, "GET", "/proxies") == (200, {"p": created})
    assert http(server, "GET", "/proxies/p") == (200, created)
    assert_error(http(server, "POST", "/proxies", {"name": "p", "upstream": "x:1"}), 409, "exists")
    assert_error(http(server, "POST", "/proxies", {"upstream": "x:1"}), 400, "field: name")
    assert_error(http(server, "POST", "/proxies", {"name": "q"}), 400, "field: upstream")
    assert_error(http(server, "POST", "/proxies", raw=b"{nope"), 400, "bad request body")
    assert_error(
        http(server, "POST", "/proxies", {"name": "q", "upstream": "x:1", "enabled": "yes"}),
        400,
        "enabled",
    )
    assert_error(
        http(server, "POST", "/proxies", {"name": "q", "upstream": "x:1", "listen": "nohost"}),
        400,
        "listen",
    )
    taken = {"name": "q", "upstream": "x:1", "listen": created["listen"]}
    assert_error(http(server, "POST", "/proxies", taken), 500, "listen tcp")
    assert_error(http(server, "GET", "/proxies/q"), 404, "proxy not found")

    status, down = http(server, "POST", "/proxies/p", {"enabled": False})
    assert (status, down["enabled"], down["listen"]) == (200, False, created["listen"])
    status, up = http(server, "PATCH", "/proxies/p", {"enabled": True, "upstream": "x:2"})
    assert (status, up["enabled"], up["upstream"]) == (200, True, "x:2")
    assert_error(http(server, "POST", "/proxies/q", {"enabled": False}), 404, "proxy not found")
    assert_error(http(server, "POST", "/proxies/p", raw=b""), 400, "bad request body")

    status, disabled = http(
        server, "POST", "/proxies", {"name": "off", "upstream": "x:1", "enabled": False}
    )
    assert (status, disabled["enabled"], disabled["listen"]) == (201, False, "127.0.0.1:0")

    assert http(server, "DELETE", "/proxies/p") == (204, None)
    assert_error(http(server, "DELETE", "/proxies/p"), 404, "proxy not found")


def test_http_toxic_endpoints(server: str, api: Toxiproxy) -> None:
    http(server, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:9"})
    assert http(server, "GET", "/proxies/p/toxics") == (200, [])
    status, toxic = http(
        server, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 5}}
    )
    assert status == 200
    assert toxic == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 5, "jitter": 0},
    }
    assert http(server, "GET", "/proxies/p/toxics") == (200, [toxic])
    assert http(server, "GET", "/proxies/p/toxics/latency_downstream") == (200, toxic)
    assert http(server, "GET", "/proxies/p")[1]["toxics"] == [toxic]
    assert_error(http(server, "POST", "/proxies/p/toxics", {"type": "latency"}), 409, "exists")
    assert_error(http(server, "POST", "/proxies/p/toxics", {"type": "nope"}), 400, "toxic type")
    assert_error(
        http(server, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "x"}),
        400,
        "stream was invalid",
    )
    assert_error(http(server, "POST", "/proxies/p/toxics", raw=b"[1"), 400, "bad request body")
    assert_error(http(server, "POST", "/proxies/q/toxics", {"type": "latency"}), 404, "proxy")
    assert_error(http(server, "GET", "/proxies/q/toxics"), 404, "proxy not found")
    assert_error(http(server, "GET", "/proxies/p/toxics/nope"), 404, "toxic not found")
    assert_error(http(server, "GET", "/proxies/q/toxics/nope"), 404, "proxy not found")

    change = {"name": "x", "type": "timeout", "stream": "upstream", "toxicity": 0.5}
    status, updated = http(
        server,
        "POST",
        "/proxies/p/toxics/latency_downstream",
        {**change, "attributes": {"jitter": 2}},
    )
    assert status == 200
    assert updated == {**toxic, "toxicity": 0.5, "attributes": {"latency": 5, "jitter": 2}}
    status, patched = http(
        server, "PATCH", "/proxies/p/toxics/latency_downstream", {"attributes": {"latency": 9}}
    )
    assert (status, patched["attributes"], patched["toxicity"]) == (
        200,
        {"latency": 9, "jitter": 2},
        0.5,
    )
    assert_error(http(server, "POST", "/proxies/p/toxics/nope", {"toxicity": 1}), 404, "toxic")
    assert_error(
        http(server, "POST", "/proxies/p/toxics/latency_downstream", {"toxicity": "all"}),
        400,
        "toxicity",
    )
    assert http(server, "DELETE", "/proxies/p/toxics/latency_downstream") == (204, None)
    assert_error(http(server, "DELETE", "/proxies/p/toxics/latency_downstream"), 404, "toxic")
    assert_error(http(server, "DELETE", "/proxies/q/toxics/latency_downstream"), 404, "proxy")


def test_http_reset_version_populate_and_the_rest(server: str, api: Toxiproxy) -> None:
    http(server, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:9", "enabled": False})
    http(server, "POST", "/proxies/p/toxics", {"type": "timeout"})
    assert http(server, "POST", "/reset") == (204, None)
    status, reset = http(server, "GET", "/proxies/p")
    assert (status, reset["enabled"], reset["toxics"]) == (200, True, [])

    status, version = http(server, "GET", "/version")
    assert status == 200 and version["version"].startswith("regionlink")

    http(server, "POST", "/proxies/p/toxics", {"type": "latency", "name": "kept"})
    same = {"name": "p", "upstream": "127.0.0.1:9", "listen": reset["listen"]}
    new = {"name": "n", "upstream": "127.0.0.1:9"}
    status, populated = http(server, "POST", "/populate", [same, new])
    assert status == 201
    assert [p["name"] for p in populated["proxies"]] == ["p", "n"]
    assert [t["name"] for t in populated["proxies"][0]["toxics"]] == ["kept"]  # untouched
    moved = {**same, "upstream": "127.0.0.1:10"}
    status, populated = http(server, "POST", "/populate", [moved])
    assert (status, populated["proxies"][0]["upstream"]) == (201, "127.0.0.1:10")
    assert populated["proxies"][0]["toxics"] == []  # replaced, so a new proxy
    assert_error(http(server, "POST", "/populate", [{"name": "x"}]), 400, "upstream at proxy 1")
    assert_error(http(server, "POST", "/populate", {"name": "x"}), 400, "bad request body")

    assert_error(http(server, "GET", "/nowhere"), 404, "Not Found")
    assert_error(http(server, "PUT", "/proxies"), 405, "Method Not Allowed")
    request = urllib.request.Request(
        f"http://{server}/proxies", headers={"User-Agent": "Mozilla/5.0"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=IO_TIMEOUT_S)
    assert refused.value.code == 403


# Toxics on real byte streams --------------------------------------------------------------


def test_latency_delays_each_direction(api: Toxiproxy, upstreams: Any) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="lag")
    with connect(proxy) as conn:
        assert round_trip_s(conn) < 0.5
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        rtts = [round_trip_s(conn) for _ in range(8)]
        assert min(rtts) >= 0.098 and statistics.median(rtts) < 0.4, rtts
        proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 50})
        rtts = [round_trip_s(conn) for _ in range(8)]
        assert min(rtts) >= 0.148 and statistics.median(rtts) < 0.45, rtts
        api.reset()
        assert round_trip_s(conn) < 0.5


def test_latency_jitter_stays_within_its_range(api: Toxiproxy, upstreams: Any) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="jitter")
    proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 50})
    with connect(proxy) as conn:
        rtts = [round_trip_s(conn) for _ in range(20)]
    assert min(rtts) >= 0.048 and statistics.median(rtts) < 0.4, rtts
    assert max(rtts) - min(rtts) > 0.01, rtts  # it does vary


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_bandwidth_caps_the_rate_within_20_percent(
    api: Toxiproxy, upstreams: Any, stream: str
) -> None:
    size, rate_kb_s = 1_000_000, 500  # 2.0 s on the wire
    handler = source(size) if stream == "downstream" else sink
    proxy = api.create(upstream=upstreams(handler).address, name="cap")
    proxy.add_toxic(type="bandwidth", stream=stream, attributes={"rate": rate_kb_s})
    with connect(proxy) as conn:
        started = time.monotonic()
        if stream == "downstream":
            conn.sendall(b"go")
            assert recv_all(conn) == pattern(size)
        else:
            conn.sendall(pattern(size))
            conn.shutdown(socket.SHUT_WR)
            assert struct.unpack(">Q", recv_all(conn)) == (size,)
        elapsed = time.monotonic() - started
    assert 1.6 <= elapsed <= 2.4, elapsed


def test_slow_close_holds_the_close_back(api: Toxiproxy, upstreams: Any) -> None:
    proxy = api.create(upstream=upstreams(source(3)).address, name="slow")
    proxy.add_toxic(type="slow_close", attributes={"delay": 500})
    with connect(proxy) as conn:
        conn.sendall(b"go")
        started = time.monotonic()
        assert conn.recv(10) == pattern(3)
        data_s = time.monotonic() - started
        assert conn.recv(10) == b""
        closed_s = time.monotonic() - started
    assert data_s < 0.4 and closed_s >= 0.49, (data_s, closed_s)


def test_timeout_zero_swallows_data_and_keeps_the_connection(
    api: Toxiproxy, upstreams: Any
) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="blackhole")
    with connect(proxy) as conn:
        round_trip_s(conn)
        proxy.add_toxic(type="timeout", attributes={"timeout": 0})
        conn.sendall(b"lost")
        conn.settimeout(1.0)
        with pytest.raises(TimeoutError):
            conn.recv(10)  # nothing comes back, and nothing closes
        conn.settimeout(IO_TIMEOUT_S)
        proxy.destroy_toxic("timeout_downstream")
        assert conn.recv(10) == b""  # healing closes it: bytes were dropped


def test_timeout_closes_an_idle_connection_after_its_timeout(
    api: Toxiproxy, upstreams: Any
) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="timeout")
    with connect(proxy) as conn:
        round_trip_s(conn)
        started = time.monotonic()
        proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 500})
        assert conn.recv(10) == b""  # no traffic needed: the toxic's timer closes it
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed <= 3.0, elapsed


def test_reset_peer_resets_the_connection(api: Toxiproxy, upstreams: Any) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="reset")
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 300})
    with connect(proxy) as conn:
        started = time.monotonic()
        conn.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            conn.recv(10)
        elapsed = time.monotonic() - started
    assert 0.28 <= elapsed <= 3.0, elapsed


def test_slicer_delivers_a_frame_in_small_slices(api: Toxiproxy, upstreams: Any) -> None:
    size = 10_000
    proxy = api.create(upstream=upstreams(source(size)).address, name="slicer")
    proxy.add_toxic(
        type="slicer", attributes={"average_size": 100, "size_variation": 20, "delay": 2000}
    )
    with connect(proxy) as conn:
        started = time.monotonic()
        conn.sendall(b"go")
        reads = []
        while data := conn.recv(65536):
            reads.append(data)
        elapsed = time.monotonic() - started
    assert b"".join(reads) == pattern(size)
    # At least 10 000 / 120 slices, 2 ms apart; a busy reader may see a few merged.
    assert elapsed >= 83 * 0.002, elapsed
    assert len(reads) >= 40 and statistics.median(len(r) for r in reads) <= 120, [
        len(r) for r in reads
    ]


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_limit_data_closes_after_its_bytes(api: Toxiproxy, upstreams: Any, stream: str) -> None:
    handler = source(5000) if stream == "downstream" else sink
    proxy = api.create(upstream=upstreams(handler).address, name="limit")
    proxy.add_toxic(type="limit_data", stream=stream, attributes={"bytes": 1000})
    with connect(proxy) as conn:
        if stream == "downstream":
            conn.sendall(b"go")
            assert recv_all(conn) == pattern(1000)
        else:
            conn.sendall(pattern(5000))
            # The proxy closed both sides after 1000 bytes; with our bytes unread there, the
            # kernel may answer the close with an RST.
            with contextlib.suppress(ConnectionResetError):
                assert recv_all(conn) == b""


def test_toxicity_hits_the_seeded_share_of_connections(api: Toxiproxy, upstreams: Any) -> None:
    proxy = api.create(upstream=upstreams(echo).address, name="some")
    proxy.add_toxic(type="latency", name="lag", toxicity=0.5, attributes={"latency": 300})
    delayed = []
    for _ in range(12):
        with connect(proxy) as conn:
            delayed.append(round_trip_s(conn) >= 0.29)
    expected = [Chain(f"{SEED}/some/{index}/downstream").draw("lag") < 0.5 for index in range(12)]
    assert delayed == expected
    assert any(expected) and not all(expected)


def test_cli_refuses_a_taken_api_port_in_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mirror.cli", "chaos", "proxy", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot serve the proxy API on 127.0.0.1:{port}")
