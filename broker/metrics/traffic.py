"""Per-topic counts of what a broker appended and served, kept for its metrics.

The handlers add to plain dicts once per partition of a request (never per record); the
metrics callbacks read them when scraped. Counts only grow, as Prometheus counters must:
a deleted topic's figures stay until the broker restarts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Traffic:
    produce_records: Counter[str] = field(default_factory=Counter)
    produce_bytes: Counter[str] = field(default_factory=Counter)
    link_records: Counter[str] = field(default_factory=Counter)
    # (topic, "consumer" | "replica")
    fetch_bytes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def produced(self, topic: str, records: int, byte_count: int) -> None:
        self.produce_records[topic] += records
        self.produce_bytes[topic] += byte_count

    def linked(self, topic: str, records: int) -> None:
        self.link_records[topic] += records

    def fetched(self, topic: str, byte_count: int, *, replica: bool) -> None:
        if byte_count:
            self.fetch_bytes[(topic, "replica" if replica else "consumer")] += byte_count
