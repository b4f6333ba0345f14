"""Listener security settings (Kafka's names) and the TLS handshake a listener does first:
real handshakes over loopback, in one event loop."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream

from broker.security.connection import (
    HandshakeFailed,
    ListenerSecurity,
    SaslPolicy,
    listener_securities,
)
from broker.security.listeners import (
    ClientAuth,
    SecurityConfig,
    SecurityProtocol,
    TlsFiles,
    parse_mechanisms,
    parse_protocol_map,
)
from broker.security.sasl import FailureLimiter
from broker.security.tls import TlsConfigError, client_context, server_context
from mirror.runtime.pki import CertificateFiles, ensure_ca, ensure_leaf


def test_the_protocol_map_reads_kafkas_syntax_and_names_compare_case_insensitively() -> None:
    mapping = parse_protocol_map("CLIENT:SASL_SSL, wan:ssl")
    config = SecurityConfig(protocol_map=mapping)
    assert config.protocol_of("client") is SecurityProtocol.SASL_SSL
    assert config.protocol_of("WAN") is SecurityProtocol.SSL
    assert config.protocol_of("replication") is SecurityProtocol.PLAINTEXT  # not mapped
    assert config.protocol_of("sasl_plaintext") is SecurityProtocol.SASL_PLAINTEXT  # by name
    for bad in ("CLIENT", "CLIENT:TLS", ":SSL", "A:SSL,a:PLAINTEXT"):
        with pytest.raises(ValueError):
            parse_protocol_map(bad)


def test_mechanisms_are_kafkas_names() -> None:
    assert parse_mechanisms("scram-sha-512, PLAIN") == ("SCRAM-SHA-512", "PLAIN")
    for bad in ("GSSAPI", "", "OAUTHBEARER,PLAIN"):
        with pytest.raises(ValueError):
            parse_mechanisms(bad)


def _files(tmp_path: Path, client_auth: ClientAuth = ClientAuth.NONE) -> TlsFiles:
    ca = ensure_ca(tmp_path)
    leaf = ensure_leaf(ca, tmp_path, "broker-1")
    return TlsFiles(leaf.cert, leaf.key, ca.cert, client_auth)


def test_settings_are_checked_against_the_listeners(tmp_path: Path) -> None:
    names = ("client", "replication")
    ok = SecurityConfig(parse_protocol_map("CLIENT:SASL_SSL"), _files(tmp_path))
    ok.check(names, "client", clustered=False)
    with pytest.raises(ValueError, match="not listeners"):
        SecurityConfig(parse_protocol_map("WAN:SSL")).check(names, "client", clustered=False)
    with pytest.raises(ValueError, match="certificate"):
        SecurityConfig(parse_protocol_map("CLIENT:SSL")).check(names, "client", clustered=False)
    no_ca = TlsFiles(Path("c.pem"), Path("k.pem"), None, ClientAuth.REQUIRED)
    with pytest.raises(ValueError, match="CA"):
        SecurityConfig(tls=no_ca).check(names, "client", clustered=False)
    # replicas do not speak SASL: a region needs another listener for them
    with pytest.raises(ValueError, match=r"inter\.broker\.listener\.name"):
        ok.check(names, "client", clustered=True)
    SecurityConfig(
        parse_protocol_map("CLIENT:SASL_SSL,REPLICATION:SSL"),
        _files(tmp_path),
        inter_broker_listener="replication",
    ).check(names, "client", clustered=True)


def test_unusable_pem_files_are_named(tmp_path: Path) -> None:
    files = _files(tmp_path)
    with pytest.raises(TlsConfigError, match=r"missing\.pem"):
        server_context(TlsFiles(tmp_path / "missing.pem", files.key))
    other = ensure_leaf(ensure_ca(tmp_path / "other"), tmp_path / "other", "x")
    with pytest.raises(TlsConfigError, match="with key"):  # a key that is not the cert's
        server_context(TlsFiles(files.certificate, other.key))


def test_listeners_share_tls_contexts_and_one_sasl_policy(tmp_path: Path) -> None:
    config = SecurityConfig(
        parse_protocol_map("CLIENT:SASL_SSL,WAN:SSL,LOCAL:SASL_PLAINTEXT,MTLS:SSL"),
        _files(tmp_path, ClientAuth.REQUIRED),
    )
    names = ["client", "wan", "local", "plain", "mtls"]
    by_name = listener_securities(config, names, lambda m, u: None)
    assert by_name["wan"].ssl_context is by_name["mtls"].ssl_context is not None
    assert by_name["wan"].ssl_context.verify_mode == ssl.CERT_REQUIRED
    # KIP-684: ssl.client.auth is for SSL listeners; SASL_SSL authenticates with SASL
    sasl_ssl = by_name["client"].ssl_context
    assert sasl_ssl is not None and sasl_ssl.verify_mode == ssl.CERT_NONE
    assert by_name["client"].sasl is by_name["local"].sasl is not None
    assert by_name["wan"].sasl is None and by_name["local"].ssl_context is None
    assert by_name["plain"] == ListenerSecurity()


async def _handshake(
    security: ListenerSecurity, dial: ssl.SSLContext | None, send: bytes = b""
) -> str | HandshakeFailed | None:
    """Accept one loopback connection through `security`; dial it with `dial` (TLS) or
    as plain TCP sending `send`. The principal the listener found, or why it refused."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    outcome: list[str | HandshakeFailed | None] = []

    async def accept(stream: SocketStream) -> None:
        try:
            secured, principal = await security.handshake(stream)
            outcome.append(principal)
            await secured.send(b"x")
        except HandshakeFailed as exc:
            outcome.append(exc)
        await stream.aclose()

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, accept)
        with anyio.fail_after(5):
            try:
                if dial is None:
                    plain = await anyio.connect_tcp("127.0.0.1", port)
                    await plain.send(send)
                    await plain.send_eof()
                    await plain.receive()
                else:
                    tls = await anyio.connect_tcp(
                        "127.0.0.1", port, ssl_context=dial, tls_standard_compatible=False
                    )
                    await tls.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                pass
            while not outcome:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    return outcome[0]


def _dial(ca: CertificateFiles, client: CertificateFiles | None = None) -> ssl.SSLContext:
    return client_context(ca.cert, client.cert if client else None, client.key if client else None)


def test_a_client_certificate_names_the_principal_and_required_refuses_strangers(
    tmp_path: Path,
) -> None:
    ca = ensure_ca(tmp_path)
    server = ensure_leaf(ca, tmp_path, "broker-1")
    worker = ensure_leaf(ca, tmp_path, "worker")
    stranger_ca = ensure_ca(tmp_path / "stranger")
    stranger = ensure_leaf(stranger_ca, tmp_path / "stranger", "worker")
    required = ListenerSecurity(
        SecurityProtocol.SSL,
        server_context(TlsFiles(server.cert, server.key, ca.cert, ClientAuth.REQUIRED)),
    )
    requested = ListenerSecurity(
        SecurityProtocol.SSL,
        server_context(TlsFiles(server.cert, server.key, ca.cert, ClientAuth.REQUESTED)),
    )
    assert anyio.run(_handshake, required, _dial(ca, worker)) == "User:CN=worker,O=regionlink"
    assert isinstance(anyio.run(_handshake, required, _dial(ca)), HandshakeFailed)
    assert isinstance(anyio.run(_handshake, required, _dial(ca, stranger)), HandshakeFailed)
    assert anyio.run(_handshake, requested, _dial(ca)) is None  # anonymous, still served


def test_plaintext_and_garbage_on_a_tls_listener_are_refused(tmp_path: Path) -> None:
    security = ListenerSecurity(SecurityProtocol.SSL, server_context(_files(tmp_path)))
    api_versions = bytes.fromhex("0000001e00120003000000010007726466616b6100")
    for sent in (api_versions, b"\x16\x03\x01\x00\x05garbage-garbage", b""):
        outcome = anyio.run(_handshake, security, None, sent)
        assert isinstance(outcome, HandshakeFailed), (sent, outcome)


def test_a_source_failing_too_often_is_refused_until_its_window_passes() -> None:
    now = [0.0]
    policy = SaslPolicy(("PLAIN",), lambda m, u: None, FailureLimiter(2, 10.0), 0.0, lambda: now[0])

    async def fail_twice() -> None:
        await policy.failed("10.0.0.1")
        assert not policy.refuses("10.0.0.1")
        await policy.failed("10.0.0.1")

    anyio.run(fail_twice)
    assert policy.refuses("10.0.0.1") and not policy.refuses("10.0.0.2")
    now[0] = 10.5
    assert not policy.refuses("10.0.0.1")


def test_a_receive_returns_every_record_that_arrived_and_refuses_forged_ones(
    tmp_path: Path,
) -> None:
    """Small TLS records (librdkafka writes many) come back together, not one per call; a
    record that does not decrypt raises ssl.SSLError; the peer's close is EndOfStream."""
    files = _files(tmp_path)
    security = ListenerSecurity(SecurityProtocol.SSL, server_context(files))
    dial = client_context(files.ca or files.certificate)
    seen: list[object] = []

    async def main() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def accept(stream: SocketStream) -> None:
            secured, _ = await security.handshake(stream)
            await secured.send(b"ready")
            await anyio.sleep(0.2)  # let all the small records arrive
            seen.append(len(await secured.receive(1 << 20)))
            await secured.send(b"next")
            for _ in range(3):
                try:
                    seen.append(len(await secured.receive(1 << 20)))
                except (ssl.SSLError, anyio.EndOfStream) as exc:
                    seen.append(type(exc))
                    break

        async with listener, anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, accept)
            with anyio.fail_after(5):
                tls = await anyio.connect_tcp(
                    "127.0.0.1", port, ssl_context=dial, tls_standard_compatible=False
                )
                assert await tls.receive() == b"ready"
                for _ in range(50):
                    await tls.send(b"r" * 100)  # 50 TLS records
                assert await tls.receive() == b"next"
                forged = b"\x17\x03\x03\x00\x20" + bytes(32)  # application data, bad tag
                await tls.transport_stream.send(forged)  # type: ignore[attr-defined]
                while len(seen) < 2:
                    await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()

    anyio.run(main)
    assert seen == [5000, ssl.SSLError]


FRAMES = [b"a" * 10, b"", b"b" * (3 << 20), b"c" * 70_000, b"d" * 5]


async def _frames_over_tls(tmp_path: Path, chunk: int) -> tuple[list[bytes], type, type, bytes]:
    """Framed payloads sent over TLS in `chunk`-byte writes (a TLS record each, as
    librdkafka writes), received through the listener's handshake and frame_source; the
    frames, the TLS stream's and the receiver's types, and a response sent back."""
    from broker.frame_receiver import frame_source
    from broker.protocol.framing import frame

    files = _files(tmp_path)
    security = ListenerSecurity(SecurityProtocol.SSL, server_context(files))
    dial = client_context(files.ca or files.certificate)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    received: list[bytes] = []
    types: list[type] = []

    async def accept(stream: SocketStream) -> None:
        secured, _ = await security.handshake(stream)
        frames = frame_source(secured, 8 << 20)
        types.extend((type(secured), type(frames)))
        try:
            while True:
                received.append(bytes(await frames.receive_frame()))
                await secured.send(b"ack-%d;" % len(received))
        except anyio.EndOfStream:
            pass

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, accept)
        with anyio.fail_after(20):
            tls = await anyio.connect_tcp(
                "127.0.0.1", port, ssl_context=dial, tls_standard_compatible=False
            )
            data = b"".join(frame(p) for p in FRAMES)
            for start in range(0, len(data), chunk):
                await tls.send(data[start : start + chunk])
            acks = b""
            while acks.count(b";") < len(FRAMES):
                acks += await tls.receive()
            await tls.aclose()
            while len(received) < len(FRAMES):
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    return received, types[0], types[1], acks


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("native", [True, False])
async def test_frames_over_tls_from_small_and_large_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str, native: bool
) -> None:
    """On asyncio a TLS listener's records are run by asyncio's SSLProtocol and frames are
    decrypted straight into their buffers (FrameProtocol); with REGIONLINK_NATIVE_TLS=0, or
    on trio, anyio's TLSStream and StreamFrames. Every frame arrives either way."""
    from broker.frame_receiver import FrameProtocol, StreamFrames
    from broker.security import connection
    from broker.security.connection import DrainingTLSStream
    from broker.security.native_tls import NativeTLSStream

    monkeypatch.setattr(connection, "NATIVE_TLS", native)
    for chunk in (1000, 1 << 20):
        received, stream_type, receiver_type, acks = await _frames_over_tls(tmp_path, chunk)
        assert received == FRAMES
        assert acks == b"".join(b"ack-%d;" % n for n in range(1, len(FRAMES) + 1))
        if native and anyio_backend == "asyncio":
            assert (stream_type, receiver_type) == (NativeTLSStream, FrameProtocol)
        else:
            assert (stream_type, receiver_type) == (DrainingTLSStream, StreamFrames)
