"""What `regionlink up` tells each process about tracing: `[tracing]` in the topology file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.errors import ConfigError
from mirror.runtime.topology import TracingConfig, load_topology
from mirror.runtime.tracing_env import child_environment, tracing_environment

TOPOLOGY = """\
name = "t"
[regions.us-east]
brokers = 1
"""


def test_by_default_every_process_keeps_its_spans_in_the_state_dir(tmp_path: Path) -> None:
    env = child_environment(TracingConfig(), tmp_path, "us-east", {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "REGIONLINK_SPAN_STORE": str(tmp_path.resolve() / "spans.db"),
        "REGIONLINK_SPAN_STORE_MAX_MB": "256",
        "REGIONLINK_SPAN_STORE_MAX_AGE_H": "24",
        "OTEL_RESOURCE_ATTRIBUTES": "regionlink.region=us-east",
    }


def test_the_operators_otel_settings_pass_through_and_the_table_adds_to_them(
    tmp_path: Path,
) -> None:
    base = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging",
        "OTEL_TRACES_SAMPLER": "always_on",
        "REGIONLINK_SPAN_STORE": "/elsewhere.db",
    }
    tracing = TracingConfig(store=False, sample_ratio=0.01)
    env = child_environment(tracing, tmp_path, "eu-west", base)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "deployment.environment=staging,regionlink.region=eu-west"
    )
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == (
        "parentbased_traceidratio",
        "0.01",
    )
    assert "REGIONLINK_SPAN_STORE" not in env  # store = false: no store, even an inherited one
    assert "OTEL_RESOURCE_ATTRIBUTES" not in tracing_environment(tracing, tmp_path, {})


def test_the_tracing_table_is_checked_by_line(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(TOPOLOGY + "[tracing]\nsample_ratio = 2\nmax_mb = 0.5\nstor = true\n")
    with pytest.raises(ConfigError) as raised:
        load_topology(path)
    problems = str(raised.value)
    assert f"{path}:5: tracing.sample_ratio: " in problems
    assert f"{path}:7: tracing.stor: unknown key 'stor' (did you mean 'store'?)" in problems
    path.write_text(TOPOLOGY + "[tracing]\nsample_ratio = 0.25\nmax_mb = 0.5\nmax_age_h = 2\n")
    tracing = load_topology(path).tracing
    assert (tracing.store, tracing.sample_ratio, tracing.max_mb, tracing.max_age_h) == (
        True, 0.25, 0.5, 2.0,
    )  # fmt: skip
