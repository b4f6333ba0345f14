"""The workload's view of `regionlink endpoint --json`."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.endpoint import Endpoint, read_endpoint


def test_the_endpoint_json_gives_the_region_bootstrap_and_topic_names() -> None:
    endpoint = Endpoint.from_json(
        {
            "region": "eu-west",
            "primary": "eu-west",
            "client": {"bootstrap.servers": "127.0.0.1:9093"},
            "topics": {"orders": "us-east.orders"},
        }
    )
    assert (endpoint.region, endpoint.bootstrap) == ("eu-west", "127.0.0.1:9093")
    assert endpoint.topic("orders") == "us-east.orders"
    assert endpoint.topic("payments") == "payments", "a topic not listed keeps its name"


def test_reading_the_endpoint_without_a_running_topology_says_why(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no topology runs"):
        read_endpoint(tmp_path)
