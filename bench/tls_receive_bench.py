"""What receiving produce requests over TLS costs the broker's connection code, without a
Kafka client: a server process runs `broker.server.serve` (a TLS listener or a plaintext one,
a dispatch that answers each request with 4 bytes) and this process sends it frames of 1 MiB
that it encrypted beforehand, cut into TLS records the way librdkafka 2.x cuts a produce
request of 1 KiB values (measured: per 6 values a 10-byte record and a 1 KiB one, then a full
16 KiB record), so sending costs it next to nothing. Reported: the server's CPU seconds per
GB received (from /proc/<pid>/stat, which a busy machine disturbs less than wall clock) and
GB/s; plus the floor — the same records decrypted by one `SSLObject.read` loop over a
MemoryBIO, no I/O, in this process.

    python -m bench.tls_receive_bench [--frames N] [--repeat R] [--pattern 10,1024,...]

Each round runs the variants in turn, in alternating order: plaintext, TLS (asyncio's record
layer, broker/security/native_tls.py), TLS with REGIONLINK_NATIVE_TLS=0 (anyio's TLSStream).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.machine import process_cpu_s

LIBRDKAFKA_PATTERN = "10,1024," * 6 + "16384"
VARIANTS = {"PLAINTEXT": None, "SSL": "1", "SSL-anyio": "0"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_receive_bench", description=__doc__)
    parser.add_argument("--frames", type=int, default=300, help="1 MiB frames per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pattern", default=LIBRDKAFKA_PATTERN, help="TLS record sizes, cycled")
    return parser.parse_args(argv)


def _server(port_file: str, pki: str, tls: bool) -> None:
    import anyio

    from broker.security.connection import ListenerSecurity
    from broker.security.listeners import SecurityProtocol, TlsFiles
    from broker.security.tls import server_context
    from broker.server import serve

    security = ListenerSecurity()
    if tls:
        files = TlsFiles(Path(pki) / "broker.pem", Path(pki) / "broker.key")
        security = ListenerSecurity(SecurityProtocol.SSL, server_context(files))
    answer = struct.pack(">ii", 4, 7)

    async def dispatch(request: bytearray, info: Any) -> Any:
        return [answer]

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            port = await tasks.start(
                lambda task_status: serve(
                    "127.0.0.1", 0, dispatch, 100 << 20, security=security,
                    task_status=task_status,
                )
            )  # fmt: skip
            Path(port_file).write_text(str(port))

    anyio.run(main)


def _records(writer: ssl.SSLObject, out: ssl.MemoryBIO, data: bytes, sizes: list[int]) -> bytes:
    view, at = memoryview(data), 0
    while view:
        size = sizes[at % len(sizes)]
        at += 1
        writer.write(view[:size])
        view = view[size:]
    return out.read()


def _handshake(client: ssl.SSLObject, out: ssl.MemoryBIO, incoming: ssl.MemoryBIO, send, recv):  # type: ignore[no-untyped-def]
    while True:
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                send(out.read())
            incoming.write(recv())
    if out.pending:
        send(out.read())


def run(variant: str, frames: int, sizes: list[int], pki: Path) -> tuple[float, float]:
    """The server's CPU s per GB and GB/s for one run."""
    native = VARIANTS[variant]
    env = dict(os.environ)
    if native is not None:
        env["REGIONLINK_NATIVE_TLS"] = native
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        argv = [sys.executable, "-m", "bench.tls_receive_bench", "--serve", str(port_file),
                str(pki), "1" if native is not None else "0"]  # fmt: skip
        server = subprocess.Popen(argv, env=env)
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            sock = socket.create_connection(("127.0.0.1", int(port_file.read_text())))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            body = os.urandom(1 << 20)
            framed = struct.pack(">i", len(body)) + body
            if native is None:
                chunks = [framed] * frames
            else:
                context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
                context.check_hostname = False
                incoming, out = ssl.MemoryBIO(), ssl.MemoryBIO()
                client = context.wrap_bio(incoming, out)
                _handshake(client, out, incoming, sock.sendall, lambda: sock.recv(65536))
                chunks = [_records(client, out, framed, sizes) for _ in range(frames)]
            received = [0]

            def drain() -> None:
                while data := sock.recv(1 << 16):
                    received[0] += len(data)

            threading.Thread(target=drain, daemon=True).start()
            time.sleep(0.3)
            cpu, started = process_cpu_s(server.pid), time.perf_counter()
            for chunk in chunks:
                sock.sendall(chunk)
            while received[0] < frames * 8:  # an answer per frame (more bytes over TLS)
                time.sleep(0.001)
            if native is not None:  # TLS answers are longer: wait until they stop coming
                last = -1
                while last != received[0]:
                    last = received[0]
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started - 0.05
            else:
                elapsed = time.perf_counter() - started
            gb = frames * len(framed) / 1e9
            result = ((process_cpu_s(server.pid) - cpu) / gb, gb / elapsed)
            sock.close()
            return result
        finally:
            server.terminate()
            server.wait()


def floor_s_per_gb(sizes: list[int], pki: Path, frames: int = 100) -> float:
    """CPU s per GB of only decrypting the same records: one SSLObject.read loop."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki / "broker.pem", pki / "broker.key")
    client_context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    client_context.check_hostname = False
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    body = os.urandom(1 << 20)
    encrypted = [_records(client, c_out, body, sizes) for _ in range(frames)]
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    started = time.process_time()
    for records in encrypted:
        s_in.write(records)
        filled = 0
        while filled < len(buffer):
            try:
                filled += int(server.read(len(buffer) - filled, view[filled:]))
            except ssl.SSLWantReadError:
                break
    return (time.process_time() - started) / (frames * len(body) / 1e9)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        _server(argv[1], argv[2], argv[3] == "1")
        return 0
    args = parse_args(argv)
    sizes = [int(size) for size in args.pattern.split(",")]
    from mirror.runtime.pki import ensure_ca, ensure_leaf

    with tempfile.TemporaryDirectory(prefix="tls-receive-bench-") as tmp:
        pki = Path(tmp)
        ca = ensure_ca(pki / "ca")
        leaf = ensure_leaf(ca, pki / "ca", "broker")
        (pki / "ca.pem").write_bytes(ca.cert.read_bytes())
        (pki / "broker.pem").write_bytes(leaf.cert.read_bytes())
        (pki / "broker.key").write_bytes(leaf.key.read_bytes())
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        floors = []
        for round_ in range(args.repeat):
            names = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
            for name in names:
                results[name].append(run(name, args.frames, sizes, pki))
                print(f"round {round_ + 1} {name:<10} {results[name][-1][0]:.3f} s/GB "
                      f"{results[name][-1][1]:.3f} GB/s", flush=True)  # fmt: skip
            floors.append(floor_s_per_gb(sizes, pki))
    print(f"{args.frames} frames of 1 MiB, TLS records cycling {args.pattern}; "
          f"medians of {args.repeat}:")  # fmt: skip
    for name, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        print(f"  {name:<10} server CPU {cpu:.3f} s/GB   {rate:.3f} GB/s")
    print(f"  decrypt floor (SSLObject.read loop only) {statistics.median(floors):.3f} s/GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
