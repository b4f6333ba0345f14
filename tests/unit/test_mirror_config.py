"""Mirror configuration: the schema, its defaults, and one-line-per-problem error reports."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.config import (
    DEFAULT_GROUPS_EXCLUDE,
    DEFAULT_TOPICS_EXCLUDE,
    ClusterConfig,
    FlowConfig,
    MirrorConfig,
    load_mirror_config,
    parse_bootstrap,
)
from mirror.errors import ConfigError
from mirror.tomlsource import TomlSource, format_loc, load_toml

EXAMPLE = """\
[clusters.us]
bootstrap = "127.0.0.1:9092"
[clusters.eu]
bootstrap = "127.0.0.1:9093"
[[flows]]
source = "us"
target = "eu"
topics = ["orders-.*"]
groups = [".*"]
sync_group_offsets = true
emit_checkpoints_interval_s = 1
[worker]
control_listen = "127.0.0.1:0"
"""

CLUSTERS = """\
[clusters.us]
bootstrap = "127.0.0.1:9092"
[clusters.eu]
bootstrap = "127.0.0.1:9093"
"""


def write(tmp_path: Path, text: str, name: str = "mirror.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    """The error report's lines, asserting it has the ``file:line: key: message`` shape."""
    with pytest.raises(ConfigError) as info:
        load_mirror_config(path)
    lines = str(info.value).splitlines()
    for line in lines:
        assert line.startswith(f"{path}:"), line
    return lines


def test_example_loads(tmp_path: Path) -> None:
    config = load_mirror_config(write(tmp_path, EXAMPLE))
    assert set(config.clusters) == {"us", "eu"} == config.aliases
    assert config.clusters["eu"].bootstrap_servers == [("127.0.0.1", 9093)]
    (flow,) = config.flows
    assert (flow.source, flow.target, flow.name, flow.spec) == ("us", "eu", "us->eu", "us:eu")
    assert flow.topics == ["orders-.*"]
    assert flow.sync_group_offsets is True
    assert flow.emit_checkpoints_interval_s == 1
    assert config.worker.control_listen == "127.0.0.1:0"
    assert config.source_path == tmp_path / "mirror.toml"


def test_defaults(tmp_path: Path) -> None:
    config = load_mirror_config(
        write(tmp_path, CLUSTERS + '[[flows]]\nsource = "us"\ntarget = "eu"\n')
    )
    flow = config.flows[0]
    assert flow == FlowConfig(source="us", target="eu")
    assert flow.topics == [".*"] and flow.groups == [".*"]
    assert flow.topics_exclude == DEFAULT_TOPICS_EXCLUDE
    assert flow.groups_exclude == DEFAULT_GROUPS_EXCLUDE
    assert (flow.naming, flow.separator, flow.start_from) == ("prefix", ".", "earliest")
    assert not flow.sync_group_offsets and flow.sync_topic_configs and flow.enabled
    assert flow.emit_checkpoints_interval_s == 5 and flow.emit_heartbeats_interval_s == 1
    assert flow.refresh_topics_interval_s == 5 and flow.refresh_groups_interval_s == 5
    assert flow.offset_lag_max == 100 and flow.offset_syncs_location == "source"
    assert flow.replication_factor is None and flow.workers == 1
    assert config.clusters["us"].request_timeout_s == 30
    assert config.worker.control_listen == "127.0.0.1:0" and config.worker.worker_id is None
    # Each flow gets its own default lists.
    assert flow.topics_exclude is not FlowConfig(source="eu", target="us").topics_exclude


def test_flow_lookup(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        CLUSTERS
        + '[[flows]]\nsource = "us"\ntarget = "eu"\n[[flows]]\nsource = "eu"\ntarget = "us"\n',
    )
    config = load_mirror_config(path)
    assert config.flow("us:eu") is config.flows[0]
    assert config.flow("eu:us") is config.flows[1]
    with pytest.raises(ConfigError) as info:
        config.flow("us:ap")
    assert str(info.value) == f"no flow us:ap in {path}; flows are: us:eu, eu:us"
    with pytest.raises(ConfigError, match="SOURCE:TARGET"):
        config.flow("us")


def test_unknown_key_in_second_flow_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        CLUSTERS
        + textwrap.dedent(
            """\
            [[flows]]
            source = "us"
            target = "eu"

            [[flows]]
            source = "eu"
            target = "us"
            topicz = ["orders"]
            """
        ),
        name="two.toml",
    )
    assert problems(path) == [
        f"{path}:12: flows[1].topicz: unknown key 'topicz' (did you mean 'topics'?)"
    ]


def test_unknown_key_without_a_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "colour = 1\n" + EXAMPLE)
    (line,) = problems(path)
    assert line == (f"{path}:1: colour: unknown key 'colour'; known keys: clusters, flows, worker")


def test_bad_regex_names_the_pattern_and_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        CLUSTERS
        + textwrap.dedent(
            """\
            [[flows]]
            source = "us"
            target = "eu"
            topics_exclude = [
                "tmp-.*",
                "bad[",
            ]
            """
        ),
    )
    (line,) = problems(path)
    assert line.startswith(f"{path}:10: flows[0].topics_exclude[1]: bad regex 'bad[': ")


def test_unknown_cluster_points_at_the_flow_key(tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS + '[[flows]]\nsource = "us"\ntarget = "ap"\n')
    assert problems(path) == [
        f"{path}:7: flows[0].target: unknown cluster 'ap'; clusters are: eu, us"
    ]


@pytest.mark.parametrize(
    ("bootstrap", "reason"),
    [
        ("localhost", "expected host:port, got 'localhost'"),
        ("localhost:0", "port 0 in 'localhost:0' is outside 1-65535"),
        ("localhost:70000", "outside 1-65535"),
        ("a:1,,b:2", "expected host:port, got ''"),
        ("", "at least one host:port"),
        ("::1:9092", "must be in brackets"),
    ],
)
def test_bad_bootstrap(tmp_path: Path, bootstrap: str, reason: str) -> None:
    text = EXAMPLE.replace('"127.0.0.1:9093"', f'"{bootstrap}"')
    path = write(tmp_path, text)
    (line,) = problems(path)
    assert line.startswith(f"{path}:4: clusters.eu.bootstrap: ")
    assert reason in line


def test_duplicate_flow_points_at_the_second(tmp_path: Path) -> None:
    flow = '[[flows]]\nsource = "us"\ntarget = "eu"\n'
    path = write(tmp_path, CLUSTERS + flow + flow)
    assert problems(path) == [f"{path}:8: flows[1]: duplicate flow us->eu (also flows[0])"]


def test_toml_syntax_error_is_one_line_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS + "[[flows]]\nsource = us\n")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(info.value) == f"{path}:6: invalid TOML: invalid value (column 10)"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read: "):
        load_mirror_config(tmp_path / "missing.toml")


def test_each_problem_gets_its_own_line_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [clusters.us]
        bootstrap = "127.0.0.1:9092"
        request_timeout_s = 0
        [[flows]]
        source = "us"
        target = "eu"
        naming = "mirror"
        sync_group_offsets = "yes"
        emit_heartbeats_interval_s = -1
        """,
    )
    assert problems(path) == [
        f"{path}:3: clusters.us.request_timeout_s: input should be greater than 0 (got 0)",
        f"{path}:7: flows[0].naming: input should be 'prefix' or 'identity' (got \"mirror\")",
        f'{path}:8: flows[0].sync_group_offsets: input should be a valid boolean (got "yes")',
        f"{path}:9: flows[0].emit_heartbeats_interval_s: input should be greater than 0 (got -1)",
    ]


def test_missing_key_points_at_its_table(tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTERS + '[[flows]]\nsource = "us"\n')
    assert problems(path) == [f"{path}:5: flows[0].target: required key is missing"]


def test_missing_flows(tmp_path: Path) -> None:
    path = write(tmp_path, "flows = []\n" + CLUSTERS)
    assert problems(path) == [f"{path}:1: flows: at least one [[flows]] entry is required"]
    (line,) = problems(write(tmp_path, CLUSTERS))
    assert line == f"{path}: flows: required key is missing"


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        (
            [("us", "us", "")],
            "7: flows[0].target: flow us->us copies a cluster onto itself",
        ),
        (
            [("us", "eu", 'naming = "identity"'), ("eu", "us", "")],
            "8: flows[0].naming: identity naming on us->eu with reverse flow eu->us could copy "
            'records back and forth; use naming = "prefix" for active-active',
        ),
        (
            [("us", "eu", 'separator = "_"'), ("eu", "us", 'separator = "u"')],
            "12: flows[1].separator: separator 'u' occurs in source alias 'eu', "
            "so remote topic prefixes would be ambiguous",
        ),
    ],
)
def test_flow_graph_rules(tmp_path: Path, flows: list[tuple[str, str, str]], expected: str) -> None:
    text = CLUSTERS + "".join(
        f'[[flows]]\nsource = "{source}"\ntarget = "{target}"\n{extra}\n'
        for source, target, extra in flows
    )
    path = write(tmp_path, text)
    assert problems(path) == [f"{path}:{expected}"]


def test_identity_naming_without_a_loop_is_fine(tmp_path: Path) -> None:
    flow = '[[flows]]\nsource = "us"\ntarget = "eu"\nnaming = "identity"\n'
    config = load_mirror_config(write(tmp_path, CLUSTERS + flow))
    assert config.flows[0].naming == "identity"


def test_identity_naming_around_a_longer_loop_is_refused(tmp_path: Path) -> None:
    text = CLUSTERS + '[clusters.ap]\nbootstrap = "127.0.0.1:9094"\n'
    for source, target in [("us", "eu"), ("eu", "ap"), ("ap", "us")]:
        text += f'[[flows]]\nsource = "{source}"\ntarget = "{target}"\nnaming = "identity"\n'
    lines = problems(write(tmp_path, text))
    assert len(lines) == 3
    assert "identity naming closes the loop us->eu->ap->us" in lines[0]


def test_bad_cluster_alias(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("[clusters.eu]", '[clusters."e.u"]'))
    assert problems(path) == [
        f"{path}:3: clusters.\"e.u\": cluster alias 'e.u' may only use letters, digits, '_' and '-'"
    ]


def test_worker_section(tmp_path: Path) -> None:
    text = EXAMPLE.replace('"127.0.0.1:0"', '"0.0.0.0:7000"') + 'worker_id = "w1"\n'
    config = load_mirror_config(write(tmp_path, text))
    assert (config.worker.control_listen, config.worker.worker_id) == ("0.0.0.0:7000", "w1")


def test_inline_tables_and_dotted_keys_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        clusters.us.bootstrap = "127.0.0.1:9092"
        clusters.eu = { bootstrap = "127.0.0.1:9093" }
        flows = [
            { source = "us", target = "eu" },
            { source = "eu", target = "us", groups = ["("] },
        ]
        """,
    )
    (line,) = problems(path)
    assert line.startswith(f"{path}:5: flows[1].groups[0]: bad regex '(': ")


def test_line_of_is_generic() -> None:
    source = TomlSource(
        textwrap.dedent(
            """\
            text = '''
            [[regions]]
            '''
            [regions.us-east]
            brokers = 3
            [[regions.us-east.links]]
            to = "eu"
            [[regions.us-east.links]]
            to = "ap"
            [regions.us-east.links.tls]
            "quoted key" = true
            """
        )
    )
    assert source.line_of(("regions", "us-east", "brokers")) == 5
    assert source.line_of(("regions", "us-east", "links", 1, "to")) == 9
    assert source.line_of(("regions", "us-east", "links", 1, "tls", "quoted key")) == 11
    assert source.line_of(("regions", "us-east", "links", 0, "nope")) == 6
    assert source.line_of(("regions", "us-east", "nope")) == 4
    assert source.line_of(("elsewhere",)) is None
    assert source.line_of(()) is None


def test_format_loc() -> None:
    assert format_loc(("flows", 0, "topics_exclude")) == "flows[0].topics_exclude"
    assert format_loc(("clusters", "us", "bootstrap")) == "clusters.us.bootstrap"
    assert format_loc(("clusters", "a b")) == 'clusters."a b"'


def test_models_are_frozen_and_strict() -> None:
    cluster = ClusterConfig(bootstrap="h:1")
    with pytest.raises(ValueError, match="frozen"):
        cluster.bootstrap = "h:2"
    with pytest.raises(ValueError, match="valid integer"):
        FlowConfig.model_validate({"source": "us", "target": "eu", "offset_lag_max": "5"})


def test_mirror_config_from_python() -> None:
    config = MirrorConfig(
        clusters={"us": ClusterConfig(bootstrap="h:1"), "eu": ClusterConfig(bootstrap="h:2")},
        flows=[FlowConfig(source="us", target="eu")],
    )
    assert config.flow("us:eu").name == "us->eu"
    with pytest.raises(ConfigError, match="in the configuration; flows are: us:eu"):
        config.flow("eu:us")


hosts = st.from_regex(re.compile(r"[a-z][a-z0-9.-]{0,20}"), fullmatch=True)
addresses = st.tuples(hosts, st.integers(1, 65535))


@given(st.lists(addresses, min_size=1, max_size=4))
def test_bootstrap_round_trips(servers: list[tuple[str, int]]) -> None:
    text = ", ".join(f"{host}:{port}" for host, port in servers)
    assert parse_bootstrap(text) == servers
    assert ClusterConfig(bootstrap=text).bootstrap_servers == servers


@given(hosts, st.integers().filter(lambda port: not 1 <= port <= 65535))
def test_bootstrap_rejects_ports_out_of_range(host: str, port: int) -> None:
    with pytest.raises(ValueError):
        parse_bootstrap(f"{host}:{port}")
