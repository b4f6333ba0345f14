"""Durable Raft state: every `Ready.persist` as one framed record, fsynced before sending.

Frame: u32 big-endian payload length, u32 crc32c of the payload, the payload
(`codec.encode_persist`). On open the records are replayed with `PersistedState.apply`; the
first frame that is short, fails its checksum or does not decode is a torn tail from a crash
mid-write and is cut off with everything after it (it was never fsynced, so never acted on).
When a snapshot makes the prefix obsolete, `rewrite` replaces the file by one record of the
whole state (write a temporary file, fsync, rename, fsync the directory), so it stays small.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import crc32c

from broker.kraft.controller.codec import CodecError, decode_persist, encode_persist
from broker.kraft.storage import Persist, PersistedState

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 256 * 1024 * 1024


class WalError(Exception):
    """The WAL holds well-framed records that do not replay: corruption, not a torn tail."""


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), crc32c.crc32c(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_records(data: bytes) -> tuple[list[Persist], int]:
    """The decodable records and the length of the good prefix."""
    records: list[Persist] = []
    position = 0
    while position + _HEADER.size <= len(data):
        length, checksum = _HEADER.unpack_from(data, position)
        start = position + _HEADER.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            break
        payload = data[start : start + length]
        if crc32c.crc32c(payload) != checksum:
            break
        try:
            records.append(decode_persist(payload))
        except CodecError:
            break
        position = start + length
    return records, position


class RaftWal:
    """An append-only file of `Persist` records. Blocking I/O: call from a worker thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = open(path, "ab")  # noqa: SIM115 - owned until close()

    @classmethod
    def open(cls, path: Path) -> tuple[RaftWal, PersistedState]:
        """Open (or create) the WAL at `path`; returns it with the state it describes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes() if path.exists() else b""
        records, good = _read_records(data)
        state = PersistedState()
        try:
            for persist in records:
                state = state.apply(persist)
        except AssertionError as exc:
            raise WalError(f"{path}: records do not replay: {exc}") from exc
        if good < len(data):
            log.warning("%s: cutting a torn tail of %d bytes", path, len(data) - good)
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        existed = path.exists()
        wal = cls(path)
        if not existed:
            _fsync_dir(path.parent)
        return wal, state

    def append(self, persist: Persist) -> None:
        """Durable when this returns."""
        self._file.write(_frame(encode_persist(persist)))
        self._file.flush()
        os.fsync(self._file.fileno())

    def rewrite(self, state: PersistedState) -> None:
        """Atomically replace the file by one record that rebuilds `state`."""
        tmp = self._path.with_name(self._path.name + ".tmp")
        whole = Persist(state.hard_state, state.snapshot, None, state.entries)
        with open(tmp, "wb") as f:
            f.write(_frame(encode_persist(whole)))
            f.flush()
            os.fsync(f.fileno())
        self._file.close()
        os.replace(tmp, self._path)
        _fsync_dir(self._path.parent)
        self._file = open(self._path, "ab")  # noqa: SIM115 - owned until close()

    def close(self) -> None:
        self._file.close()
