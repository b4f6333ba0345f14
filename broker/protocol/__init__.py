"""Sans-I/O Kafka wire protocol: framing, headers, the version table, batches.

Message bodies are encoded and decoded by `kio`; this package adds only what kio
leaves to the server: where frames end, which versions we serve, and a zero-copy
view of record batch headers so data moves as bytes.
"""
