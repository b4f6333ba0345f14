"""What moving the bytes alone costs: the replication bench's floor, with no Kafka in it.

A single node receives every produced byte and writes it to its log; an RF=3 leader also
sends every byte to two followers, each of which receives and writes it. Here plain processes
do exactly that and nothing else: 1 MiB recv_into()s, write()s and sendall()s, no requests,
no parsing, no Python per record. Their CPU per GB is the floor under the brokers' figures on
this machine, and region/single is the CPU ratio no broker could go below with this
architecture: on loopback the sender's system call also runs the receiving side's TCP input,
so the leader pays for its followers' receive processing while the single node's is paid by
the client, which no broker figure counts.

`python -m bench.copy_floor [--megabytes N]` prints it; bench/replication_bench.py runs it
every round (figures `floor_*`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path

CHUNK_BYTES = 1 << 20
FOLLOWERS = 2
ACK = b"k"
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Floor:
    single_s_per_gb: float  # recv + write
    leader_s_per_gb: float  # recv + write + a send per follower
    follower_s_per_gb: float  # recv + write, the mean of the followers

    @property
    def region_s_per_gb(self) -> float:
        return self.leader_s_per_gb + FOLLOWERS * self.follower_s_per_gb

    @property
    def ratio(self) -> float:
        return self.region_s_per_gb / self.single_s_per_gb


def _receive_exactly(connection: socket.socket, view: memoryview) -> None:
    received = 0
    while received < len(view):
        count = connection.recv_into(view[received:])
        if count == 0:
            raise ConnectionError("the sender closed before the chunk was whole")
        received += count


def _client(port: int, chunks: int) -> None:
    """The producer: sends `chunks` MiB, then waits for the store's word that it has them."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        payload = os.urandom(CHUNK_BYTES)
        for _ in range(chunks):
            connection.sendall(payload)
        connection.recv(1)


def _store(
    role: str, chunks: int, work: str, forward_ports: tuple[int, ...], ports: Queue, costs: Queue
) -> None:
    """A broker's byte path: listen (port reported on `ports`), connect to each forward port,
    take one connection, then recv_into + write every chunk and send it on to each forward
    connection; CPU seconds from the first chunk to the last stored downstream on `costs`."""
    log_path = Path(tempfile.mkdtemp(dir=work)) / "log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        ports.put((role, listener.getsockname()[1]))
        forwards = [socket.create_connection(("127.0.0.1", port)) for port in forward_ports]
        source, _ = listener.accept()
    buffer = memoryview(bytearray(CHUNK_BYTES))
    started_s = time.process_time()
    for _ in range(chunks):
        _receive_exactly(source, buffer)
        os.write(fd, buffer)
        for forward in forwards:
            forward.sendall(buffer)
    for forward in forwards:
        forward.recv(1)  # stored downstream too
    costs.put((role, time.process_time() - started_s))
    source.sendall(ACK)
    for connection in [source, *forwards]:
        connection.close()
    os.close(fd)
    log_path.unlink()
    log_path.parent.rmdir()


def _run(work: Path, chunks: int, followers: int) -> dict[str, float]:
    """CPU seconds of each store: `followers` of them fed by one fed by a client."""
    context = multiprocessing.get_context("spawn")  # the bench's own process has threads
    ports: Queue = context.Queue()
    costs: Queue = context.Queue()
    started = []

    def start(target: object, *args: object) -> None:
        process = context.Process(target=target, args=args)  # type: ignore[arg-type]
        process.start()
        started.append(process)

    for number in range(followers):
        start(_store, f"follower{number}", chunks, str(work), (), ports, costs)
    forward_ports = tuple(ports.get(timeout=TIMEOUT_S)[1] for _ in range(followers))
    start(_store, "leader", chunks, str(work), forward_ports, ports, costs)
    start(_client, ports.get(timeout=TIMEOUT_S)[1], chunks)
    try:
        return dict(costs.get(timeout=TIMEOUT_S) for _ in range(followers + 1))
    finally:
        for process in started:
            process.join(timeout=TIMEOUT_S)
            if process.is_alive():
                process.kill()


def measure_floor(work: Path, megabytes: int) -> Floor:
    """Single node, then leader and followers, each moving `megabytes` MiB."""
    chunks = max(megabytes, 1)
    gigabytes = chunks * CHUNK_BYTES / 1e9
    single = _run(work, chunks, 0)["leader"]
    region = _run(work, chunks, FOLLOWERS)
    follower_s = sum(v for k, v in region.items() if k != "leader") / FOLLOWERS
    return Floor(single / gigabytes, region["leader"] / gigabytes, follower_s / gigabytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=300, help="MiB each store moves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="copy-floor-") as work:
        floor = measure_floor(Path(work), args.megabytes)
    print(
        f"CPU s per GB: single {floor.single_s_per_gb:.3f}, leader {floor.leader_s_per_gb:.3f}, "
        f"follower {floor.follower_s_per_gb:.3f}; region {floor.region_s_per_gb:.3f} "
        f"= {floor.ratio:.2f}x the single node"
    )


if __name__ == "__main__":
    main()
