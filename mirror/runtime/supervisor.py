"""The supervisor: one background process per state directory that runs a topology.

It starts every managed region's controllers (multi-broker regions only) and brokers, then
the mirror workers of every flow, records each child in the state database, restarts a child
that exits with exponential backoff, and on SIGTERM stops workers first, then brokers, then
controllers (brokers hand their leaderships over through the controllers as they stop).
Ports and data directories are chosen once and kept, so a restarted child comes back where
it was.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from broker.client.security import ClientSecurity
from broker.metrics.endpoint import MetricsEndpoint
from broker.ports import free_port
from broker.topology import Topology
from mirror.backoff import Backoff
from mirror.config import FlowConfig, MirrorConfig, parse_bootstrap
from mirror.runtime.children import (
    NODE_READY,
    ChildSpec,
    broker_spec,
    controller_spec,
    regionlink_argv,
    worker_spec,
)
from mirror.runtime.links import encode, initial_links, load_links, running_flows
from mirror.runtime.secure import create_users, topology_security, topology_users, worker_user
from mirror.runtime.state import ProcessRow, StateDB
from mirror.runtime.supervisor_metrics import observe_supervisor
from mirror.runtime.topology import RegionConfig, TopologyConfig, load_topology
from mirror.runtime.tracing_env import child_environment
from mirror.runtime.wan import (
    WanProxy,
    create_proxies,
    listener_args,
    plan_proxies,
    remote_bootstrap,
)
from mirror.runtime.worker_files import write_flow_config

log = logging.getLogger("regionlink.supervisor")

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
HEALTHY_UPTIME_S = 10.0  # a child that ran this long starts its backoff from scratch
START_ATTEMPTS = 3  # a child that exits this often before its first ready line fails `up`
STOP_ORDER = ("worker", "broker", "controller", "proxy")  # clients stop before what they use
MAX_REPLICATION_FACTOR = 3  # replicas of a topic created without one, if the region has them
LINKS_POLL_S = 0.25  # how soon a failover's flow changes are applied
RETIRE_GRACE_S = 3.0  # a retired worker's SIGTERM, then SIGKILL
ROLES_POLL_S = 1.0  # a region back from an outage learns its role within about this
METRICS_HOST = "127.0.0.1"
METRICS_KINDS = ("controller", "broker", "worker")  # the children that serve /metrics


@dataclass
class _Child:
    spec: ChildSpec
    retired: bool = False  # stopped for good (its flow no longer runs): not restarted
    process: Process | None = None
    restarts: int = 0
    address: str = ""
    ready: bool = False
    ever_ready: bool = False
    last_exit: str = ""
    settled: anyio.Event = field(default_factory=anyio.Event)  # ready, or gave up starting


class SupervisorError(Exception):
    """The topology cannot be brought up (recorded in the state database, then exit 1)."""


class Supervisor:
    def __init__(self, topology: TopologyConfig, state_dir: Path) -> None:
        self.topology = topology
        self.state_dir = state_dir
        self.state = StateDB(state_dir)
        self.children: dict[str, _Child] = {}
        self.stopping = False
        self.failed = False
        self.bootstraps: dict[str, str] = {}
        self.links = load_links(self.state) or initial_links(topology)
        self._restamp: set[str] = set()
        self.wan: list[WanProxy] = []
        self.security = topology_security(topology, state_dir)
        self.admin_security: ClientSecurity | None = None  # set once `run` made the files

    def _port(self, key: str) -> int:
        """A port chosen once per child and kept across restarts."""
        ports = self.state.meta().get("ports", {})
        if key not in ports:
            port = free_port()
            while port in ports.values():  # picked before any child binds: avoid twins
                port = free_port()
            ports[key] = port
            self.state.set_meta(ports=ports)
        return int(ports[key])

    async def run(self) -> None:
        for folder in ("logs", "data", "flows", "metrics"):
            (self.state_dir / folder).mkdir(parents=True, exist_ok=True)
        self.state.set_meta(status="starting", topology=self.topology.name)
        self.state.clear_processes()  # rows of an earlier run would read as current
        if self.security is not None:
            self.security.ensure(topology_users(self.topology))
            self.admin_security = self.security.client()
        listen = (METRICS_HOST, self._port("supervisor/metrics"))
        metrics = MetricsEndpoint("supervisor", self.topology.name, listen)
        observe_supervisor(metrics.meter, self)
        self.state.set_meta(metrics_url=metrics.url)
        try:
            await self._run()
        finally:
            metrics.close()

    async def _run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg.cancel_scope)
            try:
                if self.topology.links:
                    await self._start_wan(tg)
                self.bootstraps = await self._start_regions(tg)
                await self._start_workers(tg)
            except SupervisorError as exc:
                self.failed = True
                await self._give_up(str(exc))
                tg.cancel_scope.cancel()
                return
            tg.start_soon(self._report_health)
            tg.start_soon(self._follow_links, tg)
            tg.start_soon(self._enforce_roles)

    async def _give_up(self, reason: str) -> None:
        log.error("cannot bring the topology up: %s", reason)
        self.stopping = True
        with anyio.CancelScope(shield=True):
            await self._stop_all()
        self.state.set_meta(status="failed", error=reason)

    async def _start_wan(self, tg: anyio.abc.TaskGroup) -> None:
        """The fault proxy and the links' proxies (per direction and broker), before any
        broker."""
        api = self.topology.chaos.toxiproxy_url or await self._start_fault_proxy(tg)
        self.wan = plan_proxies(self.topology, self._port)
        try:
            await create_proxies(api, self.wan, self.topology)
        except Exception as exc:  # toxiproxy-python raises requests' and its own errors
            raise SupervisorError(f"cannot create the WAN link proxies at {api}: {exc}") from exc
        self.state.set_meta(wan={"api": api, "proxies": [p.to_json() for p in self.wan]})

    async def _start_fault_proxy(self, tg: anyio.abc.TaskGroup) -> str:
        port = self._port("wan/api")
        spec = ChildSpec(
            name="wan/proxy",
            kind="proxy",
            region="",
            flow="",
            argv=regionlink_argv("chaos", "proxy", "--listen", f"127.0.0.1:{port}"),
            ready=NODE_READY,
            log_path=self.state_dir / "logs" / "wan-proxy.log",
        )
        return await self._start_ready(tg, spec)

    async def _start_regions(self, tg: anyio.abc.TaskGroup) -> dict[str, str]:
        """Every managed region's servers; the bootstrap of each, for the workers."""
        bootstraps: dict[str, str] = {}
        for region, config in sorted(self.topology.managed_regions.items()):
            quorum = None if config.single_node else await self._start_quorum(tg, region, config)
            addresses = []
            for index in range(1, (config.brokers or 1) + 1):
                port = self._port(f"{region}/broker-{index}")
                listeners = listener_args(self.wan, region, index)
                security = self._broker_security(region, index, listeners, quorum is not None)
                spec = broker_spec(self.state_dir, region, index, port, quorum, listeners, security)
                addresses.append(await self._start_ready(tg, spec))
            bootstraps[region] = ",".join(addresses)
            await self._create_users(region)
        return bootstraps

    def _broker_security(
        self, region: str, index: int, listeners: tuple[str, ...], clustered: bool
    ) -> tuple[str, ...]:
        if self.security is None:
            return ()
        internal = self._port(f"{region}/broker-{index}/internal")
        return self.security.broker_args(
            internal, listeners, clustered=clustered, users=topology_users(self.topology)
        )

    async def _create_users(self, region: str) -> None:
        """The topology's SCRAM users in `region`, through broker 1's INTERNAL listener
        (mutual TLS with the admin certificate), before any worker logs in."""
        if self.security is None or self.security.config.sasl is None:
            return
        internal = f"127.0.0.1:{self._port(f'{region}/broker-1/internal')}"
        try:
            with anyio.fail_after(READY_TIMEOUT_S):
                await create_users(self.security, internal, topology_users(self.topology))
        except (KafkaError, KafkaConnectionError, OSError, TimeoutError) as exc:
            raise SupervisorError(f"cannot create the SCRAM users in {region}: {exc}") from exc
        log.info("SCRAM users of %s are in place", region)

    async def _start_quorum(
        self, tg: anyio.abc.TaskGroup, region: str, config: RegionConfig
    ) -> str:
        """Start a region's controllers; the quorum string its brokers register with.

        Every controller's port is in the quorum string, so all are chosen before any starts.
        """
        count = config.controllers or 1
        quorum = ",".join(
            f"{index}@127.0.0.1:{self._port(f'{region}/controller-{index}')}"
            for index in range(1, count + 1)
        )
        replication_factor = min(MAX_REPLICATION_FACTOR, config.brokers or 1)
        for index in range(1, count + 1):
            security = self.security.controller_args() if self.security else ()
            spec = controller_spec(
                self.state_dir, region, index, quorum, replication_factor, security
            )
            await self._start_ready(tg, spec)
        return quorum

    async def _start_ready(self, tg: anyio.abc.TaskGroup, spec: ChildSpec) -> str:
        """Launch a server the next ones depend on; its address, or SupervisorError."""
        child = await self._launch(tg, spec)
        if not child.ready:
            raise SupervisorError(
                f"{spec.name} was not ready within {READY_TIMEOUT_S:g}s; see {spec.log_path}"
            )
        return child.address

    async def _start_workers(self, tg: anyio.abc.TaskGroup) -> None:
        """Workers of every flow the link state runs (the file's enabled flows at first)."""
        if not self.topology.flows:
            return  # regions only: nothing to mirror
        mirror = self.topology.mirror_config(self.bootstraps)
        for flow in running_flows(self.topology, self.links):
            config = write_flow_config(
                self.state_dir / "flows", self._secured(self._across_wan(mirror, flow), flow), flow
            )
            for index in range(1, flow.workers + 1):
                key = f"{flow.source}->{flow.target}/worker-{index}"
                spec = worker_spec(
                    self.state_dir, flow.source, flow.target, index, config, self._port(key)
                )
                if spec.name not in self.children:
                    await self._launch(tg, spec)

    def _across_wan(self, mirror: MirrorConfig, flow: FlowConfig) -> MirrorConfig:
        """A flow's worker runs in its source region: it reaches the target over the link."""
        remote = remote_bootstrap(self.wan, flow.source, flow.target)
        if remote is None:
            return mirror
        target = mirror.clusters[flow.target].model_copy(update={"bootstrap": remote})
        return mirror.model_copy(update={"clusters": {**mirror.clusters, flow.target: target}})

    def _secured(self, mirror: MirrorConfig, flow: FlowConfig) -> MirrorConfig:
        """A flow's workers log in to both regions as the flow's own user."""
        if self.security is None:
            return mirror
        settings = self.security.cluster_settings(worker_user(flow))
        clusters = {
            alias: cluster.model_copy(update=settings)
            if alias in (flow.source, flow.target)
            else cluster
            for alias, cluster in mirror.clusters.items()
        }
        return mirror.model_copy(update={"clusters": clusters})

    async def _follow_links(self, tg: anyio.abc.TaskGroup) -> None:
        """Apply what a failover operation changed: flows to stop, start or re-stamp."""
        applied = encode(self.links)
        while not self.stopping:
            await anyio.sleep(LINKS_POLL_S)
            links = load_links(self.state)
            if links is None or encode(links) == applied:
                continue
            log.info("links changed: epoch %d, flows %s", links.epoch, links.flows)
            before, self.links, applied = self.links.flows, links, encode(links)
            for child in [c for c in self.children.values() if c.spec.kind == "worker"]:
                source, target = child.spec.flow.split(":")
                flow = (source, target)
                if flow not in links.flows:
                    await self._retire(child)
                elif links.flows[flow] != before.get(flow):
                    self._restamp.add(child.spec.name)
            await self._start_workers(tg)  # rewrites flow files, starts new flows' workers
            for name in self._restamp:
                self._signal(self.children[name], signal.SIGTERM)  # back with the new epoch
            self._restamp.clear()

    async def _enforce_roles(self) -> None:
        """Tell each managed region its role whenever it knows an older epoch (it was down,
        frozen or cut off during a failover, or restarted from old data), or holds another
        role at the epoch of a change the journal records as unconfirmed."""
        from mirror.failover.regions import read_role, set_role

        while not self.stopping:
            await anyio.sleep(ROLES_POLL_S)
            for region, wanted_role in sorted(self.links.roles.items()):
                bootstrap = self.bootstraps.get(region)
                if not wanted_role.epoch or not bootstrap:
                    continue
                try:
                    with anyio.fail_after(ROLES_POLL_S * 4):
                        async with KafkaClient(
                            parse_bootstrap(bootstrap),
                            request_timeout_s=2,
                            connect_timeout_s=1,
                            security=self.admin_security,
                        ) as client:
                            known = await read_role(client)
                            if wanted_role.to_tell(known.role, known.epoch):
                                wanted = Topology(
                                    wanted_role.epoch, wanted_role.role.value, self.links.primary
                                )
                                await set_role(client, wanted)
                                log.warning("told %s its role: %s", region, wanted)
                except (KafkaError, KafkaConnectionError, OSError, TimeoutError) as exc:
                    log.debug("region %s not reachable for its role: %s", region, exc)
                except Exception:  # this loop must outlive any surprise: it is a safety net
                    log.exception("telling %s its role failed", region)

    def _role_args(self, spec: ChildSpec) -> tuple[str, ...]:
        """A broker starts knowing its region's role, before it takes any client write, and
        with its write lease on the other region of the failover pair, if there is one."""
        if spec.kind != "broker":
            return ()
        return self._startup_role(spec.region) + self._lease_args(spec.region)

    def _metrics_address(self, spec: ChildSpec) -> str:
        """Where a child serves its metrics, HOST:PORT (a port kept across restarts), or ""."""
        if spec.kind not in METRICS_KINDS:
            return ""
        return f"{METRICS_HOST}:{self._port(f'{spec.name}/metrics')}"

    def _metrics_args(self, spec: ChildSpec) -> tuple[str, ...]:
        address = self._metrics_address(spec)
        return ("--metrics-listen", address) if address else ()

    def _metrics_url(self, spec: ChildSpec) -> str:
        address = self._metrics_address(spec)
        return f"http://{address}/metrics" if address else ""

    def _startup_role(self, region: str) -> tuple[str, ...]:
        if region not in self.links.roles:
            return ()
        role = self.links.roles[region]
        return (
            "--topology-epoch", str(role.epoch), "--region-role", role.role.value,
            "--topology-primary", self.links.primary,
        )  # fmt: skip

    def _lease_args(self, region: str) -> tuple[str, ...]:
        failover = self.topology.failover
        if failover is None or failover.lease_s is None:
            return ()
        pair = (failover.primary, failover.standby)
        if region not in pair:
            return ()
        other = pair[1] if region == pair[0] else pair[0]
        config = self.topology.regions[other]
        if remote := remote_bootstrap(self.wan, region, other):
            peers = remote  # the lease is about reaching the standby across the WAN
        elif config.bootstrap is not None:
            peers = config.bootstrap
        else:
            count = config.brokers or 1
            peers = ",".join(
                f"127.0.0.1:{self._port(f'{other}/broker-{i}')}" for i in range(1, count + 1)
            )
        tls = ("--lease-tls",) if self.security is not None else ()  # the peers speak TLS
        return ("--lease-s", f"{failover.lease_s:g}", "--lease-peer", peers, *tls)

    async def _retire(self, child: _Child) -> None:
        """Stop a worker for good. A worker is crash-safe, so one stuck on a dead region
        (its requests wait out their timeouts) is killed after a short grace."""
        child.retired = True
        self._signal(child, signal.SIGTERM)
        if child.process is not None:
            with anyio.move_on_after(RETIRE_GRACE_S):
                await child.process.wait()
            if child.process.returncode is None:
                child.process.kill()
        del self.children[child.spec.name]
        self.state.delete_process(child.spec.name)

    def _signal(self, child: _Child, signum: signal.Signals) -> None:
        if child.process is not None and child.process.returncode is None:
            child.process.send_signal(signum)

    async def _launch(self, tg: anyio.abc.TaskGroup, spec: ChildSpec) -> _Child:
        """Start `spec` and keep it running; returns once it is ready the first time."""
        child = self.children[spec.name] = _Child(spec)
        tg.start_soon(self._keep_running, child, child.settled)
        with anyio.move_on_after(READY_TIMEOUT_S):
            await child.settled.wait()
        return child

    async def _keep_running(self, child: _Child, first_ready: anyio.Event) -> None:
        backoff = Backoff(initial_s=1.0, max_s=30.0)
        while not self.stopping and not child.retired:
            started_s = time.monotonic()
            code = await self._run_once(child, first_ready)
            if self.stopping or child.retired:
                break
            if time.monotonic() - started_s > HEALTHY_UPTIME_S:
                backoff.reset()
            delay_s = backoff.next_delay_s()
            child.restarts += 1
            if not child.ever_ready and child.restarts >= START_ATTEMPTS:
                first_ready.set()  # it keeps failing before it is ever ready: stop waiting
            log.warning(
                "%s exited with %s; restart %d in %.1fs",
                child.spec.name,
                code,
                child.restarts,
                delay_s,
            )
            self._record(child, "restarting", f"exit {code}")
            await anyio.sleep(delay_s)

    async def _run_once(self, child: _Child, first_ready: anyio.Event) -> int:
        spec = child.spec
        with open(spec.log_path, "ab") as log_file:
            child.process = await anyio.open_process(
                [*spec.argv, *self._role_args(spec), *self._metrics_args(spec)],
                stdout=-1,
                stderr=log_file,
                start_new_session=True,
                env=child_environment(
                    self.topology.tracing, self.state_dir, spec.region, os.environ
                ),
            )
            child.ready = False
            self._record(child, "starting")
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_stdout, child, first_ready)
                code = await child.process.wait()
                tg.cancel_scope.cancel()
        child.ready = False
        self._record(child, "stopped" if self.stopping else "exited", f"exit {code}")
        return code

    async def _read_stdout(self, child: _Child, first_ready: anyio.Event) -> None:
        assert child.process is not None and child.process.stdout is not None
        seen = ""
        async for chunk in child.process.stdout:
            seen = (seen + chunk.decode("utf-8", "replace"))[-4096:]
            match = child.spec.ready.search(seen) if not child.ready else None
            if match:
                child.ready, child.ever_ready, child.address = True, True, match.group(1)
                self._record(child, "running")
                first_ready.set()
                await self._reapply_pause(child)

    async def _reapply_pause(self, child: _Child) -> None:
        """A restarted worker starts unpaused; the operator's pause must survive that."""
        if child.spec.kind != "worker" or child.spec.flow not in self.state.paused_flows():
            return
        from mirror.control.client import ControlError, pause_flow

        source, target = child.spec.flow.split(":")
        try:
            await pause_flow(child.address, source, target)
        except ControlError as exc:
            log.warning("could not re-pause %s: %s", child.spec.name, exc)

    def _record(self, child: _Child, state: str, last_exit: str = "") -> None:
        if child.retired:
            return  # its row is gone with its flow
        spec = child.spec
        child.last_exit = last_exit or child.last_exit  # kept while it runs again
        pid = child.process.pid if child.process is not None else 0
        self.state.upsert_process(
            ProcessRow(
                spec.name,
                spec.kind,
                spec.region,
                spec.flow,
                child.address,
                pid,
                state,
                child.restarts,
                child.last_exit,
                self._metrics_url(spec),
            )
        )

    async def _report_health(self) -> None:
        while not self.stopping:
            healthy = all(c.ready for c in self.children.values())
            self.state.set_meta(status="healthy" if healthy else "degraded")
            await anyio.sleep(0.5)

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        self.stopping = True
        self.state.set_meta(status="stopping")
        with anyio.CancelScope(shield=True):
            await self._stop_all()
        self.state.set_meta(status="stopped")
        scope.cancel()

    async def _stop_all(self) -> None:
        for kind in STOP_ORDER:
            await self._stop_kind(kind)

    async def _stop_kind(self, kind: str) -> None:
        processes = [
            c.process
            for c in self.children.values()
            if c.spec.kind == kind and c.process is not None and c.process.returncode is None
        ]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(STOP_TIMEOUT_S):
            for process in processes:
                await process.wait()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


def main(argv: list[str] | None = None) -> None:
    """`python -m mirror.runtime.supervisor TOPOLOGY STATE_DIR` (started by `regionlink up`)."""
    args = argv if argv is not None else sys.argv[1:]
    topology_path, state_dir = Path(args[0]), Path(args[1])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    supervisor = Supervisor(load_topology(topology_path), state_dir)
    supervisor.state.set_meta(supervisor_pid=_own_pid(), topology_path=str(topology_path), error="")
    anyio.run(supervisor.run)
    if supervisor.failed:
        sys.exit(1)


def _own_pid() -> int:
    return os.getpid()


if __name__ == "__main__":
    main()
