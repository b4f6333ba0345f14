"""Failover orchestration: a pure planner and its journal (issue 11).

`planner` turns the topology's state and an operator's request into steps or a refusal,
`progress` tells a driver which step comes next from what the journal says happened,
`report` turns a journaled operation into the RPO/RTO report, and `journal` keeps all of
it in `failover.db` in the state directory. The driver that executes steps (Kafka I/O) and
the CLI sit above this package.
"""
