"""Mutual TLS on the controllers' gRPC: a controller started with a certificate, key and CA
serves only clients that show a certificate from that CA — a broker's controller client with
one registers; one dialling in plaintext, or with a certificate from another CA, gets no
answer (the call times out as with an unreachable quorum). Real gRPC over loopback."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from broker.kraft.controller.config import ControllerConfig
from broker.kraft.controller.process import serve
from broker.kraft.controller_client import ControllerClient, ControllerError
from broker.kraft.grpc_tls import GrpcTls
from broker.ports import free_port
from mirror.runtime.pki import ensure_ca, ensure_leaf

pytestmark = pytest.mark.integration


def _tls(root: Path, name: str, ca_dir: str = "ca") -> GrpcTls:
    ca = ensure_ca(root / ca_dir)
    leaf = ensure_leaf(ca, root / ca_dir / "certs", name)
    return GrpcTls(leaf.cert, leaf.key, ca.cert)


async def _register(quorum: dict[int, tuple[str, int]], tls: GrpcTls | None) -> str:
    client = ControllerClient(quorum, timeout_s=2.0, tls=tls)
    try:
        epoch = await client.register_broker(1, "incarnation-1", "127.0.0.1", 9092)
        return f"registered, epoch {epoch}"
    except ControllerError as exc:
        return f"refused: {exc}"
    finally:
        await client.aclose()


def test_controller_grpc_is_mutual_tls(tmp_path: Path) -> None:
    server_tls = _tls(tmp_path, "controller")
    port = free_port()
    quorum = {1: ("127.0.0.1", port)}
    config = ControllerConfig(1, tmp_path / "controller", "127.0.0.1", port, quorum, tls=server_tls)

    async def main() -> list[str]:
        with anyio.fail_after(60):
            return await scenario()

    async def scenario() -> list[str]:
        async with anyio.create_task_group() as tg:
            await tg.start(serve, config)
            outcomes = [
                await _register(quorum, _tls(tmp_path, "broker")),
                await _register(quorum, None),
                await _register(quorum, _tls(tmp_path, "broker", ca_dir="other-ca")),
            ]
            tg.cancel_scope.cancel()
        return outcomes

    registered, plaintext, stranger = anyio.run(main)
    assert registered.startswith("registered"), registered
    assert plaintext.startswith("refused") and "UNAVAILABLE" in plaintext, plaintext
    assert stranger.startswith("refused") and "UNAVAILABLE" in stranger, stranger
