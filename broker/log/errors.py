"""Errors the broker maps to Kafka error codes."""

from __future__ import annotations


class RecordTooLarge(ValueError):
    """A batch is larger than max.message.bytes (MESSAGE_TOO_LARGE)."""


class OffsetOutOfRange(LookupError):
    """A read outside [log_start_offset, log_end_offset] (OFFSET_OUT_OF_RANGE)."""


class OffsetMismatch(ValueError):
    """A follower append whose offsets do not continue the log."""
