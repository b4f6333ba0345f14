"""A tiny synchronous Kafka client over our codec, for byte-exact protocol tests."""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

from broker.protocol.codec import RequestHeader, decode_response, encode_request
from broker.protocol.framing import frame
from broker.protocol.messages import request_builder
from broker.protocol.versions import ApiKey


class RawClient:
    def __init__(
        self,
        bootstrap: str,
        timeout_s: float = 10.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        source_host: str | None = None,
    ) -> None:
        """`ssl_context`: speak TLS (server name: the bootstrap host); `source_host`: the
        local address to connect from (e.g. another loopback address)."""
        host, port = bootstrap.rsplit(":", 1)
        source = (source_host, 0) if source_host else None
        sock = socket.create_connection((host, int(port)), timeout_s, source)
        self.sock = (
            sock if ssl_context is None else ssl_context.wrap_socket(sock, server_hostname=host)
        )
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def receive_frame(self) -> bytes | None:
        """One response frame, or None if the broker closed the connection."""
        size_bytes = self._read_exactly(4)
        if size_bytes is None:
            return None
        (size,) = struct.unpack(">i", size_bytes)
        return self._read_exactly(size)

    def _read_exactly(self, count: int) -> bytes | None:
        chunks = b""
        while len(chunks) < count:
            try:
                chunk = self.sock.recv(count - len(chunks))
            except ConnectionResetError:  # closed with our request unread: a reset, not a FIN
                return None
            if not chunk:
                return None
            chunks += chunk
        return chunks

    def request(self, api_key: int, version: int, class_name: str, **fields: Any) -> Any:
        body = request_builder(api_key, version).make(class_name, **fields)
        self._correlation += 1
        header = RequestHeader(api_key, version, self._correlation, "rawclient")
        self.send_raw(frame(encode_request(header, body)))
        payload = self.receive_frame()
        assert payload is not None, "broker closed the connection"
        correlation_id, response = decode_response(api_key, version, payload)
        assert correlation_id == self._correlation
        return response

    def build(self, api_key: int, version: int, class_name: str, **fields: Any) -> Any:
        return request_builder(api_key, version).make(class_name, **fields)

    def produce(self, topic: str, batch: bytes, partition: int = 0, acks: int = -1) -> Any:
        """Produce v8 of raw batch bytes; returns the partition's response."""
        data = self.build(ApiKey.PRODUCE, 8, "PartitionProduceData", index=partition, records=batch)
        topic_data = self.build(
            ApiKey.PRODUCE, 8, "TopicProduceData", name=topic, partition_data=(data,)
        )
        response = self.request(
            ApiKey.PRODUCE,
            8,
            "ProduceRequest",
            acks=acks,
            timeout=5000,
            transactional_id=None,
            topic_data=(topic_data,),
        )
        return response.responses[0].partition_responses[0]
