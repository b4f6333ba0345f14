"""Exponential backoff with jitter for retrying a failed step (pure: no clock, no sleep)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.1
    max_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2  # ± fraction of the delay
    _next_s: float = field(default=0.0, init=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay_s(self) -> float:
        """The delay before the next attempt; grows until reset()."""
        base = self._next_s or self.initial_s
        self._next_s = min(base * self.multiplier, self.max_s)
        return base * (1 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._next_s = 0.0
