"""The controller quorum process: the Raft core driven over grpc.aio, with a durable WAL, and
the metadata service brokers call (register, heartbeat, topics, ISR changes, producer ids).

Modules, one job each: `codec` (strict bytes for the core's dataclasses), `wal` (durable Raft
state), `transport` (per-peer senders), `driver` (feeds the node, persists before sending),
`state` (committed metadata and the long-poll stream), `logic` (pure decisions), `service`
(gRPC handlers), `process` (the `regionlink controller` process).
"""
