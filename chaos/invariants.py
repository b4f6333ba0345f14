"""The invariants a drill declares, and whether a run kept them.

A drill states what it promises in words a reader checks at a glance, e.g.
`"no lost-write"`, `"records_duplicated == 0"`, `"rpo_records == reported_rpo_records"`,
`"rto_seconds < 5"`. `no ANOMALY` means its count is 0; otherwise `NAME OP NAME-or-NUMBER`
compares two of the run's metrics (an anomaly's name is its count). A metric the run could
not measure (no failover happened, so no RTO) fails the invariant that names it: a promise
that was not tested is not kept. Unknown names are refused when the drill is read.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chaos.findings import Anomaly

Metric = int | float | None

METRICS: dict[str, str] = {
    "records_sent": "sends recorded",
    "records_acked": "sends acknowledged",
    "records_unknown": "sends without an answer (maybe written)",
    "records_failed": "sends refused",
    "records_polled": "polls recorded",
    "records_lost": "lost-write + rpo-loss",
    "records_duplicated": "values at more than one offset",
    "rpo_records": "acked records failovers lost, as measured (sum)",
    "reported_rpo_records": "rpo_records the failover reports gave (sum)",
    "rpo_observed_records": "rpo_records within the ends the failovers last observed (sum)",
    "rto_seconds": "the longest client-measured RTO",
    "reported_rto_seconds": "the longest RTO the failover reports gave",
    "failovers": "operations that moved the primary",
    "mirror_lag_offsets": "offsets mirrors had not copied at the final read",
    "max_lag_records": "the most records a flow was behind, sampled every second",
    "max_lag_seconds": "the longest a flow was behind in time, sampled every second",
} | {anomaly.value: f"{anomaly.value} findings" for anomaly in Anomaly}

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


class InvariantError(ValueError):
    """An invariant that does not parse or names an unknown metric."""


@dataclass(frozen=True)
class Invariant:
    text: str
    left: str
    op: str
    right: str | float

    @classmethod
    def parse(cls, text: str) -> Invariant:
        words = text.split()
        if len(words) == 2 and words[0] == "no":
            return cls(text, _name(words[1], text), "==", 0.0)
        if len(words) != 3 or words[1] not in _OPERATORS:
            raise InvariantError(
                f"{text!r}: write 'no ANOMALY' or 'NAME OP VALUE' with OP one of "
                + " ".join(_OPERATORS)
            )
        left, op, right = words
        try:
            number = float(right)
        except ValueError:
            return cls(text, _name(left, text), op, _name(right, text))
        return cls(text, _name(left, text), op, number)

    def check(self, metrics: Mapping[str, Metric]) -> str | None:
        """None when kept, else why not."""
        left = metrics[self.left]
        right = self.right if isinstance(self.right, float) else metrics[self.right]
        if left is None or right is None:
            unknown = self.left if left is None else self.right
            return f"{unknown} was not measured"
        if _OPERATORS[self.op](left, right):
            return None
        shown = "" if isinstance(self.right, float) else f" ({self.right} = {right})"
        return f"{self.left} = {left}{shown}"


@dataclass(frozen=True)
class InvariantResult:
    text: str
    passed: bool
    reason: str  # why it failed; "" when kept


def evaluate(invariant: Invariant, metrics: Mapping[str, Metric]) -> InvariantResult:
    reason = invariant.check(metrics)
    return InvariantResult(invariant.text, reason is None, reason or "")


def _name(word: str, text: str) -> str:
    if word not in METRICS:
        raise InvariantError(f"{text!r}: unknown name {word!r}; known: {', '.join(METRICS)}")
    return word
