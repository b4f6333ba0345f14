"""Drills: a topology, a workload and a timeline of faults and failovers, judged afterwards.

`spec` reads a drill file (TOML, validated with errors by file and line), `timeline` resolves
its steps for a seed (pure), `deployment` drives a topology through the `regionlink` command
line as an operator would, `runner` runs a drill and judges its history with
`chaos.verifier`, and `runs` keeps each run's directory (history, verdict, logs).
"""
