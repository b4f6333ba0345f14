"""Packet drops between brokers of one region, as nftables rules (root, Linux): a test tool.

Drills fault the links between regions through the fault proxy (chaos/proxy), the one
fault interface an operator uses. A follower cut off from its leader inside a region has no
proxy in between (brokers reach each other directly, as in Kafka), so the replication test
that needs that fault drops packets in the kernel instead; it is not a drill step, since
it needs root and a distinct loopback address per broker.

Each `LinkCuts` owns one nftables table named after it, so its rules never touch anyone
else's and `heal()` removes every one of them at once. A cut drops packets in both
directions between a source address and a destination address and port: connections in
flight stall as on a real partition (no reset), new ones time out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import TracebackType

NFT_TIMEOUT_S = 10.0


class NetfilterError(RuntimeError):
    """nftables is missing, we are not root, or a rule was refused."""


class LinkCuts:
    """`with LinkCuts("drill") as cuts: cuts.cut("127.0.1.3", "127.0.1.1", 9092)`."""

    def __init__(self, name: str) -> None:
        assert name.isidentifier(), "nftables table names are identifiers"
        self.table = f"regionlink_{name}_{os.getpid()}"
        self._created = False

    def __enter__(self) -> LinkCuts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.heal()

    def cut(self, source_host: str, destination_host: str, destination_port: int) -> None:
        """Drop source → destination:port and the replies destination:port → source."""
        self._ensure_table()
        self._nft(
            f"add rule inet {self.table} out ip saddr {source_host} ip daddr {destination_host}"
            f" tcp dport {destination_port} drop\n"
            f"add rule inet {self.table} out ip saddr {destination_host} ip daddr {source_host}"
            f" tcp sport {destination_port} drop\n"
        )

    def heal(self) -> None:
        """Remove every cut this object made."""
        if self._created:
            self._nft(f"delete table inet {self.table}\n")
            self._created = False

    def _ensure_table(self) -> None:
        if not self._created:
            self._nft(
                f"add table inet {self.table}\n"
                f"add chain inet {self.table} out"
                " { type filter hook output priority 0; policy accept; }\n"
            )
            self._created = True

    @staticmethod
    def _nft(script: str) -> None:
        nft = shutil.which("nft")
        if nft is None:
            raise NetfilterError("nft not found: install nftables (apt-get install -y nftables)")
        result = subprocess.run(
            [nft, "-f", "-"], input=script, text=True, capture_output=True, timeout=NFT_TIMEOUT_S
        )
        if result.returncode != 0:
            raise NetfilterError(f"nft refused the rules ({result.stderr.strip()}); are you root?")
