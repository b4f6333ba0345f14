"""One long-polling Fetch per source broker for all of a flow's partitions on it.

A copier subscribes its partition at a position and receives chunks in order. The
fetcher asks each leader for every subscribed partition that has room in its feed,
so the broker answers as soon as any of them has data; a partition whose copier is
still busy is left out, and while any is left out the fetcher polls briefly instead
of long-polling, so a busy partition never waits behind an idle one. Buffered bytes
are bounded per feed (chunks) and overall (`max_buffered_bytes`).
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.data import FetchedPartition, TopicPartition, fetch
from broker.protocol.batch import iter_valid_prefix
from broker.protocol.errors import ErrorCode
from mirror.backoff import Backoff

log = logging.getLogger(__name__)

FEED_CHUNKS = 2
SHORT_WAIT_MS = 5


@dataclass(frozen=True)
class Chunk:
    position: int  # the fetch offset this answers
    fetched: FetchedPartition


FeedItem = Chunk | Exception


@dataclass
class _Feed:
    tp: TopicPartition
    position: int
    send: MemoryObjectSendStream[FeedItem]
    buffered_bytes: int = 0
    failed: bool = field(default=False)
    last_high_watermark: int = -1

    def has_room(self) -> bool:
        return not self.failed and self.send.statistics().current_buffer_used < FEED_CHUNKS


@dataclass(frozen=True)
class FetchSettings:
    max_wait_ms: int = 500
    # 4 MiB chunks: a copy span (and the target's span) per chunk, so catching up at 1 MiB
    # made four times the spans; with tracing at 1 % the mirror caught up at 0.78x of its
    # untraced rate, at 4 MiB 1.03x, untraced rate unchanged (docs/benchmarks.md "Tracing").
    partition_max_bytes: int = 4 << 20
    max_bytes: int = 8 << 20
    max_buffered_bytes: int = 64 << 20


class SourceFetcher:
    def __init__(self, client: KafkaClient, settings: FetchSettings, lane: str = "fetch") -> None:
        self.client = client
        self.settings = settings
        self.lane = lane
        self._feeds: dict[TopicPartition, _Feed] = {}
        self._wakeup = anyio.Event()
        self._rotation = 0

    def subscribe(self, tp: TopicPartition, position: int) -> MemoryObjectReceiveStream[FeedItem]:
        """Start (or restart) feeding `tp` from `position`; chunks arrive in order."""
        self.unsubscribe(tp)
        send, receive = anyio.create_memory_object_stream[FeedItem](FEED_CHUNKS)
        self._feeds[tp] = _Feed(tp, position, send)
        self.poke()
        return receive

    def unsubscribe(self, tp: TopicPartition) -> None:
        feed = self._feeds.pop(tp, None)
        if feed is not None:
            feed.send.close()

    def taken(self, tp: TopicPartition, chunk: Chunk) -> None:
        """A copier took `chunk` off its feed: room for more."""
        feed = self._feeds.get(tp)
        if feed is not None:
            feed.buffered_bytes -= len(chunk.fetched.records)
        self.poke()

    def poke(self) -> None:
        self._wakeup.set()

    @property
    def buffered_bytes(self) -> int:
        return sum(f.buffered_bytes for f in self._feeds.values())

    async def run(self) -> None:
        backoff = Backoff(max_s=5.0)
        while True:
            ready = self._rotated([f for f in self._feeds.values() if f.has_room()])
            if not ready or self.buffered_bytes >= self.settings.max_buffered_bytes:
                self._wakeup = anyio.Event()
                with anyio.move_on_after(1.0):
                    await self._wakeup.wait()
                continue
            some_full = len(ready) < len(self._feeds)
            max_wait_ms = SHORT_WAIT_MS if some_full else self.settings.max_wait_ms
            try:
                await self._fetch_round(ready, max_wait_ms)
                backoff.reset()
            except (KafkaError, KafkaConnectionError) as exc:
                delay_s = backoff.next_delay_s()
                log.warning("fetching from the source failed: %s; retrying in %.1fs", exc, delay_s)
                await anyio.sleep(delay_s)

    def _rotated(self, feeds: list[_Feed]) -> list[_Feed]:
        """Start each request at a different partition: brokers fill a response in request
        order up to their size limit, so a fixed order would starve the last partitions."""
        if not feeds:
            return feeds
        self._rotation = (self._rotation + 1) % len(feeds)
        return feeds[self._rotation :] + feeds[: self._rotation]

    async def _fetch_round(self, ready: list[_Feed], max_wait_ms: int) -> None:
        by_leader: dict[int, list[_Feed]] = defaultdict(list)
        for feed in ready:
            try:
                by_leader[await self.client.leader_for(*feed.tp)].append(feed)
            except KafkaError as exc:
                self._fail(feed, exc)
        async with anyio.create_task_group() as tg:
            for leader, feeds in by_leader.items():
                tg.start_soon(self._fetch_from, leader, feeds, max_wait_ms)

    async def _fetch_from(self, leader: int, feeds: list[_Feed], max_wait_ms: int) -> None:
        positions = {f.tp: f.position for f in feeds}
        results = await fetch(
            self.client,
            leader,
            positions,
            partition_max_bytes=self.settings.partition_max_bytes,
            max_bytes=self.settings.max_bytes,
            max_wait_ms=max_wait_ms,
            lane=self.lane,
        )
        refresh = False
        for feed in feeds:
            fetched = results.get(feed.tp)
            if self._feeds.get(feed.tp) is not feed or fetched is None:
                continue  # resubscribed meanwhile, or not answered
            if fetched.error:
                refresh |= fetched.error != ErrorCode.offset_out_of_range
                self._fail(feed, KafkaError(fetched.error, f"Fetch {feed.tp[0]}[{feed.tp[1]}]"))
                continue
            self._deliver(feed, fetched)
        if refresh:
            await self.client.refresh_metadata(sorted({f.tp[0] for f in feeds}))

    def _deliver(self, feed: _Feed, fetched: FetchedPartition) -> None:
        if not fetched.records and fetched.high_watermark == feed.last_high_watermark:
            return  # nothing new for an idle partition
        feed.last_high_watermark = fetched.high_watermark
        next_position = feed.position
        for header in iter_valid_prefix(fetched.records):
            next_position = max(next_position, header.next_offset)
        chunk = Chunk(feed.position, fetched)
        feed.position = next_position
        feed.buffered_bytes += len(fetched.records)
        try:
            feed.send.send_nowait(chunk)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            feed.failed = True  # the copier went away or restarts; it will resubscribe

    def _fail(self, feed: _Feed, error: Exception) -> None:
        """Hand the error to the copier (it restarts from its resume point)."""
        feed.failed = True
        try:
            feed.send.send_nowait(error)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            feed.send.close()


class FetcherPool:
    """Several fetchers, each on its own connection, sharing a flow's partitions.

    One fetch in flight per broker connection leaves the link idle while a response is
    built and parsed; a few lanes keep a source broker busy (a partition always uses the
    same lane, so its chunks stay in order).
    """

    def __init__(self, client: KafkaClient, settings: FetchSettings, lanes: int = 2) -> None:
        assert lanes >= 1
        self.fetchers = [SourceFetcher(client, settings, f"fetch-{i}") for i in range(lanes)]

    def for_partition(self, tp: TopicPartition) -> SourceFetcher:
        return self.fetchers[zlib.crc32(f"{tp[0]}:{tp[1]}".encode()) % len(self.fetchers)]

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for fetcher in self.fetchers:
                tg.start_soon(fetcher.run)
