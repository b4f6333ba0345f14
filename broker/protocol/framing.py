"""Length-prefixed frame splitting (sans-I/O): feed bytes in, take whole frames out."""

from __future__ import annotations

import struct

from broker.protocol.errors import FrameTooLarge

_SIZE = struct.Struct(">i")
DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes default


class FrameReader:
    """Accumulates received bytes and yields complete frames without their size prefix.

    Raises FrameTooLarge as soon as a size prefix exceeds `max_frame_bytes`, before
    buffering the body, so a hostile peer cannot make us allocate gigabytes.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._needed = -1  # body size of the frame being assembled, -1 when unknown

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while True:
            if self._needed < 0:
                if len(self._buffer) < 4:
                    break
                (size,) = _SIZE.unpack_from(self._buffer, 0)
                if size < 0 or size > self.max_frame_bytes:
                    raise FrameTooLarge(f"frame of {size} bytes (limit {self.max_frame_bytes})")
                self._needed = size
                del self._buffer[:4]
            if len(self._buffer) < self._needed:
                break
            with memoryview(self._buffer) as view:  # one copy out, not two
                frames.append(bytes(view[: self._needed]))
            del self._buffer[: self._needed]
            self._needed = -1
        return frames

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)


def frame(payload: bytes) -> bytes:
    """Prefix `payload` with its big-endian int32 size."""
    return _SIZE.pack(len(payload)) + payload
