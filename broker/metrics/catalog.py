"""Every metric a regionlink process serves on `/metrics`, as data.

One list feeds the instruments each process creates (`instruments.py`), the table in
docs/observability.md and the Grafana dashboard (`docs.py`), so a name cannot differ between
what is served and what is documented or graphed. Names follow Prometheus conventions:
`regionlink_` prefix, base units as a suffix (`_seconds`, `_bytes`), counters end in
`_total`. The unit is OpenTelemetry's (UCUM) since the OpenTelemetry SDK records them; its
Prometheus exporter turns `s` into `_seconds` and `By` into `_bytes`, and drops `{record}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Process(StrEnum):
    """Which process serves a metric (each process serves only its own)."""

    WORKER = "worker"
    BROKER = "broker"
    CONTROLLER = "controller"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as served; a counter's includes `_total`
    kind: Kind
    unit: str  # UCUM, as OpenTelemetry takes it
    labels: tuple[str, ...]
    help: str
    process: Process
    buckets: tuple[float, ...] = ()  # histogram bucket bounds, in `unit`
    # The dashboard's view: `aggregate by (by)` across series, e.g. every worker of a flow.
    by: tuple[str, ...] = ()
    aggregate: str = "sum"


_FLOW_PARTITION = ("flow", "topic", "partition")
_TOPIC_PARTITION = ("topic", "partition")
# The mirror lag target is p99 < 100 ms on loopback; WAN links and catch-up reach minutes.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

MIRROR_LAG_RECORDS = MetricSpec(
    "regionlink_mirror_lag_records",
    Kind.GAUGE,
    "{record}",
    _FLOW_PARTITION,
    "Source records not yet copied to the target (source high watermark - next offset).",
    Process.WORKER,
    by=("flow",),
)
MIRROR_LAG_SECONDS = MetricSpec(
    "regionlink_mirror_lag_seconds",
    Kind.GAUGE,
    "s",
    _FLOW_PARTITION,
    "How far the target is behind the source in time: the age of the newest copied record "
    "while records wait, 0 when caught up.",
    Process.WORKER,
    by=("flow",),
    aggregate="max",
)
MIRROR_RECORDS = MetricSpec(
    "regionlink_mirror_records_total",
    Kind.COUNTER,
    "{record}",
    _FLOW_PARTITION,
    "Records copied to the target since the worker started.",
    Process.WORKER,
    by=("flow",),
)
MIRROR_BYTES = MetricSpec(
    "regionlink_mirror_bytes_total",
    Kind.COUNTER,
    "By",
    _FLOW_PARTITION,
    "Record batch bytes written to the target since the worker started.",
    Process.WORKER,
    by=("flow",),
)
MIRROR_RECORDS_LOST = MetricSpec(
    "regionlink_mirror_records_lost_total",
    Kind.COUNTER,
    "{record}",
    _FLOW_PARTITION,
    "Source records deleted by retention before they were copied (a gap in the target).",
    Process.WORKER,
    by=("flow",),
)
MIRROR_PARTITIONS = MetricSpec(
    "regionlink_mirror_partitions",
    Kind.GAUGE,
    "{partition}",
    ("flow", "state"),
    "Partitions this worker copies, by state: starting, copying, caught-up, retrying, paused.",
    Process.WORKER,
    by=("flow", "state"),
)
REPLICATION_LATENCY = MetricSpec(
    "regionlink_replication_latency_seconds",
    Kind.HISTOGRAM,
    "s",
    ("flow",),
    "End to end, per mirrored batch: from the batch's timestamp in the source (CreateTime, "
    "when the producer sent it) to the target acknowledging its copy (in-sync replicas).",
    Process.WORKER,
    buckets=LATENCY_BUCKETS_S,
    by=("flow",),
)

BROKER_PRODUCE_RECORDS = MetricSpec(
    "regionlink_broker_produce_records_total",
    Kind.COUNTER,
    "{record}",
    ("topic",),
    "Records appended by client Produce requests (a deduplicated retry counts once).",
    Process.BROKER,
    by=("topic",),
)
BROKER_PRODUCE_BYTES = MetricSpec(
    "regionlink_broker_produce_bytes_total",
    Kind.COUNTER,
    "By",
    ("topic",),
    "Record batch bytes appended by client Produce requests.",
    Process.BROKER,
    by=("topic",),
)
BROKER_LINK_RECORDS = MetricSpec(
    "regionlink_broker_link_records_total",
    Kind.COUNTER,
    "{record}",
    ("topic",),
    "Records a source region's link appended to this region's mirror topics (LinkAppend).",
    Process.BROKER,
    by=("topic",),
)
BROKER_FETCH_BYTES = MetricSpec(
    "regionlink_broker_fetch_bytes_total",
    Kind.COUNTER,
    "By",
    ("topic", "fetcher"),
    "Record batch bytes returned by Fetch; fetcher is consumer, or replica for followers.",
    Process.BROKER,
    by=("topic", "fetcher"),
)
PARTITION_LEADER = MetricSpec(
    "regionlink_partition_leader",
    Kind.GAUGE,
    "1",
    _TOPIC_PARTITION,
    "Per partition hosted here: 1 if this broker leads it, 0 if it follows.",
    Process.BROKER,
    by=("instance",),
)
PARTITION_ISR_SIZE = MetricSpec(
    "regionlink_partition_isr_size",
    Kind.GAUGE,
    "{replica}",
    _TOPIC_PARTITION,
    "In-sync replicas of each partition this broker leads.",
    Process.BROKER,
    by=_TOPIC_PARTITION,
    aggregate="min",
)
PARTITION_REPLICAS = MetricSpec(
    "regionlink_partition_replicas",
    Kind.GAUGE,
    "{replica}",
    _TOPIC_PARTITION,
    "Assigned replicas of each partition this broker leads.",
    Process.BROKER,
    by=_TOPIC_PARTITION,
    aggregate="max",
)
PARTITION_HIGH_WATERMARK = MetricSpec(
    "regionlink_partition_high_watermark",
    Kind.GAUGE,
    "{offset}",
    _TOPIC_PARTITION,
    "The high watermark (end of the committed records) of each partition this broker leads.",
    Process.BROKER,
    by=("topic",),
)
UNDER_REPLICATED = MetricSpec(
    "regionlink_under_replicated_partitions",
    Kind.GAUGE,
    "{partition}",
    (),
    "Partitions this broker leads whose ISR is smaller than their replica set.",
    Process.BROKER,
    by=("instance",),
)
UNDER_MIN_ISR = MetricSpec(
    "regionlink_under_min_isr_partitions",
    Kind.GAUGE,
    "{partition}",
    (),
    "Partitions this broker leads with fewer in-sync replicas than min.insync.replicas "
    "(acks=all produce is refused).",
    Process.BROKER,
    by=("instance",),
)
BROKER_TOPOLOGY_EPOCH = MetricSpec(
    "regionlink_broker_topology_epoch",
    Kind.GAUGE,
    "1",
    (),
    "The failover topology epoch this broker's region knows (rises with every role change).",
    Process.BROKER,
    by=("instance",),
    aggregate="max",
)
BROKER_ROLE = MetricSpec(
    "regionlink_broker_role",
    Kind.GAUGE,
    "1",
    ("role",),
    "1 for the failover role this broker's region holds: primary, standby, or none.",
    Process.BROKER,
    by=("instance", "role"),
    aggregate="max",
)

CONTROLLER_IS_LEADER = MetricSpec(
    "regionlink_controller_is_leader",
    Kind.GAUGE,
    "1",
    (),
    "1 if this controller leads its region's Raft quorum, else 0.",
    Process.CONTROLLER,
    by=("instance",),
)
CONTROLLER_TERM = MetricSpec(
    "regionlink_controller_term",
    Kind.GAUGE,
    "1",
    (),
    "This controller's Raft term: each election raises it.",
    Process.CONTROLLER,
    by=("instance",),
    aggregate="max",
)
CONTROLLER_COMMIT_INDEX = MetricSpec(
    "regionlink_controller_commit_index",
    Kind.GAUGE,
    "1",
    (),
    "Index of the last metadata log entry this controller knows committed.",
    Process.CONTROLLER,
    by=("instance",),
    aggregate="max",
)
CONTROLLER_BROKERS = MetricSpec(
    "regionlink_controller_brokers",
    Kind.GAUGE,
    "{broker}",
    ("state",),
    "Brokers registered in the region's metadata: active, or fenced (no recent heartbeat).",
    Process.CONTROLLER,
    by=("state",),
    aggregate="max",
)

FAILOVER_OPERATIONS = MetricSpec(
    "regionlink_failover_operations_total",
    Kind.COUNTER,
    "{operation}",
    ("operation", "outcome"),
    "Failover operations (switchover, failover, failback) the journal records as finished: "
    "done, or aborted.",
    Process.SUPERVISOR,
    by=("operation", "outcome"),
)
FAILOVER_UNFINISHED = MetricSpec(
    "regionlink_failover_operations_unfinished",
    Kind.GAUGE,
    "{operation}",
    ("operation",),
    "Failover operations running, or failed past the point of no return and awaiting a rerun.",
    Process.SUPERVISOR,
    by=("operation",),
)
FAILOVER_EPOCH = MetricSpec(
    "regionlink_failover_epoch",
    Kind.GAUGE,
    "1",
    (),
    "The topology epoch of the last role change the supervisor applied.",
    Process.SUPERVISOR,
    aggregate="max",
)
FAILOVER_PRIMARY = MetricSpec(
    "regionlink_failover_primary",
    Kind.GAUGE,
    "1",
    ("region",),
    "1 for the region the failover state names primary, 0 for the others.",
    Process.SUPERVISOR,
    by=("region",),
    aggregate="max",
)
DRILL_STEPS = MetricSpec(
    "regionlink_drill_steps_total",
    Kind.COUNTER,
    "{step}",
    ("drill", "action", "outcome"),
    "Steps a chaos drill has carried out on this topology (fault, heal, kill, failover, ...): "
    "ok, or failed.",
    Process.SUPERVISOR,
    by=("action",),
)
PROCESS_UP = MetricSpec(
    "regionlink_process_up",
    Kind.GAUGE,
    "1",
    ("process", "kind", "region"),
    "1 while a supervised process is running (it said it was ready), else 0.",
    Process.SUPERVISOR,
    by=("process",),
)
PROCESS_RESTARTS = MetricSpec(
    "regionlink_process_restarts_total",
    Kind.COUNTER,
    "{restart}",
    ("process", "kind", "region"),
    "Times the supervisor restarted a process after it exited.",
    Process.SUPERVISOR,
    by=("process",),
)

METRICS: tuple[MetricSpec, ...] = (
    MIRROR_LAG_RECORDS,
    MIRROR_LAG_SECONDS,
    MIRROR_RECORDS,
    MIRROR_BYTES,
    MIRROR_RECORDS_LOST,
    MIRROR_PARTITIONS,
    REPLICATION_LATENCY,
    BROKER_PRODUCE_RECORDS,
    BROKER_PRODUCE_BYTES,
    BROKER_LINK_RECORDS,
    BROKER_FETCH_BYTES,
    PARTITION_LEADER,
    PARTITION_ISR_SIZE,
    PARTITION_REPLICAS,
    PARTITION_HIGH_WATERMARK,
    UNDER_REPLICATED,
    UNDER_MIN_ISR,
    BROKER_TOPOLOGY_EPOCH,
    BROKER_ROLE,
    CONTROLLER_IS_LEADER,
    CONTROLLER_TERM,
    CONTROLLER_COMMIT_INDEX,
    CONTROLLER_BROKERS,
    FAILOVER_OPERATIONS,
    FAILOVER_UNFINISHED,
    FAILOVER_EPOCH,
    FAILOVER_PRIMARY,
    DRILL_STEPS,
    PROCESS_UP,
    PROCESS_RESTARTS,
)


def served_by(process: Process) -> tuple[MetricSpec, ...]:
    return tuple(spec for spec in METRICS if spec.process == process)
