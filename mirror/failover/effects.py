"""How a finished step changes the desired topology (pure).

The journal keeps steps, not states: the topology at any moment is the [failover] section's
epoch-0 state with every journaled step folded in, in order. Folding the whole plan gives
the state an operation ends at (`Plan.end_state`), so the planner, `failover status` and the
supervisor read the same answer from the same rule.
"""

from __future__ import annotations

from dataclasses import replace

from mirror.failover.model import (
    OnFailure,
    RegionRole,
    Role,
    Step,
    StepKind,
    StepState,
    TopologyState,
)


def started(state: TopologyState, step: Step) -> TopologyState:
    """A step was started: its epoch may have reached a region, so it is taken for good
    (epochs never go back, even if the step never finishes)."""
    return replace(state, epoch=max(state.epoch, step.epoch))


def finished(state: TopologyState, step: Step, outcome: StepState) -> TopologyState:
    """A step is done — or failed while best effort, which leaves its change pending."""
    assert outcome is StepState.DONE or (
        outcome is StepState.FAILED and step.on_failure is OnFailure.CONTINUE
    ), (step, outcome)
    pending = outcome is StepState.FAILED
    state = started(state, step)
    match step.kind:
        case StepKind.FENCE_SOURCE:
            return _with_role(state, step.region, RegionRole(Role.STANDBY, step.epoch, pending))
        case StepKind.UNFENCE:
            assert step.region == state.primary, (step, state)
            return _with_role(state, step.region, RegionRole(Role.PRIMARY, step.epoch, pending))
        case StepKind.PROMOTE:
            return _promoted(state, step)
        case StepKind.STOP_FLOW:
            flows = {flow: epoch for flow, epoch in state.flows.items() if flow != step.flow}
            return replace(state, flows=flows)
        case StepKind.START_FLOW:
            return replace(state, flows={**state.flows, step.flow: step.epoch})
        case _:
            return state


def _with_role(state: TopologyState, region: str, role: RegionRole) -> TopologyState:
    assert role.epoch >= state.role(region).epoch, (region, role, state)
    return replace(state, roles={**state.roles, region: role})


def _promoted(state: TopologyState, step: Step) -> TopologyState:
    """`region` becomes primary. A peer still primary (a forced failover: it could not be
    fenced first) is wanted standby from now on, pending until a fence confirms it."""
    assert (step.region, step.peer) == (state.standby, state.primary), (step, state)
    old = state.role(step.peer)
    demoted = (
        RegionRole(Role.STANDBY, step.epoch, pending=True) if old.role is Role.PRIMARY else old
    )
    return replace(
        state,
        primary=step.region,
        standby=step.peer,
        roles={step.region: RegionRole(Role.PRIMARY, step.epoch), step.peer: demoted},
        promoted_at_epoch=step.epoch,
    )
