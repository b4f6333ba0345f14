"""The controller's durable Raft state (WAL), the strict encoding of Raft messages and WAL
records, and the quorum string parser."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.kraft.controller.codec import (
    CodecError,
    decode_message,
    decode_persist,
    encode_message,
    encode_persist,
)
from broker.kraft.controller.state import MetadataState, decode_batch, encode_batch
from broker.kraft.controller.wal import RaftWal
from broker.kraft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Message,
    PreVoteRequest,
    PreVoteResponse,
    Snapshot,
    VoteRequest,
    VoteResponse,
)
from broker.kraft.metadata import CreateTopic, MetadataImage, RegisterBroker, SetConfig
from broker.kraft.quorum import QuorumError, parse_quorum
from broker.kraft.storage import HardState, Persist, PersistedState

_n = st.integers(min_value=0, max_value=2**40)
_data = st.binary(max_size=40)


@st.composite
def _entries(draw: st.DrawFn, first: int = 1) -> tuple[Entry, ...]:
    count = draw(st.integers(0, 5))
    term = draw(st.integers(0, 5))
    out = []
    for i in range(count):
        term += draw(st.integers(0, 1))
        kind = draw(st.sampled_from(list(EntryKind)))
        out.append(Entry(term, first + i, draw(_data), kind))
    return tuple(out)


_snapshots = st.builds(Snapshot, _n, _n, _data)
_common = {"src": _n, "dst": _n, "term": _n}
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(PreVoteRequest, **_common, last_log_index=_n, last_log_term=_n),
    st.builds(PreVoteResponse, **_common, granted=st.booleans()),
    st.builds(VoteRequest, **_common, last_log_index=_n, last_log_term=_n),
    st.builds(VoteResponse, **_common, granted=st.booleans()),
    st.builds(
        AppendEntriesRequest,
        **_common,
        prev_log_index=st.just(0),
        prev_log_term=_n,
        entries=_entries(),
        leader_commit=_n,
    ),
    st.builds(
        AppendEntriesResponse,
        **_common,
        success=st.booleans(),
        match_index=_n,
        rejected_index=_n,
        conflict_index=_n,
        conflict_term=st.none() | _n,
    ),
    st.builds(InstallSnapshotRequest, **_common, snapshot=_snapshots),
    st.builds(InstallSnapshotResponse, **_common, match_index=_n),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_message_round_trip(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Persist,
        st.none() | st.builds(HardState, _n, st.none() | _n, _n),
        st.none() | _snapshots,
        st.none() | _n,
        _entries(),
    )
)
def test_persist_round_trip(persist: Persist) -> None:
    assert decode_persist(encode_persist(persist)) == persist


def _vote() -> dict[str, object]:
    return json.loads(encode_message(VoteResponse(src=1, dst=2, term=3, granted=True)))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"{",
        b'{"type":"Nope"}',
        json.dumps({**_vote(), "granted": 1}).encode(),
        json.dumps({**_vote(), "term": -1}).encode(),
        json.dumps({**_vote(), "term": True}).encode(),
        json.dumps({**_vote(), "extra": 1}).encode(),
        json.dumps({k: v for k, v in _vote().items() if k != "src"}).encode(),
        encode_message(
            AppendEntriesRequest(
                src=1,
                dst=2,
                term=1,
                prev_log_index=5,
                prev_log_term=1,
                entries=(Entry(1, 9),),  # does not follow prev_log_index
                leader_commit=0,
            )
        ),
        encode_message(
            AppendEntriesRequest(
                src=1,
                dst=2,
                term=1,
                prev_log_index=0,
                prev_log_term=0,
                entries=(Entry(1, 1), Entry(1, 3)),  # a gap
                leader_commit=0,
            )
        ),
        b'{"type":"InstallSnapshotRequest","src":1,"dst":2,"term":1,"snapshot":[1,1,"!!"]}',
        b'{"type":"AppendEntriesRequest","src":1,"dst":2,"term":1,"prev_log_index":0,'
        b'"prev_log_term":0,"leader_commit":0,"entries":[[1,1,"weird",""]]}',
    ],
)
def test_garbage_messages_are_rejected(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_message(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_message(data)
    with contextlib.suppress(CodecError):
        decode_persist(data)


# ----------------------------------------------------------------------------- WAL


def _persists() -> list[Persist]:
    return [
        Persist(HardState(1, 1, 0), None, None, (Entry(1, 1, kind=EntryKind.NOOP),)),
        Persist(HardState(1, 1, 1), None, None, (Entry(1, 2, b"a"), Entry(1, 3, b"b"))),
        Persist(None, None, 3, (Entry(2, 3, b"c"),)),  # a follower's conflict
        Persist(HardState(2, None, 3), None, None, ()),
    ]


def _expected(persists: list[Persist]) -> PersistedState:
    state = PersistedState()
    for p in persists:
        state = state.apply(p)
    return state


def test_wal_restart_rebuilds_the_state(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    wal, state = RaftWal.open(path)
    assert state == PersistedState()
    for persist in _persists():
        wal.append(persist)
    wal.close()
    _, restored = RaftWal.open(path)
    assert restored == _expected(_persists())


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 20])
def test_wal_torn_tail_is_cut(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "raft.wal"
    wal, _ = RaftWal.open(path)
    for persist in _persists():
        wal.append(persist)
    wal.close()
    whole = path.stat().st_size
    os.truncate(path, whole - cut)  # a crash in the middle of the last record
    wal, restored = RaftWal.open(path)
    assert restored == _expected(_persists()[:-1])
    good = path.stat().st_size
    assert good < whole - cut
    wal.append(_persists()[-1])  # appends go after the good prefix
    wal.close()
    assert RaftWal.open(path)[1] == _expected(_persists())


def test_wal_corrupt_checksum_counts_as_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    wal, _ = RaftWal.open(path)
    for persist in _persists():
        wal.append(persist)
    wal.close()
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert RaftWal.open(path)[1] == _expected(_persists()[:-1])


def test_wal_rewrite_after_snapshot_keeps_it_small(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    wal, _ = RaftWal.open(path)
    state = PersistedState()
    for i in range(1, 201):
        persist = Persist(HardState(1, 1, i - 1), None, None, (Entry(1, i, b"x" * 100),))
        state = state.apply(persist)
        wal.append(persist)
    big = path.stat().st_size
    compact = Persist(None, Snapshot(190, 1, b"image"), None, ())
    state = state.apply(compact)
    wal.rewrite(state)
    wal.append(Persist(HardState(1, 1, 200), None, None, (Entry(1, 201, b"y"),)))
    state = state.apply(Persist(HardState(1, 1, 200), None, None, (Entry(1, 201, b"y"),)))
    wal.close()
    assert path.stat().st_size < big / 10
    assert RaftWal.open(path)[1] == state
    assert not path.with_name("raft.wal.tmp").exists()


# ----------------------------------------------------------------------------- state


def test_metadata_stream_serves_records_then_snapshot_for_old_offsets() -> None:
    state = MetadataState()
    batch = [RegisterBroker(1, "i", "h", 9092, 1), SetConfig("broker:1", "k", "v")]
    state.apply(Entry(1, 1, encode_batch(batch)))
    state.apply(Entry(1, 2, kind=EntryKind.NOOP))
    state.apply(Entry(1, 3, encode_batch([CreateTopic("t", "tid", {})])))
    state.apply(Entry(1, 4, encode_batch([CreateTopic("t", "tid2", {})])))  # refused
    topic = state.image.topic("t")
    assert topic is not None and topic.topic_id == "tid"
    whole = state.read(0)
    assert whole is not None and whole.snapshot is None and whole.next_offset == 4
    assert decode_batch(b"\n".join(whole.records)) == (*batch, CreateTopic("t", "tid", {}))
    tail = state.read(1)
    assert tail is not None and [r for r in tail.records] == [whole.records[-1]]
    assert state.read(4) is None
    state.compacted(Snapshot(3, 1, state.image.snapshot()))
    old = state.read(2)
    assert old is not None and old.snapshot is not None and old.records == ()
    assert MetadataImage.from_snapshot(old.snapshot) == state.image
    assert old.next_offset == 4


# ----------------------------------------------------------------------------- quorum


def test_parse_quorum() -> None:
    assert parse_quorum("1@a:1,2@b.example:9093, 3@[::1]:7") == {
        1: ("a", 1),
        2: ("b.example", 9093),
        3: ("::1", 7),
    }


@pytest.mark.parametrize(
    "text", ["", "1@a", "a@b:1", "1@:5", "1@a:0", "1@a:70000", "1@a:1,,2@b:2", "1@a:1,1@b:2", "1"]
)
def test_parse_quorum_rejects(text: str) -> None:
    with pytest.raises(QuorumError) as info:
        parse_quorum(text)
    assert "\n" not in str(info.value)
