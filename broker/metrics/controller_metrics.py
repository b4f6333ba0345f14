"""A controller's metrics, read from its Raft node and metadata image when scraped."""

from __future__ import annotations

from opentelemetry.metrics import Meter

from broker.kraft.controller.driver import RaftDriver
from broker.kraft.controller.state import MetadataState
from broker.kraft.node import Role
from broker.metrics import catalog
from broker.metrics.instruments import observe


def observe_controller(meter: Meter, driver: RaftDriver, state: MetadataState) -> None:
    node = driver.node
    observe(meter, catalog.CONTROLLER_IS_LEADER, lambda: [({}, int(node.role is Role.LEADER))])
    observe(meter, catalog.CONTROLLER_TERM, lambda: [({}, node.term)])
    observe(meter, catalog.CONTROLLER_COMMIT_INDEX, lambda: [({}, node.commit_index)])

    def brokers() -> list[tuple[dict[str, str], int]]:
        registered = list(state.image.brokers.values())
        fenced = sum(1 for info in registered if info.fenced)
        return [({"state": "active"}, len(registered) - fenced), ({"state": "fenced"}, fenced)]

    observe(meter, catalog.CONTROLLER_BROKERS, brokers)
