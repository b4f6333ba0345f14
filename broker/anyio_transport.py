"""The asyncio transport and protocol under anyio's asyncio TCP stream.

anyio offers neither recv_into nor writelines, nor a way to hand a connection to asyncio's
own TLS layer; broker/frame_receiver.py, broker/frame_sender.py and
broker/security/native_tls.py need all three, so they reach the transport and protocol anyio
keeps in private attributes (`_transport`, `_protocol`, stable across anyio 4). This is the
one place that does, and says which streams qualify.
"""

from __future__ import annotations

import asyncio

from anyio.abc import ByteStream


def tcp_parts(
    stream: ByteStream, *, tls: bool = False
) -> tuple[asyncio.Transport, asyncio.Protocol] | None:
    """(transport, protocol) of an open anyio asyncio TCP stream — plaintext unless `tls`
    (a stream whose transport is asyncio's own TLS transport) — else None (trio, anyio's
    TLSStream, a closing connection, anything else)."""
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if (
        not isinstance(transport, asyncio.Transport)
        or not isinstance(protocol, asyncio.Protocol)
        or (transport.get_extra_info("sslcontext") is not None and not tls)
        or transport.get_extra_info("socket") is None
        or transport.is_closing()
    ):
        return None
    return transport, protocol
