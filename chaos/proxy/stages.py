"""What one toxic does to one direction of one connection: chunks and time in, events out (pure).

A stage is told each chunk with the time it arrived (`data`), the end of its input (`end`),
and is asked for its next timer (`deadline_s`, then `tick`). It answers with events, each
stamped with the time it should happen: `Send` these bytes, `End` the direction (a FIN),
`Close` the connection, `Reset` it (an RST). Delays are future stamps, not sleeps, so a
latency stage is a delay line: it keeps reading while earlier chunks wait, and the driver
(link.py) only sleeps until the earliest stamp. Stages keep per-connection state (bytes
already let through, when the wire is next free) and draw randomness only from the
`random.Random` they are given, so a seeded drill replays the same jitter and slices.

The semantics follow Toxiproxy's toxics/*.go; where ours differ it is said on the stage.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

MS = 1e-3
US = 1e-6
BANDWIDTH_SLICE_S = 0.1
"""Toxiproxy's bandwidth toxic lets a large chunk out in pieces of 100 ms worth of bytes."""


@dataclass(frozen=True, slots=True)
class Send:
    at_s: float
    data: bytes


@dataclass(frozen=True, slots=True)
class End:
    """The direction is over: half-close the destination (its peer reads EOF)."""

    at_s: float


@dataclass(frozen=True, slots=True)
class Close:
    """Close the whole connection, both sockets, as Toxiproxy closes a link."""

    at_s: float


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the whole connection with an RST on both sockets."""

    at_s: float


Event = Send | End | Close | Reset


def stamped(event: Event, at_s: float) -> Event:
    """The same event at another time."""
    if isinstance(event, Send):
        return Send(at_s, event.data)
    return type(event)(at_s)


class Stage:
    """A toxic applied to one direction of one connection. The base passes everything on."""

    def __init__(self, attributes: Mapping[str, int], now_s: float, rng: random.Random) -> None:
        self.created_s = now_s
        self.rng = rng
        self.configure(attributes)

    def configure(self, attributes: Mapping[str, int]) -> None:
        """Take new attribute values (an API update) and keep the connection's state."""

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        return [Send(now_s, chunk)]

    def end(self, now_s: float) -> list[Event]:
        return [End(now_s)]

    def deadline_s(self) -> float | None:
        """When `tick` has something to do, if ever."""
        return None

    def tick(self, now_s: float) -> list[Event]:
        return []

    def removed(self, now_s: float) -> list[Event]:
        """The toxic was deleted while this connection lives."""
        return []


class Latency(Stage):
    """Each chunk leaves `latency ± jitter` ms after it arrived, in order (never overtaking)."""

    _last_s = -math.inf

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.latency_ms = attributes["latency"]
        self.jitter_ms = attributes["jitter"]

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        delay_ms = self.latency_ms
        if self.jitter_ms > 0:  # as Go's rand.Int63n(2j) - j: within [-j, j)
            delay_ms += self.rng.randrange(-self.jitter_ms, self.jitter_ms)
        self._last_s = max(self._last_s, now_s + delay_ms * MS)
        return [Send(self._last_s, chunk)]

    def end(self, now_s: float) -> list[Event]:
        return [End(max(self._last_s, now_s))]


class Bandwidth(Stage):
    """A wire of `rate` KB/s: a chunk leaves once the wire has carried it, queued behind the
    chunks before it, in pieces of at most 100 ms of bytes. Rate 0 means unlimited."""

    _free_s = -math.inf

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.rate_bytes_per_s = attributes["rate"] * 1000

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        rate = self.rate_bytes_per_s
        if rate <= 0:
            self._free_s = max(self._free_s, now_s)
            return [Send(self._free_s, chunk)]
        piece_bytes = max(1, int(rate * BANDWIDTH_SLICE_S))
        events: list[Event] = []
        at_s = max(self._free_s, now_s)
        for start in range(0, len(chunk), piece_bytes):
            piece = chunk[start : start + piece_bytes]
            at_s += len(piece) / rate
            events.append(Send(at_s, piece))
        self._free_s = at_s
        return events

    def end(self, now_s: float) -> list[Event]:
        return [End(max(self._free_s, now_s))]


class SlowClose(Stage):
    """Data passes untouched; the end of the direction is held back `delay` ms."""

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.delay_ms = attributes["delay"]

    def end(self, now_s: float) -> list[Event]:
        return [End(now_s + self.delay_ms * MS)]


class Timeout(Stage):
    """Swallow every chunk; close the connection `timeout` ms after the toxic took hold
    (never, for 0). Deleting the toxic closes the connection too, as in Toxiproxy: bytes
    were dropped, so the stream can no longer be trusted (a Kafka client would read garbage)."""

    _fired = False

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.timeout_ms = attributes["timeout"]

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        return []

    def deadline_s(self) -> float | None:
        if self._fired or self.timeout_ms == 0:
            return None
        return self.created_s + self.timeout_ms * MS

    def tick(self, now_s: float) -> list[Event]:
        self._fired = True
        return [Close(now_s)]

    def removed(self, now_s: float) -> list[Event]:
        return [Close(now_s)]


class ResetPeer(Stage):
    """The first chunk (or the end of input) starts a timer of `timeout` ms; when it fires the
    connection is reset (RST both ways). Everything from that first chunk on is dropped. A
    started timer still fires if the toxic is deleted, as in Toxiproxy. Ours always sends an
    RST; Toxiproxy only does when the toxic existed before the connection did."""

    _reset_at_s: float | None = None

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.timeout_ms = attributes["timeout"]

    def _trigger(self, now_s: float) -> list[Event]:
        if self._reset_at_s is None:
            self._reset_at_s = now_s + self.timeout_ms * MS
        return []

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        return self._trigger(now_s)

    def end(self, now_s: float) -> list[Event]:
        return self._trigger(now_s)

    def deadline_s(self) -> float | None:
        return self._reset_at_s

    def tick(self, now_s: float) -> list[Event]:
        self._reset_at_s = None
        return [Reset(now_s)]

    def removed(self, now_s: float) -> list[Event]:
        if self._reset_at_s is None:
            return []
        return [Reset(max(self._reset_at_s, now_s))]


class Slicer(Stage):
    """Cut each chunk into slices of about `average_size` ± `size_variation` bytes, `delay` µs
    apart, as Toxiproxy does: halve until a piece is within the variation of the average."""

    _ready_s = -math.inf

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.average_size = attributes["average_size"]
        self.size_variation = attributes["size_variation"]
        self.delay_us = attributes["delay"]

    def cuts(self, size: int) -> list[int]:
        """Slice boundaries: [0, a, b, …, size]."""
        bounds = [0]
        pending = [(0, size)]  # a stack, right half pushed first so slices come out in order
        while pending:
            start, end = pending.pop()
            if (end - start) - self.average_size <= self.size_variation:
                bounds.append(end)
                continue
            mid = start + (end - start) // 2
            if self.size_variation > 0:
                mid += self.rng.randrange(-self.size_variation, self.size_variation)
            pending.append((mid, end))
            pending.append((start, mid))
        return bounds

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        at_s = max(self._ready_s, now_s)
        bounds = self.cuts(len(chunk))
        events: list[Event] = []
        for start, end in itertools.pairwise(bounds):
            events.append(Send(at_s, chunk[start:end]))
            at_s += self.delay_us * US
        self._ready_s = at_s
        return events

    def end(self, now_s: float) -> list[Event]:
        return [End(max(self._ready_s, now_s))]


class LimitData(Stage):
    """Let `bytes` bytes through in all (counting across updates), then close the connection."""

    passed_bytes = 0

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.limit_bytes = attributes["bytes"]

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        room = max(0, self.limit_bytes - self.passed_bytes)
        if room == 0 and self.passed_bytes > 0:
            return []  # already closed; the driver is tearing down
        events: list[Event] = []
        if room:
            piece = chunk[:room]
            self.passed_bytes += len(piece)
            events.append(Send(now_s, piece))
        if self.passed_bytes >= self.limit_bytes:
            events.append(Close(now_s))
        return events


STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}
