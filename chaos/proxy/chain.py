"""The toxics of one direction of one connection, in the order they were added (pure).

Events from one stage feed the next at their stamped time, so `latency` then `bandwidth`
delays, then paces; `End` goes through each stage's `end`, while `Close` and `Reset` end
the connection and pass straight on. Out of the chain come events in non-decreasing time.

Toxicity is decided per connection and toxic: a draw in [0, 1) from a `random.Random`
seeded with the server's seed, the proxy, the connection's number and the toxic's name, and
the toxic applies while the draw is below its toxicity. So a drill run with the same seed
hits the same connections, and raising a toxic's toxicity only adds connections to it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from chaos.proxy.spec import ToxicSpec
from chaos.proxy.stages import STAGES, End, Event, Send, Stage, stamped


class Chain:
    """Built empty; `update` with the direction's toxics whenever they change."""

    def __init__(self, seed_key: str) -> None:
        self._seed_key = seed_key
        self._stages: list[tuple[ToxicSpec, Stage]] = []
        self._last_s = -math.inf

    def __bool__(self) -> bool:
        return bool(self._stages)

    def draw(self, toxic_name: str) -> float:
        """This connection's fixed draw for a toxic, compared with its toxicity."""
        return random.Random(f"{self._seed_key}/{toxic_name}/toxicity").random()

    def update(self, specs: Sequence[ToxicSpec], now_s: float) -> list[Event]:
        """Follow the proxy's toxics: keep the state of those still applied, start new ones,
        and tell the dropped ones (which may end the connection)."""
        kept = {spec.name: stage for spec, stage in self._stages}
        stages: list[tuple[ToxicSpec, Stage]] = []
        for spec in specs:
            if self.draw(spec.name) >= spec.toxicity:
                continue
            stage = kept.pop(spec.name, None)
            if stage is None or not isinstance(stage, STAGES[spec.type]):
                rng = random.Random(f"{self._seed_key}/{spec.name}")
                stage = STAGES[spec.type](spec.attributes, now_s, rng)
            else:
                stage.configure(spec.attributes)
            stages.append((spec, stage))
        self._stages = stages
        events: list[Event] = []
        for stage in kept.values():
            events.extend(stage.removed(now_s))
        return self._ordered(events)

    def data(self, chunk: bytes, now_s: float) -> list[Event]:
        return self._ordered(self._through(0, [Send(now_s, chunk)]))

    def end(self, now_s: float) -> list[Event]:
        return self._ordered(self._through(0, [End(now_s)]))

    def deadline_s(self) -> float | None:
        deadlines = [d for _, stage in self._stages if (d := stage.deadline_s()) is not None]
        return min(deadlines, default=None)

    def tick(self, now_s: float) -> list[Event]:
        """Fire every stage timer that is due, each stage's events going through the rest."""
        events: list[Event] = []
        for index, (_, stage) in enumerate(self._stages):
            deadline = stage.deadline_s()
            if deadline is not None and deadline <= now_s:
                events.extend(self._through(index + 1, stage.tick(now_s)))
        return self._ordered(events)

    def _through(self, first: int, events: list[Event]) -> list[Event]:
        for _, stage in self._stages[first:]:
            out: list[Event] = []
            for event in events:
                if isinstance(event, Send):
                    out.extend(stage.data(event.data, event.at_s))
                elif isinstance(event, End):
                    out.extend(stage.end(event.at_s))
                else:
                    out.append(event)
            events = out
        return events

    def _ordered(self, events: list[Event]) -> list[Event]:
        """Never earlier than what the chain already let out, so the driver keeps order."""
        ordered: list[Event] = []
        for event in events:
            if event.at_s < self._last_s:
                event = stamped(event, self._last_s)
            self._last_s = event.at_s
            ordered.append(event)
        return ordered
