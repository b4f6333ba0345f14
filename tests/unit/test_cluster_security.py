"""A cluster's TLS/SASL settings in the mirror config: librdkafka's names (quoted or dotted
TOML keys), the password only by file or environment variable, problems by line, and the
worker file the runtime writes keeping them (but never the password)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from broker.client.security import ClientSecurity
from mirror.config import load_mirror_config
from mirror.errors import ConfigError
from mirror.runtime.worker_files import flow_toml

FLOW = '[[flows]]\nsource = "us"\ntarget = "eu"\n'
EU = '[clusters.eu]\nbootstrap = "127.0.0.1:9093"\n'


def _load(tmp_path: Path, us: str) -> Path:
    path = tmp_path / "mirror.toml"
    body = '[clusters.us]\nbootstrap = "127.0.0.1:9092"\n' + textwrap.dedent(us)
    path.write_text(body + EU + FLOW)
    return path


def _problems(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_mirror_config(path)
    return str(info.value)


def test_dotted_and_quoted_keys_give_the_client_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    path = _load(
        tmp_path,
        f"""\
        security.protocol = "SASL_SSL"
        "sasl.mechanism" = "SCRAM-SHA-512"
        sasl.username = "worker"
        sasl.password.file = "{tmp_path / "pw"}"
        ssl.ca.location = "/etc/ca.pem"
        """,
    )
    cluster = load_mirror_config(path).clusters["us"]
    security = cluster.client_security()
    assert security == ClientSecurity(
        "SASL_SSL", "SCRAM-SHA-512", "worker", "s3cret", ca=Path("/etc/ca.pem")
    )
    assert "s3cret" not in repr(security) and "s3cret" not in repr(cluster)
    assert security.librdkafka()["sasl.password"] == "s3cret"

    env_path = _load(
        tmp_path,
        """\
        security.protocol = "SASL_PLAINTEXT"
        sasl.mechanism = "PLAIN"
        sasl.username = "worker"
        sasl.password.env = "RL_TEST_PW"
        """,
    )
    env_cluster = load_mirror_config(env_path).clusters["us"]
    monkeypatch.delenv("RL_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="RL_TEST_PW is not set"):
        env_cluster.client_security()
    monkeypatch.setenv("RL_TEST_PW", "from-env")
    assert env_cluster.client_security().password == "from-env"


def test_a_password_in_the_file_is_refused_by_line(tmp_path: Path) -> None:
    path = _load(tmp_path, 'security.protocol = "SASL_SSL"\n"sasl.password" = "oops"\n')
    report = _problems(path)
    assert f'{path}:4: clusters.us."sasl.password": write the password in a file' in report
    assert "oops" not in report


def test_sasl_needs_mechanism_user_and_one_password_source(tmp_path: Path) -> None:
    report = _problems(_load(tmp_path, 'security.protocol = "SASL_SSL"\n'))
    for key in ("sasl.mechanism", "sasl.username", "sasl.password.file"):
        assert f'clusters.us."{key}"' in report, report
    report = _problems(_load(tmp_path, 'security.protocol = "TLS"\n'))
    assert "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'" in report


def test_worker_file_round_trips_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret")
    path = _load(
        tmp_path,
        f"""\
        "security.protocol" = "SASL_SSL"
        "sasl.mechanism" = "SCRAM-SHA-256"
        "sasl.username" = "worker"
        "sasl.password.file" = "{tmp_path / "pw"}"
        """,
    )
    config = load_mirror_config(path)
    written = tmp_path / "flow.toml"
    written.write_text(flow_toml(config, config.flows[0]))
    assert "s3cret" not in written.read_text()
    assert load_mirror_config(written).clusters == config.clusters
