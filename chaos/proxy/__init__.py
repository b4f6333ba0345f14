"""A fault proxy that speaks Toxiproxy's HTTP API (`regionlink chaos proxy`).

Drills put one proxy in front of every broker a remote region reaches, and inject WAN faults
(latency, bandwidth caps, cuts, resets, partial frames) through Toxiproxy's API, so the same
drill runs against this server or a real Toxiproxy, and toxiproxy-python drives either.

Layers, from the bottom: `spec` (what a toxic is, validated), `stages` (what one toxic does to
one direction of one connection, pure), `chain` (a direction's toxics in order, pure), `link`
(the anyio driver that moves bytes through a chain), `proxy` (a listener and its connections),
`registry` (the proxies and Toxiproxy's rules for changing them), `api` (Starlette routes),
`server` (Hypercorn and the registry under one task group).
"""
