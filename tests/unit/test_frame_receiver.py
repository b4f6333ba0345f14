"""Frames received into buffers the receiver provides (FrameAssembler, FrameProtocol): the
same frames as FrameReader for any cut of the byte stream, and over a real TCP connection."""

from __future__ import annotations

import itertools
import struct

import anyio
import pytest
from anyio.abc import SocketStream
from hypothesis import given
from hypothesis import strategies as st

from broker.frame_receiver import FrameProtocol, StreamFrames, frame_source
from broker.protocol.framing import FrameAssembler, FrameTooLarge, frame


def _receive(assembler: FrameAssembler, data: bytes) -> list[bytearray]:
    """Write `data` into the assembler's buffers as a recv_into would, in pieces that fit."""
    frames: list[bytearray] = []
    view = memoryview(data)
    while view:
        buffer = assembler.buffer()
        assert len(buffer) > 0, "the assembler always offers room"
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        view = view[size:]
        frames += assembler.filled(size)
    return frames


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    scratch_bytes=st.integers(5, 400),
)
def test_assembler_reassembles_frames_cut_anywhere(
    payloads: list[bytes], cuts: list[int], scratch_bytes: int
) -> None:
    """Small frames come out of the scratch, frames larger than it get their own buffer."""
    stream = b"".join(frame(p) for p in payloads)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    assembler = FrameAssembler(scratch_bytes=scratch_bytes)
    frames = []
    for start, end in itertools.pairwise(bounds):
        frames += _receive(assembler, stream[start:end])
    assert frames == payloads
    assert all(isinstance(f, bytearray) for f in frames), "frames are mutable"
    assert len(assembler.buffer()) == scratch_bytes, "nothing left half-received"


def test_a_large_frame_is_received_into_its_own_buffer() -> None:
    assembler = FrameAssembler(scratch_bytes=64)
    payload = bytes(range(256)) * 40
    assert _receive(assembler, frame(payload)[:100]) == []
    room = assembler.buffer()
    assert len(room) == len(payload) - 96, "the rest of the body goes straight to its buffer"
    assert _receive(assembler, frame(payload)[100:]) == [payload]


@pytest.mark.parametrize("size", [-1, 1025])
def test_assembler_refuses_oversize_and_negative_sizes_after_the_frames_before(
    size: int,
) -> None:
    assembler = FrameAssembler(max_frame_bytes=1024)
    data = frame(b"fine") + struct.pack(">i", size) + b"rest"
    buffer = assembler.buffer()
    buffer[: len(data)] = data
    assert assembler.filled(len(data)) == [b"fine"]
    assert isinstance(assembler.refused, FrameTooLarge)


PAYLOADS = [b"x" * 10, b"", b"y" * (3 << 20), b"z" * 70_000, b"w" * 5]


async def _serve_frames(payloads: list[bytes]) -> tuple[list[bytes], type]:
    """Send `payloads` framed over a real loopback connection, in odd-sized writes; what the
    receiver made of them, and which receiver frame_source chose."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    received: list[bytes] = []
    chosen: list[type] = []

    async def receive(stream: SocketStream) -> None:
        frames = frame_source(stream, 8 << 20)
        chosen.append(type(frames))
        try:
            while True:
                received.append(bytes(await frames.receive_frame()))
        except anyio.EndOfStream:
            tasks.cancel_scope.cancel()

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, receive)
        data = b"".join(frame(p) for p in payloads)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            for start in range(0, len(data), 99_991):
                await client.send(data[start : start + 99_991])
    return received, chosen[0]


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_frames_over_a_real_connection(anyio_backend: str) -> None:
    """asyncio gets the zero-copy receiver, trio the portable one; both give every frame,
    then EndOfStream when the peer closes."""
    received, chosen = await _serve_frames(PAYLOADS)
    assert received == PAYLOADS
    assert chosen is (FrameProtocol if anyio_backend == "asyncio" else StreamFrames)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_oversize_frame_fails_the_receiver_and_reading_stops(anyio_backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    failures: list[BaseException] = []

    async def receive(stream: SocketStream) -> None:
        frames = frame_source(stream, 1 << 20)
        assert isinstance(frames, FrameProtocol)
        assert bytes(await frames.receive_frame()) == b"ok"
        with pytest.raises(FrameTooLarge) as refused:
            await frames.receive_frame()
        failures.append(refused.value)
        tasks.cancel_scope.cancel()

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, receive)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(frame(b"ok") + struct.pack(">i", 2 << 20) + b"x" * 1000)
            await anyio.sleep(5)  # cancelled by the receiver
    assert len(failures) == 1
