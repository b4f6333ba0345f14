"""The tracing environment of the processes a topology runs, from its `[tracing]` table.

Every process configures tracing from its environment (broker/telemetry.py), so the
supervisor passes its own environment on — `OTEL_*` included, so an operator's collector
gets every process's spans unchanged — and adds, per child: the span store
(`<state dir>/spans.db` with the table's bounds), the sampler when the table sets a ratio,
and `regionlink.region=<region>` among the resource attributes, which the span store and
the dashboard use to show each hop's region. The demo's and drills' clients apply the same
variables to themselves, so their spans land in the same store under the same bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from broker.spanstore import SPANS_FILE
from broker.telemetry import (
    REGION_ATTRIBUTE,
    SPAN_STORE_ENV,
    SPAN_STORE_MAX_AGE_H_ENV,
    SPAN_STORE_MAX_MB_ENV,
)
from mirror.runtime.topology import TracingConfig

RESOURCE_ATTRIBUTES_ENV = "OTEL_RESOURCE_ATTRIBUTES"


def span_store_path(state_dir: Path) -> Path:
    return state_dir / SPANS_FILE


def tracing_environment(
    tracing: TracingConfig, state_dir: Path, base: Mapping[str, str]
) -> dict[str, str]:
    """`base` with the span store and sampler `tracing` asks for (region-independent)."""
    env = dict(base)
    for name in (SPAN_STORE_ENV, SPAN_STORE_MAX_MB_ENV, SPAN_STORE_MAX_AGE_H_ENV):
        env.pop(name, None)  # the topology decides where its spans are kept
    if tracing.store:
        env[SPAN_STORE_ENV] = str(span_store_path(state_dir).resolve())
        env[SPAN_STORE_MAX_MB_ENV] = f"{tracing.max_mb:g}"
        env[SPAN_STORE_MAX_AGE_H_ENV] = f"{tracing.max_age_h:g}"
    if tracing.sample_ratio is not None:
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = f"{tracing.sample_ratio:g}"
    return env


def child_environment(
    tracing: TracingConfig, state_dir: Path, region: str, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a child process running in `region` ("" for none)."""
    env = tracing_environment(tracing, state_dir, base)
    if region:
        ours = f"{REGION_ATTRIBUTE}={region}"
        theirs = env.get(RESOURCE_ATTRIBUTES_ENV, "").strip(",")
        env[RESOURCE_ATTRIBUTES_ENV] = f"{theirs},{ours}" if theirs else ours
    return env
