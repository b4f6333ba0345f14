"""Topology files: the schema, `regionlink topology validate|show`, and the shipped examples."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from mirror.cli.topology import topology_app
from mirror.config import FlowConfig, MirrorConfig, WorkerSection
from mirror.errors import ConfigError
from mirror.runtime.topology import RegionConfig, TopologyConfig, load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
EXAMPLES = sorted(TOPOLOGIES.glob("*.toml"))

EXAMPLE = """\
name = "two-regions"
[regions.us-east]
brokers = 1
[regions.eu-west]
brokers = 1
[regions.legacy]
bootstrap = "127.0.0.1:19092"
[[flows]]
source = "us-east"
target = "eu-west"
topics = [".*"]
workers = 1
[failover]
primary = "us-east"
standby = "eu-west"
"""

# The CLI as operators reach it: `regionlink topology ...`.
app = typer.Typer()
app.add_typer(topology_app, name="topology")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["topology", *map(str, args)])


def write(tmp_path: Path, text: str, name: str = "topology.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def cli_problems(path: Path) -> list[str]:
    """`validate`'s error lines, checking exit code 2, stderr only, and no traceback."""
    result = run("validate", path)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert lines
    for line in lines:
        assert line.startswith(f"{path}:"), line
    # `show` refuses the same file the same way.
    shown = run("show", path)
    assert (shown.exit_code, shown.stdout, shown.stderr) == (2, "", result.stderr)
    return lines


def test_there_are_ten_examples() -> None:
    assert [path.name for path in EXAMPLES] == [
        "active-active.toml",
        "active-passive-rf3-wan.toml",
        "active-passive-rf3.toml",
        "active-passive-wan.toml",
        "active-passive.toml",
        "external-cluster.toml",
        "three-brokers.toml",
        "three-region-hub.toml",
        "two-regions-secure.toml",
        "two-regions.toml",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_validates(path: Path) -> None:
    result = run("validate", path)
    assert result.exit_code == 0, result.output
    topology = load_topology(path)
    assert result.stdout == f"{path}: ok — {topology.summary()}\n"
    assert topology.name == path.stem
    # Each file says what it shows and how to run it.
    text = path.read_text()
    assert text.startswith("# ")
    assert f"regionlink up topologies/{path.name} --state-dir /tmp/regionlink-{path.stem}" in text


def test_examples_describe_what_they_promise() -> None:
    two = load_topology(TOPOLOGIES / "two-regions.toml")
    (flow,) = two.flows
    assert (flow.source, flow.target, flow.topics) == ("us-east", "eu-west", [".*"])
    assert flow.sync_group_offsets and flow.emit_checkpoints_interval_s == 1
    assert two.failover is not None
    assert (two.failover.primary, two.failover.standby) == ("us-east", "eu-west")
    secure = load_topology(TOPOLOGIES / "two-regions-secure.toml")  # the same, secured
    assert secure.security.protocol == "SASL_SSL" and secure.security.sasl == "SCRAM-SHA-512"
    unsecured = secure.model_copy(update={"name": two.name, "security": two.security})
    assert unsecured.model_dump() == two.model_dump()

    active = load_topology(TOPOLOGIES / "active-active.toml")
    assert {(f.source, f.target, f.naming) for f in active.flows} == {
        ("us-east", "eu-west", "prefix"),
        ("eu-west", "us-east", "prefix"),
    }

    hub = load_topology(TOPOLOGIES / "three-region-hub.toml")
    assert {(f.source, f.target) for f in hub.flows} == {
        ("ap-south", "us-east"),
        ("eu-west", "us-east"),
        ("us-east", "eu-west"),
        ("us-east", "ap-south"),
    }
    assert all(f.naming == "prefix" for f in hub.flows)

    replicated = load_topology(TOPOLOGIES / "three-brokers.toml")
    us, eu = replicated.regions["us-east"], replicated.regions["eu-west"]
    assert (us.brokers, us.controllers, eu.single_node) == (3, 3, True)
    assert [(f.source, f.target) for f in replicated.flows] == [("us-east", "eu-west")]

    external = load_topology(TOPOLOGIES / "external-cluster.toml")
    assert not external.regions["legacy"].managed
    assert external.regions["legacy"].bootstrap == "127.0.0.1:19092"
    assert external.regions["us-east"].managed
    assert [(f.source, f.target) for f in external.flows] == [("legacy", "us-east")]


def propagate(topology: TopologyConfig, rounds: int = 10) -> dict[str, set[str]]:
    """Topics on each region after mirroring ``orders`` from every region until nothing changes."""
    from mirror.copy.policy import ReplicationPolicy, should_mirror_topic

    config = topology.mirror_config({alias: "h:1" for alias in topology.regions})
    topics = {alias: {"orders"} for alias in topology.regions}
    for _ in range(rounds):
        before = {alias: set(names) for alias, names in topics.items()}
        for flow in config.flows:
            policy = ReplicationPolicy.for_flow(flow, config.aliases)
            for topic in before[flow.source]:
                if should_mirror_topic(topic, flow, policy):
                    topics[flow.target].add(policy.remote_topic(topic))
        if topics == before:
            return topics
    raise AssertionError(f"topics keep multiplying: {topics}")


def test_example_flows_do_not_loop() -> None:
    hub = propagate(load_topology(TOPOLOGIES / "three-region-hub.toml"))
    assert hub == {
        "us-east": {"orders", "ap-south.orders", "eu-west.orders"},
        "eu-west": {"orders", "us-east.orders", "us-east.ap-south.orders"},
        "ap-south": {"orders", "us-east.orders", "us-east.eu-west.orders"},
    }
    active = propagate(load_topology(TOPOLOGIES / "active-active.toml"))
    assert active == {
        "us-east": {"orders", "eu-west.orders"},
        "eu-west": {"orders", "us-east.orders"},
    }


def test_validate_summary(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE, name="two-regions.toml")
    result = run("validate", path)
    assert result.exit_code == 0
    assert result.stdout == (
        f'{path}: ok — topology "two-regions": 3 regions (2 managed, 1 external), 1 flow, '
        "failover us-east → eu-west\n"
    )


def test_load_example(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    topology = load_topology(path)
    assert topology.source_path == path
    assert list(topology.regions) == ["us-east", "eu-west", "legacy"]
    us, legacy = topology.regions["us-east"], topology.regions["legacy"]
    assert (us.managed, us.brokers, us.controllers, us.bootstrap) == (True, 1, None, None)
    assert us.single_node and us.request_timeout_s == 30
    assert (legacy.managed, legacy.brokers, legacy.bootstrap) == (False, None, "127.0.0.1:19092")
    assert not legacy.single_node
    assert topology.flows == [FlowConfig(source="us-east", target="eu-west")]
    assert list(topology.managed_regions) == ["us-east", "eu-west"]
    assert list(topology.external_regions) == ["legacy"]


def test_region_defaults_and_multi_broker_regions() -> None:
    assert RegionConfig().brokers == 1
    assert RegionConfig(brokers=1, controllers=0).single_node
    region = RegionConfig(brokers=3, controllers=3, request_timeout_s=5)
    assert region.managed and not region.single_node
    assert (region.brokers, region.controllers, region.request_timeout_s) == (3, 3, 5)
    assert RegionConfig(brokers=5, controllers=1).controllers == 1


def test_show_draws_the_tree(tmp_path: Path) -> None:
    text = EXAMPLE.replace("brokers = 1\n[regions.legacy]", "brokers = 3\ncontrollers = 3\n")
    text = text.replace('bootstrap = "127.0.0.1:19092"\n', "")
    text += textwrap.dedent(
        """\
        [[flows]]
        source = "eu-west"
        target = "us-east"
        topics = ["orders-[0-9]+"]
        topics_exclude = []
        sync_group_offsets = true
        workers = 2
        start_from = "latest"
        enabled = false
        [regions.legacy]
        bootstrap = "10.0.0.1:9092,10.0.0.2:9092"
        request_timeout_s = 5
        """
    )
    result = run("show", write(tmp_path, text))
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == "topology two-regions"
    body = "\n".join(lines[1:])
    expected = """\
├── regions
│   ├── us-east: 1 broker (single-node, own metadata)
│   ├── eu-west: 3 brokers, 3 controllers
│   └── legacy: external: 10.0.0.1:9092,10.0.0.2:9092, request_timeout_s = 5
├── flows
│   ├── us-east → eu-west
│   │   ├── topics: .*
│   │   ├── naming: prefix, <topic> → us-east.<topic>
│   │   ├── group offset sync: off (checkpoints only)
│   │   └── workers: 1
│   └── eu-west → us-east  (disabled: enabled = false)
│       ├── topics: orders-[0-9]+
│       ├── topics_exclude: (none)
│       ├── naming: prefix, <topic> → eu-west.<topic>
│       ├── group offset sync: on
│       ├── workers: 2
│       └── other settings: start_from = "latest"
└── failover
    ├── primary: us-east
    └── standby: eu-west"""
    assert body == expected


def test_show_without_flows_or_failover(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "solo"\n[regions.us-east]\n[[regions.x]]\n', name="solo.toml")
    assert cli_problems(path)[0].startswith(f"{path}:3: regions.x: ")
    path = write(tmp_path, 'name = "solo"\n[regions.us-east]\n', name="solo.toml")
    assert run("validate", path).stdout == (
        f'{path}: ok — topology "solo": 1 region (1 managed), no flows, no failover\n'
    )
    result = run("show", path)
    assert result.exit_code == 0
    assert "flows\n│   └── none" in result.stdout
    assert "failover\n    └── none" in result.stdout


def test_identity_naming_is_shown(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("workers = 1", 'naming = "identity"'))
    assert "naming: identity, <topic> keeps its name" in run("show", path).stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_show_json_round_trips(path: Path) -> None:
    result = run("show", path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    topology = load_topology(path)
    assert data == topology.model_dump(mode="json")
    # (Compared as data: models also compare their private source path.)
    assert TopologyConfig.model_validate(data).model_dump() == topology.model_dump()
    assert TopologyConfig.model_validate_json(result.stdout).model_dump() == topology.model_dump()


def test_show_names_every_region_and_flow() -> None:
    path = TOPOLOGIES / "three-region-hub.toml"
    result = run("show", path)
    assert result.exit_code == 0
    assert result.stdout.startswith("topology three-region-hub")
    for alias in ("us-east", "eu-west", "ap-south"):
        assert f"{alias}: 1 broker (single-node, own metadata)" in result.stdout
    for source, target in [
        ("ap-south", "us-east"),
        ("eu-west", "us-east"),
        ("us-east", "eu-west"),
        ("us-east", "ap-south"),
    ]:
        assert f"{source} → {target}" in result.stdout
        assert f"<topic> → {source}.<topic>" in result.stdout


def test_unknown_key_in_a_region(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("brokers = 1\n[regions.legacy]", "brokerz = 1\n[x.y]"))
    assert cli_problems(path) == [
        f"{path}:5: regions.eu-west.brokerz: unknown key 'brokerz' (did you mean 'brokers'?)",
        f"{path}:6: x: unknown key 'x'; known keys: name, regions, flows, failover, links, "
        "chaos, tracing, security",
    ]


def test_brokers_and_bootstrap_together(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("[regions.legacy]\n", "[regions.legacy]\nbrokers = 1\n"))
    assert cli_problems(path) == [
        f"{path}:7: regions.legacy.brokers: brokers is for regions regionlink runs, but "
        "bootstrap makes this an external cluster; remove one of the two"
    ]


def test_controllers_on_an_external_region(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE + "[regions.legacy.x]\n")
    (line,) = cli_problems(path)
    assert line.startswith(f"{path}:16: regions.legacy.x: unknown key 'x'")
    path = write(
        tmp_path, EXAMPLE.replace("[regions.legacy]\n", "[regions.legacy]\ncontrollers = 3\n")
    )
    (line,) = cli_problems(path)
    assert line.startswith(f"{path}:7: regions.legacy.controllers: controllers is for regions")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            "brokers = 3\ncontrollers = 2",
            "6: regions.eu-west.controllers: controllers must be 1, 3 or 5, got 2",
        ),
        (
            "brokers = 3",
            "4: regions.eu-west.controllers: a region with brokers = 3 needs controllers = 1, 3 "
            "or 5",
        ),
        (
            "controllers = 3",
            "5: regions.eu-west.controllers: controllers = 3 needs brokers > 1",
        ),
        (
            "brokers = 1\ncontrollers = 1",
            "6: regions.eu-west.controllers: controllers = 1 needs brokers > 1",
        ),
        ("brokers = 0", "5: regions.eu-west.brokers: input should be greater than or equal to 1"),
        ('brokers = "3"', '5: regions.eu-west.brokers: input should be a valid integer (got "3")'),
        ("request_timeout_s = 0", "5: regions.eu-west.request_timeout_s: input should be greater"),
    ],
)
def test_region_shape_rules(tmp_path: Path, settings: str, expected: str) -> None:
    text = EXAMPLE.replace("[regions.eu-west]\nbrokers = 1\n", f"[regions.eu-west]\n{settings}\n")
    path = write(tmp_path, text)
    (line,) = cli_problems(path)
    assert line.startswith(f"{path}:{expected}")


def test_bad_bootstrap(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('"127.0.0.1:19092"', '"127.0.0.1"'))
    assert cli_problems(path) == [
        f"{path}:7: regions.legacy.bootstrap: expected host:port, got '127.0.0.1'"
    ]


def test_flow_to_an_unknown_region(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('target = "eu-west"', 'target = "ap-south"'))
    assert cli_problems(path)[0] == (
        f"{path}:10: flows[0].target: unknown cluster 'ap-south'; "
        "clusters are: eu-west, legacy, us-east"
    )


def test_flow_rules_from_the_mirror_config_apply(tmp_path: Path) -> None:
    text = EXAMPLE.replace("workers = 1", 'naming = "identity"\nworkers = 0') + textwrap.dedent(
        """\
        [[flows]]
        source = "eu-west"
        target = "us-east"
        """
    )
    path = write(tmp_path, text)
    assert cli_problems(path) == [
        f"{path}:13: flows[0].workers: input should be greater than or equal to 1 (got 0)"
    ]
    path = write(tmp_path, text.replace("workers = 0", "workers = 2"))
    (line,) = cli_problems(path)
    assert line.startswith(
        f"{path}:12: flows[0].naming: identity naming on us-east->eu-west with reverse flow"
    )


def test_failover_standby_without_a_flow(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('standby = "eu-west"', 'standby = "legacy"'))
    assert cli_problems(path) == [
        f"{path}:15: failover.standby: failover us-east -> legacy needs a flow us-east->legacy "
        'to copy the data: add [[flows]] source = "us-east", target = "legacy"'
    ]


def test_failover_rules(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('primary = "us-east"', 'primary = "us"'))
    assert cli_problems(path) == [
        f"{path}:14: failover.primary: unknown region 'us'; regions are: eu-west, legacy, us-east"
    ]
    path = write(tmp_path, EXAMPLE.replace('standby = "eu-west"', 'standby = "us-east"'))
    assert cli_problems(path) == [
        f"{path}:15: failover.standby: standby must differ from primary ('us-east')"
    ]
    path = write(tmp_path, EXAMPLE.replace("workers = 1", "enabled = false"))
    assert cli_problems(path) == [
        f"{path}:15: failover.standby: failover us-east -> eu-west needs the flow "
        "us-east->eu-west, which has enabled = false"
    ]
    path = write(tmp_path, EXAMPLE.replace('standby = "eu-west"\n', ""))
    assert cli_problems(path) == [f"{path}:13: failover.standby: required key is missing"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            EXAMPLE.replace('"two-regions"', '"Two Regions"'),
            "1: name: topology name 'Two Regions' may only use lowercase letters, digits and '-'",
        ),
        ('name = "x"\nregions = {}\n', "2: regions: at least one [regions.NAME] table is required"),
        (
            EXAMPLE.replace("[regions.legacy]", '[regions."leg.acy"]'),
            "6: regions.\"leg.acy\": cluster alias 'leg.acy' may only use letters",
        ),
        (EXAMPLE.replace('name = "two-regions"\n', ""), " name: required key is missing"),
    ],
)
def test_topology_rules(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    (line,) = cli_problems(path)
    assert line.startswith(f"{path}:{expected}")


def test_every_problem_on_its_own_line_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        name = "x"
        [regions.a]
        brokers = 3
        controllers = 4
        [regions.b]
        bootstrap = "h:1"
        brokers = 2
        controllers = 1
        [regions.c]
        colour = "red"
        """,
    )
    lines = cli_problems(path)
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{path}:4", "regions.a.controllers"],
        [f"{path}:7", "regions.b.brokers"],
        [f"{path}:8", "regions.b.controllers"],
        [f"{path}:10", "regions.c.colour"],
    ]


def test_bad_toml_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('source = "us-east"', "source = us-east"))
    assert cli_problems(path) == [f"{path}:9: invalid TOML: invalid value (column 10)"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    assert cli_problems(path) == [f"{path}: cannot read: No such file or directory"]
    (line,) = cli_problems(tmp_path)
    assert line.startswith(f"{tmp_path}: cannot read: ")


def test_help_teaches() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "regionlink up FILE --state-dir DIR" in result.stdout
    assert "[regions.us-east]" in result.stdout and "[[flows]]" in result.stdout
    assert "regionlink topology validate topologies/two-regions.toml" in result.stdout
    for command in ("validate", "show"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert f"regionlink topology {command} topologies/" in result.stdout
        assert "[regions.NAME]" in result.stdout


def test_mirror_config_uses_runtime_bootstraps_and_keeps_flows(tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, EXAMPLE))
    config = topology.mirror_config(
        {"us-east": "127.0.0.1:9101", "eu-west": "127.0.0.1:9102", "legacy": "ignored:1"}
    )
    assert isinstance(config, MirrorConfig)
    assert {alias: c.bootstrap for alias, c in config.clusters.items()} == {
        "us-east": "127.0.0.1:9101",
        "eu-west": "127.0.0.1:9102",
        "legacy": "127.0.0.1:19092",
    }
    assert config.flows == topology.flows
    assert config.flow("us-east:eu-west") is config.flows[0]
    assert config.worker == WorkerSection()
    assert config.source_path == topology.source_path


def test_mirror_config_options(tmp_path: Path) -> None:
    text = EXAMPLE.replace("[regions.legacy]\n", "[regions.legacy]\nrequest_timeout_s = 7\n")
    topology = load_topology(write(tmp_path, text))
    worker = WorkerSection(control_listen="127.0.0.1:7070")
    config = topology.mirror_config({"us-east": "h:1", "eu-west": "h:2"}, worker=worker)
    assert config.worker is worker
    assert config.clusters["legacy"].request_timeout_s == 7
    assert config.clusters["us-east"].request_timeout_s == 30


def test_mirror_config_needs_every_managed_bootstrap(tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, EXAMPLE))
    with pytest.raises(ValueError, match=r"no bootstrap for managed region.* eu-west"):
        topology.mirror_config({"us-east": "h:1", "legacy": "h:2"})
    with pytest.raises(ValueError, match="host:port"):
        topology.mirror_config({"us-east": "h:1", "eu-west": "nonsense"})
    solo = TopologyConfig(name="solo", regions={"us-east": RegionConfig()})
    with pytest.raises(ValueError, match="no flows"):
        solo.mirror_config({"us-east": "h:1"})


def test_load_topology_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_topology(tmp_path / "missing.toml")


def test_models_are_frozen_and_strict() -> None:
    region = RegionConfig()
    with pytest.raises(ValueError, match="frozen"):
        region.brokers = 2
    with pytest.raises(ValueError, match="valid integer"):
        RegionConfig.model_validate({"brokers": "1"})
    with pytest.raises(ValueError, match="brokers is for regions regionlink runs"):
        RegionConfig(bootstrap="h:1", brokers=1)
