"""The supervisor's metrics: its processes, the failover state, and a drill's steps.

The supervisor serves failover metrics because it is the one long-lived process per state
directory that already follows the failover state (it applies every role change); the
orchestrator (`regionlink failover ...`) exits when its operation ends, and brokers know
only their own region's role. Operation counts are read from the journal when scraped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.metrics import Meter

from broker.metrics import catalog
from broker.metrics.instruments import Sample, observe
from mirror.failover.journal import count_operations
from mirror.failover.model import OperationKind, Outcome
from mirror.runtime.drill_steps import count_steps

if TYPE_CHECKING:
    from mirror.runtime.supervisor import Supervisor

FINISHED = (Outcome.DONE, Outcome.ABORTED)


def observe_supervisor(meter: Meter, supervisor: Supervisor) -> None:
    def processes(up: bool) -> list[Sample]:
        return [
            (
                {"process": c.spec.name, "kind": c.spec.kind, "region": c.spec.region},
                int(c.ready) if up else c.restarts,
            )
            for c in list(supervisor.children.values())
        ]

    observe(meter, catalog.PROCESS_UP, lambda: processes(up=True))
    observe(meter, catalog.PROCESS_RESTARTS, lambda: processes(up=False))
    observe(meter, catalog.FAILOVER_EPOCH, lambda: [({}, supervisor.links.epoch)])
    observe(meter, catalog.FAILOVER_PRIMARY, lambda: _primary(supervisor))
    observe(meter, catalog.FAILOVER_OPERATIONS, lambda: _finished(supervisor.state_dir))
    observe(meter, catalog.FAILOVER_UNFINISHED, lambda: _unfinished(supervisor.state_dir))
    observe(meter, catalog.DRILL_STEPS, lambda: _drill_steps(supervisor.state_dir))


def _primary(supervisor: Supervisor) -> list[Sample]:
    links = supervisor.links  # read once: the supervisor replaces it on a change
    regions = sorted(supervisor.topology.regions)
    return [({"region": region}, int(region == links.primary)) for region in regions]


def _finished(state_dir: Path) -> list[Sample]:
    counts = count_operations(state_dir)
    return [
        ({"operation": kind.value, "outcome": outcome.value}, n)
        for (kind, outcome), n in sorted(counts.items())
        if outcome in FINISHED
    ]


def _unfinished(state_dir: Path) -> list[Sample]:
    """Running, or failed and awaiting a rerun; 0 for kinds with none, so graphs return to 0."""
    counts = count_operations(state_dir)
    return [
        (
            {"operation": kind.value},
            sum(n for (k, outcome), n in counts.items() if k == kind and outcome not in FINISHED),
        )
        for kind in OperationKind
    ]


def _drill_steps(state_dir: Path) -> list[Sample]:
    return [
        ({"drill": drill, "action": action, "outcome": outcome}, n)
        for (drill, action, outcome), n in sorted(count_steps(state_dir).items())
    ]
