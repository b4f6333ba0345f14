"""`regionlink offsets translate`: one group's exact source→target offset translation."""

from __future__ import annotations

import json

import anyio
from rich.console import Console
from rich.table import Table

from broker.client import KafkaClient, KafkaConnectionError, KafkaError
from mirror.config import FlowConfig, MirrorConfig
from mirror.copy.policy import ReplicationPolicy
from mirror.copy.topic_sync import discover
from mirror.errors import CliError
from mirror.offsets.checkpoints import Translation, translate_groups
from mirror.offsets.store import OffsetMapStore


async def translate(config: MirrorConfig, flow: FlowConfig, group: str) -> list[Translation]:
    source_cfg, target_cfg = config.clusters[flow.source], config.clusters[flow.target]
    policy = ReplicationPolicy.for_flow(flow, config.aliases)
    async with (
        KafkaClient(
            source_cfg.bootstrap_servers,
            request_timeout_s=10,
            security=source_cfg.client_security(),
        ) as source,
        KafkaClient(
            target_cfg.bootstrap_servers,
            request_timeout_s=10,
            security=target_cfg.client_security(),
        ) as target,
    ):
        topics = await discover(source, flow, policy)
        store = None if config.writes_mirror_topics(flow) else OffsetMapStore(target, flow.source)
        return await translate_groups(source, target, store, topics, [group])


def print_translation(config: MirrorConfig, flow: FlowConfig, group: str, as_json: bool) -> None:
    try:
        translations = anyio.run(translate, config, flow, group)
    except (KafkaError, KafkaConnectionError) as exc:
        raise CliError(f"cannot translate offsets of {group} on {flow.spec}: {exc}") from exc
    rows = [
        {
            "source_topic": t.source_tp[0],
            "partition": t.source_tp[1],
            "source_offset": t.upstream_offset,
            "target_topic": t.target_tp[0],
            "target_offset": t.downstream_offset,
        }
        for t in translations
    ]
    if as_json:
        print(json.dumps({"group": group, "flow": flow.spec, "offsets": rows}))
        return
    table = Table(title=f"group {group}: {flow.source} → {flow.target}")
    for column in ("source topic", "partition", "source offset", "target topic", "target offset"):
        table.add_column(column)
    for row in rows:
        target_offset = row["target_offset"]
        table.add_row(
            str(row["source_topic"]),
            str(row["partition"]),
            str(row["source_offset"]),
            str(row["target_topic"]),
            "pending" if target_offset is None else str(target_offset),
        )
    Console().print(table)
    if not rows:
        Console().print(f"group {group} has no committed offsets on topics of {flow.spec}")
