"""PartitionLog against a simple in-memory model, driven by hypothesis."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import NewRecord, build_batch, decode_batch_records, decode_batches

CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=64)
keys = st.sampled_from([b"a", b"b", b"c", None])
values = st.none() | st.binary(max_size=40)
record_lists = st.lists(st.tuples(keys, values), min_size=1, max_size=6)


@dataclass
class ModelBatch:
    base_offset: int
    records: list[tuple[bytes | None, bytes | None]]

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.records) - 1


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="log-model-"))
        self.log = PartitionLog.open(self.directory, CONFIG, now_ms=0)
        self.batches: list[ModelBatch] = []
        self.start = 0
        self.end = 0
        self.epoch = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(records=record_lists, new_epoch=st.booleans(), compression=st.sampled_from([0, 2, 3]))
    def append(
        self, records: list[tuple[bytes | None, bytes | None]], new_epoch: bool, compression: int
    ) -> None:
        self.epoch += new_epoch
        data = build_batch(
            [NewRecord(k, v, (), 1000 + self.end) for k, v in records], compression=compression
        )
        info = self.log.append(bytearray(data), leader_epoch=self.epoch, now_ms=0)
        assert info.first_offset == self.end
        self.batches.append(ModelBatch(self.end, records))
        self.end += len(records)

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end))
        max_bytes = data.draw(st.integers(1, 2000))
        got = decode_batches(self.log.read(offset, max_bytes))
        if offset == self.end:
            assert got == []
            return
        assert got[0].offset <= offset <= max(r.offset for r in got)
        expected = {offset: (key, value) for offset, key, value in self.model_records()}
        assert all(expected.get(r.offset, (r.key, r.value)) == (r.key, r.value) for r in got)

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(max(self.start - 3, 0), self.end))
        self.log.truncate_to(offset)
        if offset >= self.end:
            return
        if offset < self.start:
            self.batches, self.start, self.end = [], offset, offset
            return
        cut = next(b for b in self.batches if b.last_offset >= offset)
        self.batches = [b for b in self.batches if b.base_offset < cut.base_offset]
        self.end = cut.base_offset
        if self.end < self.start:
            self.batches, self.end = [], self.start

    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end))
        self.log.delete_records_before(offset)
        self.start = offset

    @precondition(lambda self: self.log.active.size_bytes > 0)
    @rule()
    def roll(self) -> None:
        self.log.roll(now_ms=0)

    @rule(clean=st.booleans())
    def reopen(self, clean: bool) -> None:
        epochs = [self.log.end_offset_for_epoch(e) for e in range(-1, self.epoch + 2)]
        if clean:
            self.log.close()
        else:  # a crash: descriptors vanish, no clean-shutdown marker
            for segment in self.log._segments:
                segment.close()
        self.log = PartitionLog.open(self.directory, CONFIG, now_ms=0)
        assert [self.log.end_offset_for_epoch(e) for e in range(-1, self.epoch + 2)] == epochs

    def model_records(self) -> list[tuple[int, bytes | None, bytes | None]]:
        return [
            (batch.base_offset + i, key, value)
            for batch in self.batches
            for i, (key, value) in enumerate(batch.records)
            if batch.base_offset + i >= self.start
        ]

    @invariant()
    def matches_model(self) -> None:
        assert (self.log.log_start_offset, self.log.log_end_offset) == (self.start, self.end)
        stored = [
            (r.offset, r.key, r.value)
            for header, data in self.log.iter_batches(self.start)
            for r in decode_batch_records(data, header)
            if r.offset >= self.start
        ]
        assert stored == self.model_records()
        if stored:
            assert self.log.end_offset_for_epoch(self.log.latest_epoch)[1] == self.end


TestLogModel = LogModel.TestCase
TestLogModel.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
