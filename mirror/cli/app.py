"""The `regionlink` command line (Typer + Rich)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mirror.cli import broker_security as sec
from mirror.config import MirrorConfig, parse_bootstrap
from mirror.errors import CliError, ConfigError

app = typer.Typer(
    name="regionlink",
    help="Cross-region replication and disaster recovery for Kafka-style streaming.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}")
    if not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"port {port} is outside 0-65535")
    return host, int(port)


SpanStore = Annotated[
    Path | None,
    typer.Option(
        "--span-store",
        "--trace-file",
        help="Also keep this process's spans in this span store (sqlite; the dashboard reads "
        "it). Default: $REGIONLINK_SPAN_STORE. OTLP export follows the OTEL_* variables.",
    ),
]


def _start_tracing(service_name: str, span_store: Path | None) -> None:
    """Tracing for this process, as OTEL_* and the span store say (off when neither does)."""
    from broker import telemetry

    try:
        telemetry.configure(service_name, span_store)
    except telemetry.TelemetryError as exc:
        raise CliError(str(exc)) from exc


MetricsListen = Annotated[
    str | None,
    typer.Option(help="HOST:PORT to serve Prometheus metrics on, at /metrics (port 0 = any)."),
]


def _metrics_listen(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    try:
        return parse_listen(value)
    except typer.BadParameter as exc:
        raise CliError(f"--metrics-listen: {exc}") from exc


def _first(exc: BaseException, kind: type[OSError]) -> OSError | None:
    """The first `kind` in an exception or (anyio's) exception group, if any."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first(inner, kind)
            if found is not None:
                return found
    return None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.callback()
def _root() -> None:
    """regionlink: run regions of Kafka-compatible brokers and the links between them."""


@app.command()
def broker(
    data_dir: Annotated[Path, typer.Option(help="Directory for logs, offsets and metadata.")],
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to accept Kafka clients on (port 0 = any).")
    ] = "127.0.0.1:9092",
    node_id: Annotated[int, typer.Option(help="This broker's id in its region.")] = 1,
    advertised_host: Annotated[
        str | None, typer.Option(help="Host name clients should use, if not the listen host.")
    ] = None,
    span_store: SpanStore = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    maintenance_interval_s: Annotated[
        float, typer.Option(help="Seconds between retention and compaction passes.")
    ] = 5.0,
    controllers: Annotated[
        str | None,
        typer.Option(
            help="The region's controller quorum as ID@HOST:PORT,... (the same list given to "
            "`regionlink controller --quorum`). Without it the broker is a single-node region."
        ),
    ] = None,
    heartbeat_interval_ms: Annotated[
        int, typer.Option(help="With --controllers: how often to heartbeat the controller.")
    ] = 250,
    replica_lag_time_max_ms: Annotated[
        int,
        typer.Option(help="A follower not caught up for this long leaves the ISR."),
    ] = 30_000,
    topology_epoch: Annotated[
        int | None,
        typer.Option(
            help="The failover topology epoch this region is told about at start: with "
            "--region-role and --topology-primary it replaces the region's own only if newer."
        ),
    ] = None,
    region_role: Annotated[
        str | None,
        typer.Option(help="With --topology-epoch: primary, standby, or '' (no failover)."),
    ] = None,
    topology_primary: Annotated[
        str | None, typer.Option(help="With --topology-epoch: the primary region's alias.")
    ] = None,
    lease_s: Annotated[
        float | None,
        typer.Option(
            help="Write lease: as primary, refuse client writes after this many seconds "
            "without reaching a --lease-peer (the standby), so a cut-off primary stops "
            "taking writes a forced failover would lose."
        ),
    ] = None,
    lease_peer: Annotated[
        str | None,
        typer.Option(help="With --lease-s: HOST:PORT[,HOST:PORT...] of the standby's brokers."),
    ] = None,
    lease_tls: Annotated[
        bool,
        typer.Option(
            help="With --lease-peer: probe the peers with TLS, checking them against --ssl-ca "
            "(for TLS or SASL_SSL listeners)."
        ),
    ] = False,
    listener: Annotated[
        list[str] | None,
        typer.Option(
            help="A named extra listener, NAME=HOST:PORT,ADVERTISED_HOST:PORT (repeatable): "
            "clients that connect to it are told the advertised address, e.g. a WAN link's "
            "fault proxy in front of it. With --controllers, registered with them, so that "
            "every broker of the region tells such clients each other's address for NAME."
        ),
    ] = None,
    metrics_listen: MetricsListen = None,
    authorizer: Annotated[
        bool,
        typer.Option(
            help="Check ACLs on every request (Kafka's authorizer.class.name); off, every "
            "request is allowed. ACLs are managed with CreateAcls/DeleteAcls (kafka-acls, "
            "admin clients) and kept in the region's metadata. See docs/security.md."
        ),
    ] = False,
    super_users: Annotated[
        str | None,
        typer.Option(
            help="With --authorizer: principals allowed everything, ;-separated, e.g. "
            "'User:admin;User:broker' (Kafka's super.users)."
        ),
    ] = None,
    allow_everyone_if_no_acl_found: Annotated[
        bool,
        typer.Option(
            help="With --authorizer: allow a request on a resource no ACL names "
            "(Kafka's allow.everyone.if.no.acl.found; default: refuse)."
        ),
    ] = False,
    listener_security_protocol_map: sec.ProtocolMap = None,
    ssl_certificate: sec.SslCertificate = None,
    ssl_key: sec.SslKey = None,
    ssl_ca: sec.SslCa = None,
    ssl_client_auth: sec.SslClientAuth = sec.ClientAuth.NONE,
    sasl_enabled_mechanisms: sec.SaslMechanisms = sec.DEFAULT_MECHANISMS_TEXT,
    connection_failed_authentication_delay_ms: sec.FailedAuthenticationDelayMs = 100,
    max_failed_authentications: sec.MaxFailedAuthentications = 10,
    failed_authentication_window_ms: sec.FailedAuthenticationWindowMs = 60_000,
    inter_broker_listener_name: sec.InterBrokerListener = None,
    controller_tls: sec.ControllerTls = False,
) -> None:
    """Run a Kafka-compatible broker: a single-node region, or one broker of a region.

    Unmodified Kafka clients (librdkafka, kcat, kafka-python, aiokafka) connect
    to --listen. Alone, the broker keeps its own metadata. With --controllers
    it registers with the region's controller quorum, hosts the replicas the
    controllers assign it, leads some partitions and follows others
    (replicating with Fetch), and acks=all waits for the in-sync replicas.
    It prints "ready" once the controllers have admitted it.

    SIGTERM hands its leaderships to other brokers, then flushes and closes;
    after SIGKILL the log recovers on the next start and keeps every
    acknowledged record. See docs/regions.md.
    """
    from broker.config import BrokerConfig, Listener
    from broker.kraft.quorum import QuorumError, parse_quorum
    from broker.main import run_broker
    from broker.security.guard import AuthorizerSettings
    from broker.topology import Topology

    _setup_logging(log_level)
    host, port = parse_listen(listen)
    metrics_address = _metrics_listen(metrics_listen)
    startup_topology = None
    if topology_epoch is not None:
        try:
            startup_topology = Topology.from_configs(
                Topology(topology_epoch, region_role or "", topology_primary or "").configs()
            )
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    elif region_role is not None or topology_primary is not None:
        raise CliError("--region-role and --topology-primary need --topology-epoch")
    try:
        quorum = parse_quorum(controllers) if controllers else None
    except QuorumError as exc:
        raise CliError(f"--controllers: {exc}") from exc
    if (lease_s is None) != (lease_peer is None):
        raise CliError("--lease-s and --lease-peer go together")
    if lease_tls and (lease_peer is None or ssl_ca is None):
        raise CliError("--lease-tls needs --lease-peer and --ssl-ca")
    if lease_s is not None and lease_s <= 0:
        raise CliError(f"--lease-s must be > 0, got {lease_s:g}")
    try:
        peers = tuple(parse_bootstrap(lease_peer)) if lease_peer else ()
    except ValueError as exc:
        raise CliError(f"--lease-peer: {exc}") from exc
    try:
        listeners = tuple(Listener.parse(text) for text in listener or ())
    except ValueError as exc:
        raise CliError(f"--listener: {exc}") from exc
    if not authorizer and (super_users is not None or allow_everyone_if_no_acl_found):
        raise CliError("--super-users and --allow-everyone-if-no-acl-found need --authorizer")
    try:
        authorizer_settings = (
            AuthorizerSettings.parse(super_users or "", allow_everyone_if_no_acl_found)
            if authorizer
            else None
        )
    except ValueError as exc:
        raise CliError(f"--super-users: {exc}") from exc
    config = BrokerConfig(
        listeners=listeners,
        data_dir=data_dir,
        host=host,
        port=port,
        node_id=node_id,
        advertised_host=advertised_host,
        maintenance_interval_s=maintenance_interval_s,
        controllers=quorum,
        heartbeat_interval_ms=heartbeat_interval_ms,
        replica_lag_time_max_ms=replica_lag_time_max_ms,
        startup_topology=startup_topology,
        lease_s=lease_s,
        lease_peers=peers,
        lease_tls=lease_tls,
        authorizer=authorizer_settings,
        security=sec.security_config(
            listener_security_protocol_map,
            ssl_certificate,
            ssl_key,
            ssl_ca,
            ssl_client_auth,
            sasl_enabled_mechanisms,
            connection_failed_authentication_delay_ms,
            max_failed_authentications,
            failed_authentication_window_ms,
            inter_broker_listener_name,
            controller_tls,
        ),
    )
    sec.check(config)
    _start_tracing("regionlink-broker", span_store)
    try:
        run_broker(config, metrics_address)
    except (OSError, BaseExceptionGroup) as exc:
        os_error = _first(exc, OSError)
        if os_error is None:
            raise
        raise CliError(
            f"cannot run the broker on {listen}: {os_error.strerror or os_error}"
        ) from exc


@app.command()
def controller(
    node_id: Annotated[int, typer.Option(help="This controller's id; must be in --quorum.")],
    data_dir: Annotated[Path, typer.Option(help="Directory for the Raft log (raft.wal).")],
    quorum: Annotated[
        str,
        typer.Option(help="Every controller as ID@HOST:PORT, comma-separated (this one too)."),
    ],
    listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to serve on (default: this node's --quorum address)."),
    ] = None,
    broker_session_timeout_ms: Annotated[
        int, typer.Option(help="Fence a broker after this long without a heartbeat.")
    ] = 9_000,
    default_replication_factor: Annotated[
        int, typer.Option(help="Replicas of a topic created with replication factor -1.")
    ] = 3,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    metrics_listen: MetricsListen = None,
    ssl_certificate: sec.ControllerSslCertificate = None,
    ssl_key: sec.ControllerSslKey = None,
    ssl_ca: sec.ControllerSslCa = None,
) -> None:
    """Run one member of a region's controller quorum (KRaft-style).

    The controllers (3 or 5) elect a leader with Raft and keep the
    region's metadata in a replicated log under --data-dir: brokers,
    topics, partition leaders and ISRs, configs, producer-id blocks.
    Brokers register, heartbeat and fetch metadata over gRPC on the
    same port the controllers use among themselves.

    Start every member with the same --quorum, for example
    1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095 and --node-id
    1, 2 and 3. SIGTERM stops it cleanly; after SIGKILL it recovers
    from its log and catches up from the leader.
    """
    from broker.kraft.controller.config import ControllerConfig, PolicyConfig
    from broker.kraft.controller.process import run_controller
    from broker.kraft.quorum import QuorumError, parse_quorum

    try:
        members = parse_quorum(quorum)
    except QuorumError as exc:
        raise CliError(f"--quorum: {exc}") from exc
    if node_id not in members:
        ids = ",".join(str(i) for i in sorted(members))
        raise CliError(f"--node-id {node_id} is not in --quorum (ids {ids})")
    if listen is None:
        host, port = members[node_id]
    else:
        try:
            host, port = parse_listen(listen)
        except typer.BadParameter as exc:
            raise CliError(f"--listen: {exc}") from exc
    try:
        policy = PolicyConfig(
            broker_session_timeout_ms=broker_session_timeout_ms,
            default_replication_factor=default_replication_factor,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    metrics_address = _metrics_listen(metrics_listen)
    _setup_logging(log_level)
    tls = sec.controller_tls(ssl_certificate, ssl_key, ssl_ca)
    config = ControllerConfig(node_id, data_dir, host, port, members, policy=policy, tls=tls)
    try:
        run_controller(config, metrics_address)
    except (OSError, BaseExceptionGroup) as exc:
        os_error = _first(exc, OSError)
        if os_error is None:
            raise
        raise CliError(
            f"cannot run controller {node_id} on {host}:{port}: {os_error.strerror or os_error}"
        ) from exc


worker_app = typer.Typer(
    help="Mirror workers: copy topics between clusters and keep group offsets in step.",
    no_args_is_help=False,
)
app.add_typer(worker_app, name="worker")


def _load_config(path: Path) -> MirrorConfig:
    from mirror.config import load_mirror_config

    try:
        return load_mirror_config(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="Mirror TOML file: \\[clusters.*] and \\[\\[flows]] tables.")
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option(help="Name in status output (default: host-pid).")
    ] = None,
    control_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT for the gRPC control API (default: [worker] section)."),
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Append OpenTelemetry metrics here as JSON lines.")
    ] = None,
    span_store: SpanStore = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    metrics_listen: MetricsListen = None,
) -> None:
    """Run a mirror worker for every flow in --config until SIGTERM.

    Start several workers with the same file to share the partitions of each flow;
    when one dies, the others take over its partitions after the session timeout.
    Remote topics are named SOURCE.TOPIC; group offsets translate exactly.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise CliError("regionlink worker needs --config FILE (see regionlink worker --help)")
    from mirror.worker.main import WorkerOptions, run_worker_process

    _setup_logging(log_level)
    loaded = _load_config(config)
    _start_tracing("regionlink-mirror", span_store)
    options = WorkerOptions(
        worker_id, control_listen, metrics_file, metrics_listen=_metrics_listen(metrics_listen)
    )
    try:
        run_worker_process(loaded, options)
    except OSError as exc:
        raise CliError(str(exc)) from exc


def _control_address(control: str | None, config: Path | None) -> str:
    if control:
        return control
    if config is not None:
        listen = _load_config(config).worker.control_listen
        if not listen.endswith(":0"):
            return listen
        raise CliError(f"{config} lets the worker pick its control port; pass --control HOST:PORT")
    raise CliError("pass --control HOST:PORT (printed by the worker at start) or --config FILE")


ControlOption = Annotated[
    str | None, typer.Option(help="The worker's control API, HOST:PORT (printed at start).")
]
ConfigOption = Annotated[
    Path | None, typer.Option(help="Mirror TOML whose [worker] control_listen has a fixed port.")
]


@worker_app.command("status")
def worker_status(
    control: ControlOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    watch: Annotated[bool, typer.Option(help="Refresh every --interval-s until Ctrl-C.")] = False,
    interval_s: Annotated[float, typer.Option(help="Refresh period for --watch.")] = 1.0,
) -> None:
    """Show a running worker's flows and partitions: state, lag (records and ms), rates."""
    import json

    import anyio
    from rich.live import Live

    from mirror.control.client import ControlError, fetch_status
    from mirror.control.render import render_status

    address = _control_address(control, config)
    try:
        status = anyio.run(fetch_status, address)
        if as_json:
            print(json.dumps(status))
            return
        if not watch:
            Console().print(render_status(status))
            return
        with Live(render_status(status), refresh_per_second=4) as live:
            while True:
                time.sleep(interval_s)
                live.update(render_status(anyio.run(fetch_status, address)))
    except ControlError as exc:
        raise CliError(str(exc)) from exc


def _flow_action(action: str, control: str | None, config: Path | None, flow: str) -> None:
    import anyio

    from mirror.control.client import ControlError, pause_flow, resume_flow

    source, sep, target = flow.partition(":")
    if not sep or not source or not target:
        raise CliError(f"expected --flow SOURCE:TARGET, got {flow!r}")
    call = pause_flow if action == "pause" else resume_flow
    try:
        ok, message = anyio.run(call, _control_address(control, config), source, target)
    except ControlError as exc:
        raise CliError(str(exc)) from exc
    if not ok:
        raise CliError(message)
    Console().print(message)


@worker_app.command("pause")
def worker_pause(
    flow: Annotated[str, typer.Option(help="SOURCE:TARGET")],
    control: ControlOption = None,
    config: ConfigOption = None,
) -> None:
    """Stop copying a flow (after the current batch); offsets and progress are kept."""
    _flow_action("pause", control, config, flow)


@worker_app.command("resume")
def worker_resume(
    flow: Annotated[str, typer.Option(help="SOURCE:TARGET")],
    control: ControlOption = None,
    config: ConfigOption = None,
) -> None:
    """Continue a paused flow exactly where it stopped."""
    _flow_action("resume", control, config, flow)


offsets_app = typer.Typer(help="Inspect offset translation between regions.")
app.add_typer(offsets_app, name="offsets")


@offsets_app.command("translate")
def offsets_translate(
    config: Annotated[Path, typer.Option(help="Mirror TOML file with the flow.")],
    group: Annotated[str, typer.Option(help="Consumer group id on the source cluster.")],
    flow: Annotated[str, typer.Option(help="SOURCE:TARGET, e.g. us:eu.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show where GROUP's committed source offsets land on the target, exactly.

    Reads the group's offsets at the source and the flow's offset map on the target.
    "pending" means the record at that offset has not been mirrored yet.
    """
    from mirror.cli.translate import print_translation

    loaded = _load_config(config)
    try:
        flow_config = loaded.flow(flow)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    print_translation(loaded, flow_config, group, as_json)


# A broker, controller or worker process runs only its own command: it does not import the
# operator's command groups (topology, failover, chaos), so a fault in one of those cannot
# stop a region's brokers or a flow's workers from starting.
PROCESS_COMMANDS = frozenset({"broker", "controller", "worker"})


def _mount_runtime() -> None:
    from mirror.cli.chaos import chaos_app
    from mirror.cli.dashboard import register as register_dashboard
    from mirror.cli.drill import drill_app
    from mirror.cli.failover import register as register_failover
    from mirror.cli.runtime import register
    from mirror.cli.topology import topology_app

    app.add_typer(topology_app, name="topology")
    app.add_typer(chaos_app, name="chaos")
    app.add_typer(drill_app, name="drill")
    register(app)
    register_failover(app)
    register_dashboard(app)


def main() -> None:
    """Console-script entry: one readable line and exit code 2 for expected failures."""
    if sys.argv[1:2] not in [[command] for command in PROCESS_COMMANDS]:
        _mount_runtime()
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
