"""`regionlink topology validate|show`: check a topology file and draw what it describes.

The main app mounts this with ``app.add_typer(topology_app, name="topology")``. Errors are
printed as the `ConfigError` lines (``FILE:LINE: key: message``) on stderr with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from mirror.config import FlowConfig
from mirror.errors import ConfigError
from mirror.runtime.topology import RegionConfig, TopologyConfig, load_topology

# Rich markup is on in help texts, so a literal "[" is written "\[".
topology_app = typer.Typer(
    help="""Check and inspect topology files: regions and the mirror flows between them.

A topology is a TOML file that names each region (brokers regionlink runs,
or an external Kafka-compatible cluster given by its bootstrap), the flows
that copy topics and group offsets from one region to another, and an
optional failover pair. `regionlink up FILE --state-dir DIR` starts
everything it describes. A small one:

  name = "two-regions"
  \\[regions.us-east]                 # brokers = 1 unless set
  \\[regions.eu-west]
  \\[\\[flows]]
  source = "us-east"
  target = "eu-west"                # topics appear there as us-east.<topic>

Examples:
  regionlink topology validate topologies/two-regions.toml
  regionlink topology show topologies/three-region-hub.toml
  regionlink topology show topologies/active-active.toml --json

See docs/topology.md for every key.""",
    no_args_is_help=True,
)

TopologyFile = Annotated[
    Path,
    typer.Argument(
        help="Topology TOML file: name, \\[regions.NAME] tables, \\[\\[flows]], \\[failover].",
        show_default=False,
    ),
]


def _load(path: Path) -> TopologyConfig:
    """The topology, or its problems on stderr (one line each) and exit code 2."""
    try:
        return load_topology(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@topology_app.command("validate")
def validate_command(file: TopologyFile) -> None:
    """Check a topology file and print a one-line summary of it.

    Each problem is reported on its own line as FILE:LINE: key: message
    (unknown keys, bad values, flows to regions that do not exist, loops,
    a failover standby no flow feeds); the exit code is then 2. Nothing is
    started or contacted.

    Example:
      regionlink topology validate topologies/two-regions.toml
    """
    topology = _load(file)
    typer.echo(f"{file}: ok — {topology.summary()}")


@topology_app.command("show")
def show_command(
    file: TopologyFile,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the validated topology, defaults filled in.")
    ] = False,
) -> None:
    """Draw a topology as a tree: its regions, flows (with topic naming) and failover.

    Defaults are filled in, so this is what `regionlink up` will run.
    Invalid files are reported as by `validate`.

    Examples:
      regionlink topology show topologies/three-region-hub.toml
      regionlink topology show topologies/two-regions.toml --json | jq .flows
    """
    topology = _load(file)
    if as_json:
        typer.echo(json.dumps(topology.model_dump(mode="json"), indent=2))
        return
    Console().print(render_topology(topology))


def render_topology(topology: TopologyConfig) -> Tree:
    """The Rich tree `show` prints (built from `Text`, so regexes are never read as markup)."""
    tree = Tree(Text.assemble(("topology ", "dim"), (topology.name, "bold")))
    regions = tree.add(Text("regions", style="bold"))
    for alias, region in topology.regions.items():
        regions.add(Text.assemble((alias, "cyan"), ": ", describe_region(region)))
    flows = tree.add(Text("flows", style="bold"))
    if not topology.flows:
        flows.add(Text("none", style="dim"))
    for flow in topology.flows:
        _add_flow(flows, flow)
    failover = tree.add(Text("failover", style="bold"))
    if topology.failover is None:
        failover.add(Text("none", style="dim"))
    else:
        failover.add(Text.assemble("primary: ", (topology.failover.primary, "cyan")))
        failover.add(Text.assemble("standby: ", (topology.failover.standby, "cyan")))
    if topology.security.tls:  # shown only when on: plaintext topologies draw as before
        security = tree.add(Text("security", style="bold"))
        mechanism = f" ({topology.security.sasl})" if topology.security.sasl else ""
        security.add(Text(f"listeners: {topology.security.protocol}{mechanism}"))
        security.add(Text("controllers (if any): mutual TLS; CA, certificates, users: state dir"))
    return tree


def describe_region(region: RegionConfig) -> str:
    """``1 broker (single-node, own metadata)``, ``3 brokers, 3 controllers`` or
    ``external: host:port``."""
    if region.bootstrap is not None:
        text = f"external: {region.bootstrap}"
    elif region.brokers == 1 and not region.controllers:
        text = "1 broker (single-node, own metadata)"
    else:
        brokers = f"{region.brokers} broker" + ("" if region.brokers == 1 else "s")
        controllers = f"{region.controllers} controller" + ("" if region.controllers == 1 else "s")
        text = f"{brokers}, {controllers}"
    default_timeout = RegionConfig.model_fields["request_timeout_s"].default
    if region.request_timeout_s != default_timeout:
        text += f", request_timeout_s = {region.request_timeout_s:g}"
    return text


# Flow keys the tree shows on their own lines; any other key is listed when not default.
_SHOWN = frozenset(
    {
        "source",
        "target",
        "topics",
        "topics_exclude",
        "groups",
        "groups_exclude",
        "naming",
        "separator",
        "sync_group_offsets",
        "workers",
        "enabled",
    }
)


def _add_flow(parent: Tree, flow: FlowConfig) -> None:
    label = Text.assemble((flow.source, "cyan"), " → ", (flow.target, "cyan"))
    if not flow.enabled:
        label.append("  (disabled: enabled = false)", style="yellow")
    node = parent.add(label)
    default = FlowConfig(source=flow.source, target=flow.target)
    node.add(f"topics: {', '.join(flow.topics)}")
    if flow.topics_exclude != default.topics_exclude:
        node.add(f"topics_exclude: {', '.join(flow.topics_exclude) or '(none)'}")
    if flow.groups != default.groups:
        node.add(f"groups: {', '.join(flow.groups)}")
    if flow.groups_exclude != default.groups_exclude:
        node.add(f"groups_exclude: {', '.join(flow.groups_exclude) or '(none)'}")
    if flow.naming == "prefix":
        node.add(f"naming: prefix, <topic> → {flow.source}{flow.separator}<topic>")
    else:
        node.add("naming: identity, <topic> keeps its name")
    sync = "on" if flow.sync_group_offsets else "off (checkpoints only)"
    node.add(f"group offset sync: {sync}")
    node.add(f"workers: {flow.workers}")
    others = [
        f"{key} = {_toml_value(value)}"
        for key, value in flow.model_dump().items()
        if key not in _SHOWN and value != getattr(default, key)
    ]
    if others:
        node.add(f"other settings: {', '.join(others)}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)
