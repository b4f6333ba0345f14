"""A broker's metrics, observed from its state when scraped: traffic counters, the
replication state of the partitions it hosts, and its region's failover role.

As Kafka's broker metrics do, partition figures other than leadership come from the leader
only, so summing a region's brokers counts every partition once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import Meter

from broker.metrics import catalog
from broker.metrics.instruments import Sample, observe
from broker.partitions import Partition
from broker.topology import PRIMARY_ROLE, STANDBY_ROLE

if TYPE_CHECKING:
    from broker.broker import Broker

_ROLES = {PRIMARY_ROLE: PRIMARY_ROLE, STANDBY_ROLE: STANDBY_ROLE, "": "none"}


def observe_broker(meter: Meter, broker: Broker) -> None:
    traffic = broker.traffic

    def per_topic(counts: dict[str, int]) -> list[Sample]:
        return [({"topic": topic}, value) for topic, value in list(counts.items())]

    observe(meter, catalog.BROKER_PRODUCE_RECORDS, lambda: per_topic(traffic.produce_records))
    observe(meter, catalog.BROKER_PRODUCE_BYTES, lambda: per_topic(traffic.produce_bytes))
    observe(meter, catalog.BROKER_LINK_RECORDS, lambda: per_topic(traffic.link_records))
    observe(
        meter,
        catalog.BROKER_FETCH_BYTES,
        lambda: [
            ({"topic": topic, "fetcher": fetcher}, value)
            for (topic, fetcher), value in list(traffic.fetch_bytes.items())
        ],
    )
    observe(
        meter,
        catalog.PARTITION_LEADER,
        lambda: [(_labels(p), int(p.is_leader)) for p in broker.partitions.all()],
    )
    observe(meter, catalog.PARTITION_ISR_SIZE, lambda: _led(broker, lambda r: r.isr))
    observe(meter, catalog.PARTITION_REPLICAS, lambda: _led(broker, lambda r: r.replicas))
    observe(
        meter,
        catalog.PARTITION_HIGH_WATERMARK,
        lambda: [(_labels(p), p.high_watermark) for p in broker.partitions.all() if p.is_leader],
    )
    observe(meter, catalog.UNDER_REPLICATED, lambda: [({}, _count_under(broker, False))])
    observe(meter, catalog.UNDER_MIN_ISR, lambda: [({}, _count_under(broker, True))])
    observe(meter, catalog.BROKER_TOPOLOGY_EPOCH, lambda: [({}, broker.topology.epoch)])
    observe(meter, catalog.BROKER_ROLE, lambda: _role(broker))


def _labels(partition: Partition) -> dict[str, str | int]:
    return {"topic": partition.topic, "partition": partition.index}


class _Replicas:
    """A led partition's replica sets; a single-node region's partition is its own ISR."""

    def __init__(self, partition: Partition) -> None:
        leader = partition.leader  # read once: the event loop may replace it meanwhile
        self.isr = len(leader.isr) if leader is not None else 1
        self.replicas = len(leader.replicas) if leader is not None else 1


def _led(broker: Broker, figure: Callable[[_Replicas], int]) -> list[Sample]:
    return [(_labels(p), figure(_Replicas(p))) for p in broker.partitions.all() if p.is_leader]


def _count_under(broker: Broker, min_isr: bool) -> int:
    count = 0
    for partition in broker.partitions.all():
        if not partition.is_leader:
            continue
        replicas = _Replicas(partition)
        wanted = partition.min_insync_replicas if min_isr else replicas.replicas
        count += replicas.isr < wanted
    return count


def _role(broker: Broker) -> Iterable[Sample]:
    current = broker.topology.role
    return [({"role": shown}, int(role == current)) for role, shown in _ROLES.items()]
