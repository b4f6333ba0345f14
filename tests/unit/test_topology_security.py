"""The topology's `[security]` switch: validation by line, the files `ensure` makes (0600,
kept), and the broker and worker settings it gives."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from rich.console import Console

from mirror.cli.topology import render_topology
from mirror.config import FlowConfig
from mirror.errors import ConfigError
from mirror.runtime.secure import TopologySecurity, topology_users, worker_user
from mirror.runtime.topology import SecurityConfig, load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
BASE = """\
name = "t"
[regions.us]
[regions.eu]
[[flows]]
source = "us"
target = "eu"
[failover]
primary = "us"
standby = "eu"
"""


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    return str(info.value)


def test_switch_is_validated_by_line(tmp_path: Path) -> None:
    report = _load(tmp_path, BASE + '[security]\nsasl = "SCRAM-SHA-512"\n')
    assert ":11: security.sasl: sasl needs tls = true" in report
    report = _load(tmp_path, BASE + '[security]\ntls = true\nsasl = "PLAIN"\n')
    assert "security.sasl: input should be 'SCRAM-SHA-256' or 'SCRAM-SHA-512'" in report
    external = BASE.replace("[regions.eu]", '[regions.eu]\nbootstrap = "10.0.0.1:9092"')
    report = _load(tmp_path, external + "[security]\ntls = true\n")
    assert "regions.eu.bootstrap: [security] secures regions regionlink runs" in report
    path = tmp_path / "ok.toml"
    lease = BASE.replace('standby = "eu"', 'standby = "eu"\nlease_s = 5')  # probed over TLS
    path.write_text(lease + '[security]\ntls = true\nsasl = "SCRAM-SHA-512"\n')
    assert load_topology(path).security.protocol == "SASL_SSL"


def test_ensure_makes_private_files_once_and_settings_use_them(tmp_path: Path) -> None:
    security = TopologySecurity(tmp_path, SecurityConfig(tls=True, sasl="SCRAM-SHA-256"))
    flow = FlowConfig(source="us", target="eu")
    users = ["admin", worker_user(flow)]
    security.ensure(users)
    files = [p for p in security.root.rglob("*") if p.is_file()]
    assert len(files) == 4 + 2 + 2  # CA, two certificates, two passwords
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    password = security.password("worker-us-eu")
    security.ensure(users)
    assert security.password("worker-us-eu") == password  # kept across restarts

    args = security.broker_args(4242, ("--listener", "from-eu=127.0.0.1:1,127.0.0.1:2"))
    mapping = args[args.index("--listener-security-protocol-map") + 1]
    assert mapping == "CLIENT:SASL_SSL,INTERNAL:SSL,from-eu:SASL_SSL"
    assert args[args.index("--inter-broker-listener-name") + 1] == "INTERNAL"
    assert args[args.index("--sasl-enabled-mechanisms") + 1] == "SCRAM-SHA-256"
    # With SASL the authorizer is on; the topology's own principals are super users.
    assert args[-3:] == (
        "--authorizer",
        "--super-users",
        "User:CN=broker,O=regionlink;User:CN=admin,O=regionlink;User:admin",
    )
    with_users = security.broker_args(4242, (), users=users)
    assert with_users[-1].endswith(";User:admin;User:worker-us-eu")
    clustered = security.broker_args(4242, (), clustered=True)
    assert clustered[-1] == "--controller-tls"  # with its --ssl-* files, to the controllers
    assert security.controller_args() == (
        "--ssl-certificate", str(security.certificate("broker").cert),
        "--ssl-key", str(security.certificate("broker").key),
        "--ssl-ca", str(security.ca.cert),
    )  # fmt: skip

    settings = security.cluster_settings("worker-us-eu")
    assert settings["sasl_password_file"] == str(security.password_file("worker-us-eu"))
    assert password not in str(settings)
    client = security.client()
    assert (client.protocol, client.username, client.ca) == ("SASL_SSL", "admin", security.ca.cert)


def test_tls_only_has_no_users(tmp_path: Path) -> None:
    security = TopologySecurity(tmp_path, SecurityConfig(tls=True))
    security.ensure(["admin"])
    assert not (security.root / "users").exists()
    assert security.client().protocol == "SSL" and security.client().password is None
    assert "--sasl-enabled-mechanisms" not in security.broker_args(1, ())
    assert "--authorizer" not in security.broker_args(1, ())  # no identities to authorize
    path = tmp_path / "t.toml"
    path.write_text(BASE)
    users = ["admin", "worker-eu-us", "worker-us-eu"]  # a failover runs the reverse flow
    assert topology_users(load_topology(path)) == users


def test_show_draws_the_switch() -> None:
    console = Console(width=120, record=True)
    console.print(render_topology(load_topology(TOPOLOGIES / "two-regions-secure.toml")))
    text = console.export_text()
    assert "security" in text and "listeners: SASL_SSL (SCRAM-SHA-512)" in text
    console = Console(width=120, record=True)
    console.print(render_topology(load_topology(TOPOLOGIES / "two-regions.toml")))
    assert "security" not in console.export_text()
