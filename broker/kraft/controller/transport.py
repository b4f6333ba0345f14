"""Raft messages to peer controllers over grpc.aio, never blocking the driver.

One bounded queue and one sender task per peer: `send` only enqueues (dropping the message
when the queue is full), and the sender ships whatever has queued up as one `Raft` call.
When a peer is down its queue is emptied: Raft retransmits on its own (heartbeats, probes),
so a dropped message only costs a round trip, while a backlog would arrive stale.
"""

from __future__ import annotations

import contextlib
import logging
import math

import anyio
import grpc
from anyio.streams.memory import MemoryObjectReceiveStream

from broker.kraft.controller import controller_pb2, controller_pb2_grpc
from broker.kraft.controller.codec import encode_message
from broker.kraft.grpc_tls import GrpcTls, open_channel
from broker.kraft.messages import Message

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1_024
MAX_BATCH = 64
CALL_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.1

# Peers are reached directly; reconnect quickly once a restarted peer is back.
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
]


class _Peer:
    def __init__(self, node_id: int, address: str) -> None:
        self.node_id = node_id
        self.address = address
        self.send, self.receive = anyio.create_memory_object_stream[Message](QUEUE_LIMIT)
        self.down = False


class RaftTransport:
    def __init__(self, peers: dict[int, tuple[str, int]], tls: GrpcTls | None = None) -> None:
        self._peers = {n: _Peer(n, f"{h}:{p}") for n, (h, p) in peers.items()}
        self._tls = tls

    def send(self, message: Message) -> None:
        """Queue for the peer; drop if it is unknown or its queue is full."""
        peer = self._peers.get(message.dst)
        if peer is None:
            return
        with contextlib.suppress(anyio.WouldBlock):
            peer.send.send_nowait(message)

    async def run(self) -> None:
        """Run every peer's sender until cancelled."""
        async with anyio.create_task_group() as tasks:
            for peer in self._peers.values():
                tasks.start_soon(self._sender, peer)

    async def _sender(self, peer: _Peer) -> None:
        async with open_channel(peer.address, self._tls, CHANNEL_OPTIONS) as channel:
            stub = controller_pb2_grpc.ControllerQuorumStub(channel)
            with peer.receive:
                async for first in peer.receive:
                    batch = [first, *_drain(peer.receive, MAX_BATCH - 1)]
                    request = controller_pb2.RaftBatch(messages=[encode_message(m) for m in batch])
                    try:
                        await stub.Raft(request, timeout=CALL_TIMEOUT_S)
                    except grpc.aio.AioRpcError as exc:
                        if not peer.down:
                            log.info("controller %d unreachable: %s", peer.node_id, exc.code().name)
                            peer.down = True
                        _drain(peer.receive, math.inf)
                        await anyio.sleep(RETRY_PAUSE_S)
                        continue
                    if peer.down:
                        log.info("controller %d reachable again", peer.node_id)
                        peer.down = False


def _drain(receive: MemoryObjectReceiveStream[Message], limit: float) -> list[Message]:
    out: list[Message] = []
    while len(out) < limit:
        try:
            out.append(receive.receive_nowait())
        except anyio.WouldBlock:
            break
    return out
