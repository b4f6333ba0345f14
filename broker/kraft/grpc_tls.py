"""Mutual TLS for a region's control plane: controller <-> controller (Raft) and broker ->
controller (registration, heartbeats, metadata, AlterSecurity) gRPC.

Both ends show a certificate from the region's CA and check the other's, so neither an
eavesdropper nor a process without such a certificate can read the metadata (SCRAM
StoredKeys included) or change it. The files are the PEM ones the listeners use
(broker/security/tls.py); gRPC reads them itself, so they are loaded once per channel or
server, as bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True)
class GrpcTls:
    certificate: Path
    key: Path
    ca: Path

    def server_credentials(self) -> grpc.ServerCredentials:
        """Accept only clients whose certificate chains to `ca`."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.certificate.read_bytes())],
            root_certificates=self.ca.read_bytes(),
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Dial a server whose certificate chains to `ca`, showing ours."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.certificate.read_bytes(),
        )


def open_channel(
    address: str, tls: GrpcTls | None, options: Sequence[tuple[str, Any]]
) -> grpc.aio.Channel:
    """A channel to `address`: mutual TLS when `tls` is given, else plaintext."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.channel_credentials(), options=options)
