"""Pick listening ports for processes started later (tests, benchmarks, `regionlink up`)."""

from __future__ import annotations

import random
import socket

# Below Linux's ephemeral range (32768-60999): a port picked here cannot be taken meanwhile
# as the source port of some outgoing connection (gRPC and Kafka clients make many).
_LOW, _HIGH = 20_000, 32_000
_ATTEMPTS = 200


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago, outside the ephemeral range."""
    for _ in range(_ATTEMPTS):
        port = random.randrange(_LOW, _HIGH)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} in {_LOW}-{_HIGH} after {_ATTEMPTS} tries")
