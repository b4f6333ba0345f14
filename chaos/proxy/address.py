"""HOST:PORT as Toxiproxy writes addresses (Go's net.JoinHostPort: IPv6 in brackets)."""

from __future__ import annotations


def parse_address(text: str) -> tuple[str, int]:
    """`"127.0.0.1:0"` → `("127.0.0.1", 0)`; `"[::1]:80"` → `("::1", 80)`; `":80"` → `("", 80)`.

    An empty host means every interface, as in Go. Raises ValueError for anything else.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 host needs brackets, as in [::1]:{port}; got {text!r}")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is outside 0-65535")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
