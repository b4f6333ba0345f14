"""Frames sent as segments (TransportSender on asyncio, StreamSender on trio) arrive whole and
in order over a real TCP connection, large segments included, with the receiver reading
slower than the sender writes (the transport pushes back and the sender waits)."""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from broker.frame_receiver import frame_source
from broker.frame_sender import StreamSender, TransportSender, frame_sender
from broker.protocol.codec import Frame
from broker.protocol.framing import frame


def _segments(number: int) -> Frame:
    """A frame as a response is written: small fields, a large body by reference, fields."""
    body = bytes([number % 256]) * (3 << 20)
    payload = b"head-%d" % number + body + b"tail"
    framed = frame(payload)
    return [framed[:10], memoryview(framed)[10 : 10 + len(body)], framed[10 + len(body) :]]


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_segmented_frames_arrive_whole_and_in_order(anyio_backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    sent = [_segments(n) for n in range(6)]
    received: list[bytes] = []

    async def receive(stream: SocketStream) -> None:
        frames = frame_source(stream, 8 << 20)
        for _ in sent:
            await anyio.sleep(0.01)  # slower than the sender: its transport fills up
            received.append(bytes(await frames.receive_frame()))
        tasks.cancel_scope.cancel()

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, receive)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            sender = frame_sender(client)
            expected = TransportSender if anyio_backend == "asyncio" else StreamSender
            assert isinstance(sender, expected)
            for segments in sent:
                await sender.send_frame(segments)
            await anyio.sleep(30)  # cancelled once everything was received
    assert received == [b"".join(bytes(s) for s in segments)[4:] for segments in sent]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sending_on_a_closed_stream_is_refused(anyio_backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with listener:
        client = await anyio.connect_tcp("127.0.0.1", port)
        sender = frame_sender(client)
        await client.aclose()
        with pytest.raises((anyio.ClosedResourceError, anyio.BrokenResourceError)):
            await sender.send_frame([frame(b"late")])
