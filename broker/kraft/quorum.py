"""Parse a controller quorum string, `1@host:9093,2@host:9094,3@host:9095`.

Shared by `regionlink controller --quorum` and the broker's `--controllers`, so both sides
accept and reject exactly the same text with the same one-line reasons.
"""

from __future__ import annotations


class QuorumError(ValueError):
    """The quorum text is malformed; the message says which part and why, in one line."""


def parse_quorum(text: str) -> dict[int, tuple[str, int]]:
    """{node id: (host, port)} from `ID@HOST:PORT` items separated by commas."""
    quorum: dict[int, tuple[str, int]] = {}
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise QuorumError(f"expected ID@HOST:PORT[,ID@HOST:PORT...], got {text!r}")
    for item in items:
        node, at, address = item.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not host or not node.isdigit() or not port.isdigit():
            raise QuorumError(f"expected ID@HOST:PORT, got {item!r} in {text!r}")
        node_id, port_number = int(node), int(port)
        if not 0 < port_number < 65536:
            raise QuorumError(f"port {port_number} of {item!r} is outside 1-65535")
        if node_id in quorum:
            raise QuorumError(f"node id {node_id} appears twice in {text!r}")
        quorum[node_id] = (host.strip("[]"), port_number)
    return quorum
