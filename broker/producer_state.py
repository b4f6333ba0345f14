"""Idempotent producer bookkeeping per partition (after Kafka's ProducerAppendInfo).

Pure code: it looks at batch headers and answers accept, duplicate, or error.
The last five batches per producer are remembered so a retried batch is answered
with its original offset instead of being appended twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from broker.protocol.batch import BatchHeader

CACHED_BATCHES_PER_PRODUCER = 5
INVALID_PRODUCER_EPOCH = 47
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
_SEQUENCE_MODULUS = 1 << 31


class ProducerFenced(Exception):
    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class AppendedBatch:
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[AppendedBatch] = field(
        default_factory=lambda: deque(maxlen=CACHED_BATCHES_PER_PRODUCER)
    )

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else -1


class ProducerStateTable:
    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def check(self, header: BatchHeader) -> AppendedBatch | None:
        """Return the earlier append if `header` is a retry; raise ProducerFenced if invalid."""
        if not header.has_producer_id:
            return None
        entry = self._producers.get(header.producer_id)
        if entry is None:
            return None  # unknown producer (new, or its state expired): accept (KIP-360)
        if header.producer_epoch < entry.epoch:
            raise ProducerFenced(
                INVALID_PRODUCER_EPOCH,
                f"producer {header.producer_id} epoch {header.producer_epoch} < {entry.epoch}",
            )
        if header.producer_epoch > entry.epoch:
            if header.base_sequence != 0:
                raise ProducerFenced(
                    OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"new epoch {header.producer_epoch} must start at sequence 0",
                )
            return None
        for batch in entry.batches:
            if (batch.first_sequence, batch.last_sequence) == (
                header.base_sequence,
                header.last_sequence,
            ):
                return batch
        expected = (entry.last_sequence + 1) % _SEQUENCE_MODULUS
        if entry.batches and header.base_sequence != expected:
            raise ProducerFenced(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {header.producer_id} sent sequence {header.base_sequence}, "
                f"expected {expected}",
            )
        return None

    def record(self, header: BatchHeader, first_offset: int, last_offset: int) -> None:
        """Remember a batch that was appended at [first_offset, last_offset]."""
        if not header.has_producer_id or header.base_sequence < 0:
            return
        entry = self._producers.get(header.producer_id)
        if entry is None or header.producer_epoch != entry.epoch:
            entry = ProducerEntry(header.producer_epoch)
            self._producers[header.producer_id] = entry
        entry.batches.append(
            AppendedBatch(header.base_sequence, header.last_sequence, first_offset, last_offset)
        )

    def rebuild(self, headers: Iterable[BatchHeader]) -> None:
        """Replay the batch headers of a log (in offset order) after a restart."""
        for header in headers:
            if header.has_producer_id and not header.is_control:
                self.record(header, header.base_offset, header.last_offset)

    def truncate(self) -> None:
        self._producers.clear()

    def items(self) -> Iterator[tuple[int, ProducerEntry]]:
        """(producer id, entry) for every producer: what a snapshot saves."""
        return iter(self._producers.items())

    def restore(self, producer_id: int, epoch: int, batches: Iterable[AppendedBatch]) -> None:
        """Set one producer's state as a snapshot saved it."""
        entry = ProducerEntry(epoch)
        entry.batches.extend(batches)
        self._producers[producer_id] = entry

    @property
    def producer_count(self) -> int:
        return len(self._producers)
