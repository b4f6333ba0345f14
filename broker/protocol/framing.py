"""Length-prefixed frame splitting (sans-I/O): feed bytes in, take whole frames out."""

from __future__ import annotations

import struct
from collections import deque

from broker.protocol.errors import FrameTooLarge

_SIZE = struct.Struct(">i")
DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes default


class FrameReader:
    """Accumulates received bytes and yields complete frames without their size prefix.

    Raises FrameTooLarge as soon as a size prefix exceeds `max_frame_bytes`, before
    buffering the body, so a hostile peer cannot make us allocate gigabytes.

    Received chunks are kept as they came (memoryviews, sliced without copying) and each
    frame is joined out of them once: a growing bytearray copied every byte two or three
    times, ten times the cost for an 8 MB frame.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._needed = -1  # body size of the frame being assembled, -1 when unknown

    def feed(self, data: bytes) -> list[bytearray]:
        if data:
            self._chunks.append(memoryview(data))
            self._buffered += len(data)
        frames: list[bytearray] = []
        while True:
            if self._needed < 0:
                if self._buffered < 4:
                    break
                (size,) = _SIZE.unpack(self._take(4))
                if size < 0 or size > self.max_frame_bytes:
                    raise FrameTooLarge(f"frame of {size} bytes (limit {self.max_frame_bytes})")
                self._needed = size
            if self._buffered < self._needed:
                break
            frames.append(self._take(self._needed))
            self._needed = -1
        return frames

    def _take(self, size: int) -> bytearray:
        """The next `size` buffered bytes, copied once, mutable (the log stamps offsets into
        produced batches where they lie)."""
        assert size <= self._buffered, "take only what is buffered"
        pieces = []
        remaining = size
        while remaining:
            chunk = self._chunks[0]
            if len(chunk) <= remaining:
                pieces.append(self._chunks.popleft())
                remaining -= len(chunk)
            else:
                pieces.append(chunk[:remaining])
                self._chunks[0] = chunk[remaining:]
                remaining = 0
        self._buffered -= size
        return bytearray().join(pieces)

    @property
    def buffered_bytes(self) -> int:
        return self._buffered


class FrameAssembler:
    """FrameReader for a receiver that reads *into* buffers it is given (recv_into), so a
    large frame is written by the kernel straight into its own bytearray.

    `buffer()` says where the next received bytes go; `filled(n)` says n bytes went there
    and returns the frames completed. Until a frame's size is known the bytes go to a
    scratch buffer, from which small frames are copied out; a frame too big for the scratch
    gets a bytearray of its size, seeded with the part already received, and the rest is
    received into it directly — nothing of it is copied twice.
    """

    def __init__(
        self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, scratch_bytes: int = 64 << 10
    ) -> None:
        assert scratch_bytes > _SIZE.size
        self.max_frame_bytes = max_frame_bytes
        self._scratch = bytearray(scratch_bytes)
        self._scratch_used = 0
        self._body: bytearray | None = None  # the large frame being received, if any
        self._body_filled = 0
        self.refused: FrameTooLarge | None = None  # set at a bad size: receive no more

    def buffer(self) -> memoryview:
        """Where the next received bytes are to be written (never empty)."""
        if self._body is not None:
            return memoryview(self._body)[self._body_filled :]
        return memoryview(self._scratch)[self._scratch_used :]

    def filled(self, nbytes: int) -> list[bytearray]:
        """`nbytes` were written at the start of `buffer()`: the frames now complete (those
        before a bad size prefix, which sets `refused`)."""
        assert self.refused is None, "nothing is received after a refused frame"
        if self._body is None:
            self._scratch_used += nbytes
            assert self._scratch_used <= len(self._scratch)
            return self._split_scratch()
        self._body_filled += nbytes
        assert self._body_filled <= len(self._body)
        if self._body_filled < len(self._body):
            return []
        done, self._body = self._body, None
        return [done]

    def _split_scratch(self) -> list[bytearray]:
        frames: list[bytearray] = []
        scratch, used, at = self._scratch, self._scratch_used, 0
        while used - at >= _SIZE.size:
            (size,) = _SIZE.unpack_from(scratch, at)
            if size < 0 or size > self.max_frame_bytes:
                self.refused = FrameTooLarge(
                    f"frame of {size} bytes (limit {self.max_frame_bytes})"
                )
                break
            start = at + _SIZE.size
            if used - start >= size:
                frames.append(scratch[start : start + size])
                at = start + size
            elif _SIZE.size + size > len(scratch):  # too big for the scratch: its own buffer
                self._body = bytearray(size)
                self._body[: used - start] = scratch[start:used]
                self._body_filled, at = used - start, used
                break
            else:
                break  # a small frame not all received yet
        if at:
            rest = scratch[at:used]
            scratch[: len(rest)] = rest
            self._scratch_used = len(rest)
        return frames


def frame(payload: bytes) -> bytes:
    """Prefix `payload` with its big-endian int32 size."""
    return _SIZE.pack(len(payload)) + payload
