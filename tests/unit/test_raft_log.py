"""The log's durability bookkeeping: applying each step's Persist to the stored state must
reproduce the in-memory log exactly, whatever mix of appends, truncations, compactions and
snapshot installs happened (that is what makes crash-restart sound)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.kraft import Entry, Persist, PersistedState, RaftLog, Snapshot


def held(log: RaftLog) -> tuple[Entry, ...]:
    return log.entries(log.first_index, log.last_index + 1)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_persisting_each_steps_changes_mirrors_the_log(data: st.DataObject) -> None:
    log = RaftLog()
    stored = PersistedState()
    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        ops = ["append"]
        if log.last_index >= log.first_index:
            ops += ["truncate", "compact", "install_matching"]
        ops.append("install_conflicting")
        op = data.draw(st.sampled_from(ops))
        if op == "append":
            term = log.last_term + data.draw(st.integers(0, 1))
            count = data.draw(st.integers(1, 4))
            start = log.last_index + 1
            log.append([Entry(term, start + i, b"%d" % (start + i)) for i in range(count)])
        elif op == "truncate":
            log.truncate(data.draw(st.integers(log.first_index, log.last_index)))
        elif op == "compact":
            log.compact(data.draw(st.integers(log.first_index, log.last_index)), b"c")
        elif op == "install_matching":
            index = data.draw(st.integers(log.first_index, log.last_index))
            at = log.term_at(index)
            assert at is not None
            log.install(Snapshot(index, at, b"m"))
        else:
            index = log.snapshot.last_index + data.draw(st.integers(1, 6))
            log.install(Snapshot(index, log.last_term + 1, b"x"))
        snapshot, truncate_from, entries = log.take_unstable()
        stored = stored.apply(Persist(None, snapshot, truncate_from, entries))
        assert (stored.snapshot, stored.entries) == (log.snapshot, held(log)), op
        restored = RaftLog(stored.snapshot, stored.entries)
        assert held(restored) == held(log) and restored.last_term == log.last_term
        assert log.take_unstable() == (None, None, ())


def test_term_lookups_used_for_back_off() -> None:
    log = RaftLog(Snapshot(2, 1), [Entry(1, 3), Entry(2, 4), Entry(2, 5), Entry(4, 6)])
    assert [log.term_at(i) for i in range(0, 8)] == [None, None, 1, 1, 2, 2, 4, None]
    assert log.first_index_of_term(5) == 4
    assert log.first_index_of_term(3) == 3
    assert log.last_index_of_term(2) == 5
    assert log.last_index_of_term(3) is None
    assert log.last_index_of_term(1) == 3
    assert RaftLog(Snapshot(2, 1)).last_index_of_term(1) == 2
