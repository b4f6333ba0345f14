"""A drill's steps resolved for one seed (pure): when each runs, and which processes it hits.

The same drill file and seed give the same timeline — moments drawn from `at_s` ranges and
`pick = "one"` choices among the matching processes — so a failed run can be replayed. A step
with `times = N` becomes N steps `every_s` apart. Processes are matched when the step runs
(the supervisor restarts them, so names are stable but pids are not).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Sequence
from dataclasses import dataclass

from chaos.drill.spec import StepModel


@dataclass(frozen=True)
class Scheduled:
    at_s: float  # from the workload's start
    step: StepModel
    index: int  # the step's place in the file, for reports
    round: int  # 0 .. times-1

    def describe(self) -> str:
        step = self.step
        what = (
            step.to
            or step.process
            or step.flow
            or " ".join(x for x in (step.toxic, step.link) if x)
        )
        repeat = f" ({self.round + 1}/{self.step.times})" if self.step.times > 1 else ""
        return f"{step.action.value} {what}{repeat}".strip()


class Timeline:
    def __init__(self, steps: Sequence[StepModel], seed: int) -> None:
        self.rng = random.Random(seed)
        scheduled = []
        for index, step in enumerate(steps):
            start = self._moment(step)
            for round_ in range(step.times):
                scheduled.append(Scheduled(start + round_ * step.every_s, step, index, round_))
        self.steps = tuple(sorted(scheduled, key=lambda s: (s.at_s, s.index, s.round)))

    def _moment(self, step: StepModel) -> float:
        if isinstance(step.at_s, tuple):
            low, high = step.at_s
            return round(self.rng.uniform(low, high), 3)
        return step.at_s

    def targets(self, step: StepModel, processes: dict[str, str]) -> list[str]:
        """The process names `step.process` names among `processes` (name -> region): a
        region's name means its brokers and controllers; else an exact name or a glob."""
        pattern = step.process or ""
        names = sorted(processes)
        if pattern in set(processes.values()):
            matched = [n for n in names if processes[n] == pattern and "->" not in n]
        else:
            matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if step.pick == "one" and matched:
            return [self.rng.choice(matched)]
        return matched
