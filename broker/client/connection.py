"""One TCP connection to a Kafka broker: pipelined requests matched by correlation id.

A reader task (in the owning client's task group) receives frames and completes the
waiting request; a request that times out closes the connection, because its response
may still arrive and the byte stream can no longer be trusted (librdkafka does the same).
"""

from __future__ import annotations

import logging
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteStream, TaskGroup
from anyio.streams.tls import TLSStream

from broker.client.security import ClientSecurity, SaslAuthenticationError, authenticate
from broker.frame_receiver import frame_source
from broker.frame_sender import frame_sender
from broker.protocol.codec import RequestHeader, decode_response, encode_request_frame
from broker.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from broker.protocol.versions import ApiKey
from broker.security.native_tls import NATIVE_CLIENT_TLS, NativeTLSStream

log = logging.getLogger(__name__)

_CORRELATION = struct.Struct(">i")


class KafkaConnectionError(Exception):
    """The connection could not be made, broke, or a request on it timed out."""


@dataclass
class Pending:
    api_key: int
    version: int
    done: anyio.Event = field(default_factory=anyio.Event)
    body: Any = None
    error: Exception | None = None


class KafkaConnection:
    """Requests may be issued concurrently; responses come back in order of sending."""

    def __init__(self, stream: ByteStream, address: tuple[str, int], client_id: str) -> None:
        self.address = address
        self._stream = stream
        self._sender = frame_sender(stream)
        self._client_id = client_id
        self._send_lock = anyio.Lock()
        self._pending: dict[int, Pending] = {}
        self._next_correlation = 1
        self._closed_reason: str | None = None
        self.api_versions: dict[int, tuple[int, int]] = {}

    @classmethod
    async def open(
        cls,
        address: tuple[str, int],
        client_id: str,
        task_group: TaskGroup,
        timeout_s: float,
        local_host: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        security: ClientSecurity | None = None,
    ) -> KafkaConnection:
        """Connect (with TLS when `ssl_context` is given: the server's certificate must
        name `host`), negotiate API versions, and authenticate when `security` says SASL
        (a refusal is a KafkaConnectionError, and the connection is closed)."""
        host, port = address
        try:
            with anyio.fail_after(timeout_s):
                stream: ByteStream = await anyio.connect_tcp(host, port, local_host=local_host)
                if ssl_context is not None:
                    stream = await _tls(stream, ssl_context, host, timeout_s)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise KafkaConnectionError(f"cannot connect to {host}:{port}: {exc}") from exc
        connection = cls(stream, address, client_id)
        task_group.start_soon(connection._read_loop)
        await connection._negotiate(timeout_s)
        if security is not None and security.sasl:
            try:
                await authenticate(connection, security, timeout_s)
            except SaslAuthenticationError as exc:
                await connection.aclose(str(exc))
                raise KafkaConnectionError(str(exc)) from exc
        return connection

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def _negotiate(self, timeout_s: float) -> None:
        from broker.protocol.messages import request_builder

        body = request_builder(ApiKey.API_VERSIONS, 0).make("ApiVersionsRequest")
        response = await self.request(ApiKey.API_VERSIONS, 0, body, timeout_s)
        if int(response.error_code) != 0:
            await self.aclose(f"ApiVersions failed with error {int(response.error_code)}")
            raise KafkaConnectionError(f"{self.peer}: ApiVersions error {response.error_code}")
        self.api_versions = {
            int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys
        }

    @property
    def peer(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def version_for(self, api_key: int, client_max: int, client_min: int = 0) -> int:
        """The highest version both sides speak, or KafkaConnectionError if none."""
        low, high = self.api_versions.get(api_key, (0, -1))
        version = min(high, client_max)
        if version < max(low, client_min):
            raise KafkaConnectionError(
                f"{self.peer} serves {ApiKey(api_key).name} v{low}-{high}; "
                f"regionlink needs v{client_min}-{client_max}"
            )
        return version

    async def request(self, api_key: int, version: int, body: Any, timeout_s: float) -> Any:
        """Send one request and wait for its decoded response body."""
        return await self.wait(await self.send(api_key, version, body), timeout_s)

    async def send(self, api_key: int, version: int, body: Any) -> Pending:
        """Write a request without waiting for its response (pipelining); see `wait`."""
        if self._closed_reason is not None:
            raise KafkaConnectionError(f"{self.peer}: connection closed ({self._closed_reason})")
        correlation_id = self._next_correlation
        self._next_correlation = (correlation_id + 1) & 0x7FFFFFFF
        payload = encode_request_frame(
            RequestHeader(api_key, version, correlation_id, self._client_id), body
        )
        pending = self._pending[correlation_id] = Pending(api_key, version)
        try:
            async with self._send_lock:
                await self._sender.send_frame(payload)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            await self.aclose(f"send failed: {exc}")
        return pending

    async def wait(self, pending: Pending, timeout_s: float) -> Any:
        """The response body of a sent request; KafkaConnectionError if it never comes."""
        with anyio.move_on_after(timeout_s):
            await pending.done.wait()
        if not pending.done.is_set():
            await self.aclose(f"{ApiKey(pending.api_key).name} timed out after {timeout_s:g}s")
        if pending.error is not None:
            raise pending.error
        assert pending.body is not None, "a completed request has a body or an error"
        return pending.body

    async def _read_loop(self) -> None:
        frames = frame_source(self._stream, DEFAULT_MAX_FRAME_BYTES)
        try:
            while True:
                self._complete(await frames.receive_frame())
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            await self.aclose("closed by the broker")
        except (OSError, anyio.BrokenResourceError) as exc:
            await self.aclose(f"receive failed: {exc}")
        except Exception as exc:  # a response we cannot decode: the stream is unusable
            log.warning("%s: dropping connection: %s", self.peer, exc)
            await self.aclose(f"bad response: {exc}")

    def _complete(self, payload: bytes | bytearray) -> None:
        (correlation_id,) = _CORRELATION.unpack_from(payload, 0)
        pending = self._pending.pop(correlation_id, None)
        if pending is None:
            raise KafkaConnectionError(f"response for unknown correlation id {correlation_id}")
        try:
            _, pending.body = decode_response(pending.api_key, pending.version, payload)
        except Exception as exc:
            name = ApiKey(pending.api_key).name
            pending.error = KafkaConnectionError(
                f"{self.peer}: cannot decode {name} v{pending.version} response: {exc}"
            )
            raise
        finally:
            pending.done.set()

    async def aclose(self, reason: str = "closed by regionlink") -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
            await self._stream.aclose()
        error = KafkaConnectionError(f"{self.peer}: {reason}")
        for pending in self._pending.values():
            if not pending.done.is_set():
                pending.error = error
                pending.done.set()
        self._pending.clear()


async def _tls(
    stream: ByteStream, ssl_context: ssl.SSLContext, host: str, timeout_s: float
) -> ByteStream:
    """The TLS client side of `stream`: asyncio's record layer where the backend allows
    (broker/security/native_tls.py: frames decrypted straight into their own buffers),
    else anyio's TLSStream."""
    try:
        if NATIVE_CLIENT_TLS:
            native = await NativeTLSStream.wrap_connected(stream, ssl_context, host, timeout_s)
            if native is not None:
                return native
        return await TLSStream.wrap(
            stream, hostname=host, ssl_context=ssl_context, standard_compatible=False
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
