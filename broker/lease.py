"""The write lease: a primary takes client writes only while it can reach its standby.

Fencing by epoch needs the new epoch to reach the old primary. A primary cut off from its
standby (and from whoever would tell it) would go on taking writes that a forced failover
then loses — split brain. With a lease, the primary probes its standby's listener; after
`lease_s` without a successful probe it refuses client writes by itself, and takes them
again as soon as a probe succeeds. A forced failover that waits `lease_s` past its last
observation of the old primary therefore promotes a region no other one is still writing
to. The price is availability: during a cut between the regions, the primary refuses
writes even though its clients can reach it. Off unless the topology sets `lease_s`.

`WriteLease` is pure (time is passed in); `keep_lease` is the anyio prober.
"""

from __future__ import annotations

import logging
import ssl
import struct
import time
from dataclasses import dataclass

import anyio

log = logging.getLogger(__name__)

MIN_PROBE_INTERVAL_S = 0.1


@dataclass
class WriteLease:
    lease_s: float
    last_reached_s: float  # monotonic time of the last successful probe (start counts as one)

    def expired(self, now_s: float) -> bool:
        return now_s - self.last_reached_s > self.lease_s

    def reached(self, now_s: float) -> None:
        self.last_reached_s = max(self.last_reached_s, now_s)

    @property
    def probe_interval_s(self) -> float:
        return max(MIN_PROBE_INTERVAL_S, self.lease_s / 4)


def refusal_message(lease: WriteLease, now_s: float) -> str:
    silent_s = now_s - lease.last_reached_s
    return (
        f"write lease expired: this primary has not reached its standby for {silent_s:.1f} s "
        f"(lease {lease.lease_s:g} s); it refuses writes until it does, so a forced failover "
        "cannot leave two regions taking writes"
    )


# ApiVersions v0 with correlation id 1 and client id "regionlink-lease": a whole round trip,
# so a link that accepts connections but delivers no answers (a one-way blackhole) does not
# renew the lease. Raw bytes: the probe needs one request, not a client.
_CLIENT_ID = b"regionlink-lease"
_PROBE = struct.pack(">hhih", 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID
_PROBE_FRAME = struct.pack(">i", len(_PROBE)) + _PROBE


async def probe(host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
    """One ApiVersions round trip with the peer (over TLS with `ssl_context`: a SASL
    listener answers ApiVersions before authentication, so no credentials are needed);
    OSError if it does not answer properly."""
    stream = (
        await anyio.connect_tcp(host, port)
        if ssl_context is None
        else await anyio.connect_tcp(
            host, port, ssl_context=ssl_context, tls_standard_compatible=False
        )
    )
    async with stream:
        await stream.send(_PROBE_FRAME)
        received = b""
        while len(received) < 8:  # size and correlation id
            received += await stream.receive()
        if struct.unpack(">i", received[4:8])[0] != 1:
            raise OSError("the peer answered another request")


async def keep_lease(
    lease: WriteLease, peers: list[tuple[str, int]], ssl_context: ssl.SSLContext | None = None
) -> None:
    """Probe the standby's listeners forever (with TLS when `ssl_context` is given); any
    answered probe renews the lease."""
    was_expired = False
    while True:
        interval_s = lease.probe_interval_s
        for host, port in peers:
            try:
                with anyio.fail_after(interval_s):
                    await probe(host, port, ssl_context)
            except (
                OSError,  # ssl.SSLError too
                TimeoutError,
                anyio.EndOfStream,
                anyio.BrokenResourceError,
            ):
                continue
            lease.reached(time.monotonic())
            break
        expired = lease.expired(time.monotonic())
        if expired != was_expired:
            log.warning(
                "write lease %s", "expired: refusing client writes" if expired else "renewed"
            )
            was_expired = expired
        await anyio.sleep(interval_s)
