"""Strict bytes for the Raft core's dataclasses: peer messages on the wire and WAL records.

Compact JSON with a type tag (bytes as base64), like the metadata records. Decoding checks
every field's presence, type and sign, and that an append's entries follow its
`prev_log_index`, raising `CodecError` for anything else: a peer sending garbage must not
reach the node, whose asserts would stop the driver.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from dataclasses import fields
from typing import Any

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
from broker.kraft.storage import HardState, Persist


class CodecError(ValueError):
    """Bytes that are not a well-formed encoding of a Raft message or WAL record."""


_MESSAGE_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        PreVoteRequest,
        PreVoteResponse,
        VoteRequest,
        VoteResponse,
        AppendEntriesRequest,
        AppendEntriesResponse,
        InstallSnapshotRequest,
        InstallSnapshotResponse,
    )
}

# Every message field, by name: its kind. All Raft numbers are non-negative.
_FIELD_KINDS = {
    "src": "int",
    "dst": "int",
    "term": "int",
    "last_log_index": "int",
    "last_log_term": "int",
    "prev_log_index": "int",
    "prev_log_term": "int",
    "leader_commit": "int",
    "match_index": "int",
    "rejected_index": "int",
    "conflict_index": "int",
    "conflict_term": "int?",
    "granted": "bool",
    "success": "bool",
    "entries": "entries",
    "snapshot": "snapshot",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise CodecError(f"{where}: expected base64 text, got {value!r}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CodecError(f"{where}: bad base64: {exc}") from exc


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CodecError(f"{where}: expected a non-negative int, got {value!r}")
    return value


def _list(value: object, length: int | None, where: str) -> list[Any]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise CodecError(f"{where}: expected a list of {length or 'any'} items, got {value!r}")
    return value


def _entry_to_json(entry: Entry) -> list[Any]:
    return [entry.term, entry.index, entry.kind.value, _b64(entry.data)]


def _entry_from_json(value: object) -> Entry:
    term, index, kind, data = _list(value, 4, "entry")
    if kind not in (EntryKind.COMMAND.value, EntryKind.NOOP.value):
        raise CodecError(f"entry: unknown kind {kind!r}")
    term, index = _int(term, "entry.term"), _int(index, "entry.index")
    return Entry(term, index, _unb64(data, "entry"), EntryKind(kind))


def _entries_from_json(value: object) -> tuple[Entry, ...]:
    entries = tuple(_entry_from_json(v) for v in _list(value, None, "entries"))
    for before, after in itertools.pairwise(entries):
        if after.index != before.index + 1 or after.term < before.term:
            raise CodecError(f"entries: {after.index} does not follow {before.index}")
    return entries


def _snapshot_to_json(snapshot: Snapshot) -> list[Any]:
    return [snapshot.last_index, snapshot.last_term, _b64(snapshot.data)]


def _snapshot_from_json(value: object) -> Snapshot:
    last_index, last_term, data = _list(value, 3, "snapshot")
    return Snapshot(
        _int(last_index, "snapshot.last_index"),
        _int(last_term, "snapshot.last_term"),
        _unb64(data, "snapshot"),
    )


def _field_to_json(kind: str, value: Any) -> Any:
    if kind == "entries":
        return [_entry_to_json(e) for e in value]
    if kind == "snapshot":
        return _snapshot_to_json(value)
    return value


def _field_from_json(kind: str, value: object, where: str) -> Any:
    if kind == "int?":
        return None if value is None else _int(value, where)
    if kind == "int":
        return _int(value, where)
    if kind == "bool":
        if not isinstance(value, bool):
            raise CodecError(f"{where}: expected a bool, got {value!r}")
        return value
    if kind == "entries":
        return _entries_from_json(value)
    return _snapshot_from_json(value)


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _loads_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CodecError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise CodecError(f"{what} must be a JSON object")
    return obj


def encode_message(message: Message) -> bytes:
    out: dict[str, Any] = {"type": type(message).__name__}
    for f in fields(message):
        out[f.name] = _field_to_json(_FIELD_KINDS[f.name], getattr(message, f.name))
    return _dumps(out)


def decode_message(data: bytes) -> Message:
    """The message `encode_message` produced; `CodecError` for anything else."""
    obj = _loads_object(data, "raft message")
    cls = _MESSAGE_TYPES.get(obj.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise CodecError(f"unknown raft message type {obj.get('type')!r}")
    names = {f.name for f in fields(cls)}
    if set(obj) - {"type"} != names:
        raise CodecError(f"{cls.__name__}: fields {sorted(set(obj) - {'type'})}, want {names}")
    args = {n: _field_from_json(_FIELD_KINDS[n], obj[n], f"{cls.__name__}.{n}") for n in names}
    message: Message = cls(**args)
    if not isinstance(message, AppendEntriesRequest) or not message.entries:
        return message
    if message.entries[0].index != message.prev_log_index + 1:
        raise CodecError("AppendEntriesRequest: entries do not follow prev_log_index")
    return message


def encode_persist(persist: Persist) -> bytes:
    hard = persist.hard_state
    return _dumps(
        {
            "hard_state": None if hard is None else [hard.term, hard.voted_for, hard.commit_index],
            "snapshot": None if persist.snapshot is None else _snapshot_to_json(persist.snapshot),
            "truncate_from": persist.truncate_from,
            "entries": [_entry_to_json(e) for e in persist.entries],
        }
    )


def decode_persist(data: bytes) -> Persist:
    """The `Persist` that `encode_persist` produced; `CodecError` for anything else."""
    obj = _loads_object(data, "WAL record")
    if set(obj) != {"hard_state", "snapshot", "truncate_from", "entries"}:
        raise CodecError(f"WAL record has fields {sorted(obj)}")
    hard: HardState | None = None
    if obj["hard_state"] is not None:
        term, voted_for, commit = _list(obj["hard_state"], 3, "hard_state")
        voted = None if voted_for is None else _int(voted_for, "hard_state.voted_for")
        hard = HardState(_int(term, "hard_state.term"), voted, _int(commit, "hard_state.commit"))
    snapshot = None if obj["snapshot"] is None else _snapshot_from_json(obj["snapshot"])
    truncate_from = _field_from_json("int?", obj["truncate_from"], "truncate_from")
    return Persist(hard, snapshot, truncate_from, _entries_from_json(obj["entries"]))
