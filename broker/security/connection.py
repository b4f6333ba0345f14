"""How a listener secures each connection: the TLS handshake before any Kafka byte (bounded
in time, so a silent or garbage-sending peer costs one task for a few seconds), the
principal a client certificate names, and the SASL policy — a session per connection,
the delay a failed authentication costs, and the sources refused for failing too often.

The connection driver (broker/server.py) asks; nothing here reads or writes Kafka frames.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute, TLSStream

from broker.security.listeners import ClientAuth, SecurityConfig, SecurityProtocol
from broker.security.native_tls import NATIVE_TLS, NativeTLSStream
from broker.security.sasl import Credentials, FailureLimiter, SaslSession
from broker.security.tls import principal_of_certificate, server_context

log = logging.getLogger("regionlink.broker.security")

ANONYMOUS = "User:ANONYMOUS"
TLS_HANDSHAKE_TIMEOUT_S = 10.0
NONCE_BYTES = 24


TRANSPORT_RECEIVE_BYTES = 1 << 20


class DrainingTLSStream(TLSStream):
    """The fallback TLS stream, where NativeTLSStream (broker/security/native_tls.py)
    cannot take the connection over (trio, REGIONLINK_NATIVE_TLS=0).

    anyio's TLSStream, except that `receive` returns everything that can be decrypted
    from what has arrived, in one buffer, rather than one TLS record per call.

    librdkafka writes many small TLS records (a 1 KiB record value often gets its own), and
    one pass through anyio's TLSStream and the connection loop per record cost half the
    plaintext produce throughput; here the records arriving together are read by one loop
    of `SSLObject.read` into one buffer (docs/benchmarks.md, Security). A record the peer
    cannot have encrypted (garbage after the handshake) raises `ssl.SSLError`, as anyio's
    does; the connection driver closes that connection."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        ssl_object, incoming = self._ssl_object, self._read_bio
        while True:
            available = incoming.pending + ssl_object.pending()
            if available:
                data = self._decrypt(ssl_object, min(max_bytes, available))
                await self._flush_write_bio()  # e.g. the answer to a TLS 1.3 KeyUpdate
                if data is None:
                    raise anyio.EndOfStream
                if data:
                    return data  # type: ignore[return-value]  # a bytearray: kept uncopied
            await self._flush_write_bio()
            try:
                received = await self.transport_stream.receive(TRANSPORT_RECEIVE_BYTES)  # type: ignore[call-arg]  # a byte stream
                incoming.write(received)
            except anyio.EndOfStream:
                incoming.write_eof()
                if not incoming.pending and not ssl_object.pending():
                    raise
            except OSError as exc:
                raise anyio.BrokenResourceError from exc

    @staticmethod
    def _decrypt(ssl_object: ssl.SSLObject, size: int) -> bytearray | None:
        """Up to `size` bytes decrypted from what is buffered (b"": a record is still
        incomplete), None at the end of the stream."""
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        try:
            while filled < size:
                count: int = ssl_object.read(size - filled, view[filled:])  # type: ignore[assignment]
                if not count:
                    break
                filled += count
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            if not filled:
                return None
        finally:
            view.release()
        del buffer[filled:]
        return buffer


class HandshakeFailed(Exception):
    """The TLS handshake failed or timed out: close the connection, serve nothing."""


@dataclass
class SaslPolicy:
    """A broker's SASL rules, shared by its SASL listeners; the failure counts are per
    source host, across listeners and connections."""

    mechanisms: tuple[str, ...]
    credentials: Credentials
    limiter: FailureLimiter
    delay_s: float
    clock: Callable[[], float] = time.monotonic
    _blocked: set[str] = field(default_factory=set)

    def session(self) -> SaslSession:
        return SaslSession(self.mechanisms, self.credentials, _nonce)

    def refuses(self, host: str) -> bool:
        """Has `host` failed too often lately? Then its connections are closed unserved."""
        blocked = self.limiter.blocked(host, self.clock())
        if not blocked:
            self._blocked.discard(host)
        return blocked

    async def failed(self, host: str) -> None:
        """Count a failed authentication, then wait Kafka's
        connection.failed.authentication.delay.ms before the caller closes."""
        now = self.clock()
        self.limiter.record_failure(host, now)
        if self.limiter.blocked(host, now) and host not in self._blocked:
            self._blocked.add(host)  # one line per episode, not per connection
            log.warning(
                "%s failed to authenticate %d times within %.0f s: refusing its SASL "
                "connections until then",
                host,
                self.limiter.max_failures,
                self.limiter.window_s,
            )
        await anyio.sleep(self.delay_s)


@dataclass(frozen=True)
class ListenerSecurity:
    """What one listener does to a connection before serving it."""

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    ssl_context: ssl.SSLContext | None = None
    sasl: SaslPolicy | None = None

    async def handshake(self, stream: ByteStream) -> tuple[ByteStream, str | None]:
        """The stream to speak Kafka over and the client certificate's principal (None
        without TLS or without a certificate); HandshakeFailed says why not."""
        if self.ssl_context is None:
            return stream, None
        try:
            with anyio.fail_after(TLS_HANDSHAKE_TIMEOUT_S):
                tls: TLSStream | None = None
                if NATIVE_TLS:
                    tls = await NativeTLSStream.wrap_accepted(
                        stream, self.ssl_context, TLS_HANDSHAKE_TIMEOUT_S
                    )
                if tls is None:  # not anyio's asyncio TCP stream (trio, a test's stream)
                    tls = await DrainingTLSStream.wrap(
                        stream,
                        server_side=True,
                        ssl_context=self.ssl_context,
                        standard_compatible=False,
                    )
        except TimeoutError:
            raise HandshakeFailed(
                f"no TLS handshake within {TLS_HANDSHAKE_TIMEOUT_S:g} s"
            ) from None
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            raise HandshakeFailed(f"TLS handshake failed: {_reason(exc)}") from None
        return tls, principal_of_certificate(tls.extra(TLSAttribute.peer_certificate, None))


def _nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLError):
        return cause.reason or str(cause)
    return str(cause) or type(cause).__name__


def listener_securities(
    config: SecurityConfig, listeners: Iterable[str], credentials: Credentials
) -> dict[str, ListenerSecurity]:
    """Each listener's security, by name; TLS contexts and one SASL policy (with its
    failure counts) shared by all. TlsConfigError if the PEM files cannot be used.

    `ssl.client.auth` applies to SSL listeners; a SASL_SSL listener authenticates with
    SASL and asks for no certificate — Kafka's rule since KIP-684."""
    names = list(listeners)
    protocols = {name: config.protocol_of(name) for name in names}
    contexts: dict[SecurityProtocol, ssl.SSLContext] = {}
    if config.tls is not None:
        for protocol in {p for p in protocols.values() if p.tls}:
            files = config.tls
            if protocol is SecurityProtocol.SASL_SSL:
                files = replace(files, client_auth=ClientAuth.NONE)
            contexts[protocol] = server_context(files)
    policy = SaslPolicy(
        config.sasl_mechanisms,
        credentials,
        FailureLimiter(
            config.max_failed_authentications, config.failed_authentication_window_ms / 1000
        ),
        config.failed_authentication_delay_ms / 1000,
    )
    return {
        name: ListenerSecurity(protocol, contexts.get(protocol), policy if protocol.sasl else None)
        for name, protocol in protocols.items()
    }
