"""Idempotent producer rules (ProducerAppendInfo semantics) on batch headers alone."""

from __future__ import annotations

import pytest

from broker.producer_state import (
    INVALID_PRODUCER_EPOCH,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    ProducerFenced,
    ProducerStateTable,
)
from broker.protocol.batch import BatchHeader, read_header
from broker.protocol.records import Record, build_batch


def header(
    epoch: int, sequence: int, count: int = 1, pid: int = 7, base_offset: int = 0
) -> BatchHeader:
    records = [Record(base_offset + i, 0, None, b"v") for i in range(count)]
    return read_header(
        build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=sequence)
    )


def test_duplicates_within_the_last_five_batches_are_recognised() -> None:
    table = ProducerStateTable()
    for n in range(7):
        h = header(0, n * 2, count=2)
        assert table.check(h) is None
        table.record(h, n * 2, n * 2 + 1)
    assert table.check(header(0, 12, count=2)) is not None
    newest, oldest = table.check(header(0, 12, count=2)), table.check(header(0, 4, count=2))
    assert newest is not None and newest.first_offset == 12
    assert oldest is not None and oldest.first_offset == 4
    with pytest.raises(ProducerFenced) as raised:
        table.check(header(0, 2, count=2))  # older than the cached five
    assert raised.value.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_epochs() -> None:
    table = ProducerStateTable()
    table.record(header(3, 0), 0, 0)
    with pytest.raises(ProducerFenced) as stale:
        table.check(header(2, 1))
    assert stale.value.error_code == INVALID_PRODUCER_EPOCH
    with pytest.raises(ProducerFenced):
        table.check(header(4, 5))
    assert table.check(header(4, 0)) is None


def test_sequence_wraps_at_int32_max() -> None:
    table = ProducerStateTable()
    table.record(header(0, 2**31 - 2, count=1), 0, 0)
    table.record(header(0, 2**31 - 1, count=1), 1, 1)
    assert table.check(header(0, 0)) is None


def test_non_idempotent_batches_are_never_checked() -> None:
    table = ProducerStateTable()
    plain = read_header(build_batch([Record(0, 0, None, b"v")]))
    assert table.check(plain) is None
    table.record(plain, 0, 0)
    assert table.producer_count == 0
