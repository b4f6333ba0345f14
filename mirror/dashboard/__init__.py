"""`regionlink dashboard`: a read-only web view of one topology, live.

The topology map, flows' lag/throughput/latency over time, traces across regions, the
failover journal and drill reports, each at its own URL (`views/`). One sampler reads the
topology each second (`sampler.py`) and every open page follows it over server-sent events;
the rest is read on request. Starlette on Hypercorn under anyio; templates and assets (uPlot
for the charts) ship in the package, so nothing is built on the user's machine.
"""
