"""Switchover, forced failover and failback of a running active-passive topology (issue 11).

Each test brings its own topology up with `regionlink up` (topologies/active-passive.toml under
tmp_path: us-east primary, eu-west holding mirror topics at identical offsets), drives the
operations through the real command line as an operator would, and checks them with real
Kafka clients: applications that follow the primary, consumer groups that commit, a frozen
(SIGSTOP) old primary, an orchestrator SIGKILLed half way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from confluent_kafka import KafkaError, Producer

from broker.client import KafkaClient
from mirror.config import parse_bootstrap
from mirror.offsets.source_ends import SourceEnds
from tests.integration.failover_harness import (
    ACTIVE_PASSIVE,
    PARTITIONS,
    TOPIC,
    Acked,
    AppProducer,
    Deployment,
    GroupConsumer,
    as_contents,
    assert_no_duplicate_keys,
    assert_one_line_refusal,
    committed,
    contents,
    create_orders,
    ends_of,
    first_offsets,
    json_of,
    refused_for_good,
    wait_for_ends,
    wait_for_same_ends,
)
from tests.integration.mirror_harness import create_topic, end_offsets, read_all, wait_until

pytestmark = pytest.mark.integration

SWITCHOVER_STEPS = (
    "fence_source",
    "drain",
    "sync_groups",
    "promote",
    "stop_flow",
    "demote_topics",
    "start_flow",
)
GROUP = "app"
PAYMENTS = "payments"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """active-passive.toml under tmp_path, up; down at the end, whatever happened."""
    topology = tmp_path / "active-passive.toml"
    topology.write_text(ACTIVE_PASSIVE.read_text())
    deployed = Deployment(tmp_path / "state", topology)
    try:
        deployed.up()
        yield deployed
    finally:
        deployed.down()


def produce_acked(
    deployed: Deployment, region: str, prefix: str, count: int, topic: str = TOPIC
) -> list[Acked]:
    """`count` keyed records through an idempotent acks=all producer; each one's ack."""
    bootstrap = deployed.bootstraps[region]
    acked: list[Acked] = []
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked.append(Acked(msg.key(), msg.value(), msg.partition(), msg.offset(), region))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(count):
        value, key = f"{prefix}-value-{i}".encode(), f"{prefix}{i}".encode()
        producer.produce(topic, value, key, on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0 and not errors, errors
    assert len(acked) == count, acked
    return sorted(acked, key=lambda r: (r.partition, r.offset))


def by_partition(records: list[Acked]) -> dict[int, list[Acked]]:
    out: dict[int, list[Acked]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.partition, []).append(r)
    return out


def ranges(items: list[dict[str, Any]]) -> list[tuple[str, int, int, int, int]]:
    """A loss manifest or divergence list as (topic, partition, first, last, records)."""
    return sorted(
        (i["topic"], i["partition"], i["first_offset"], i["last_offset"], i["records"])
        for i in items
    )


def expected_ranges(
    records: list[Acked], topic: str = TOPIC
) -> list[tuple[str, int, int, int, int]]:
    """The offset range and count of `records` in each partition (contiguous per partition)."""
    out = []
    for partition, rows in by_partition(records).items():
        first, last = rows[0].offset, rows[-1].offset
        assert last - first + 1 == len(rows), f"offsets not contiguous in {partition}"
        out.append((topic, partition, first, last, len(rows)))
    return sorted(out)


def assert_report(
    report: dict[str, Any], operation: str, source: str, target: str, epoch: int
) -> None:
    assert report["operation"] == operation, report
    assert (report["from"], report["to"], report["epoch"]) == (source, target, epoch), report
    assert report["outcome"] == "done", report
    for key in ("rpo_records", "rpo_seconds", "rto_seconds", "loss_manifest", "steps"):
        assert key in report, key


# -- 1. switchover under a live application ------------------------------------------------


def move_the_app(
    deployed: Deployment,
    app: AppProducer,
    old: str,
    new: str,
    epoch: int,
    read_before: set[tuple[int, int]],
) -> set[tuple[int, int]]:
    """The group consumes and commits on `old`, then leaves; the operator switches over while
    the app keeps writing; the group resumes on `new` exactly where it stopped. Returns every
    (partition, offset) the group has read, with `read_before` (what it read until now)."""
    before = app.acked_in(new)
    reader = GroupConsumer(deployed.bootstraps[old], GROUP)
    reader.consume_all_of(app.snapshot()[-50:], timeout_s=30)  # caught up with the writes
    seen_old = reader.close()
    left_at = committed(deployed.bootstraps[old], GROUP)
    assert left_at == {p: o + 1 for p, o, _ in sorted(seen_old)}, "every read committed"
    app.wait_acked(old, app.acked_in(old) + 30, timeout_s=30)  # written after the group left

    report = deployed.operate("switchover", "--to", new)
    assert_report(report, "switchover", old, new, epoch)
    assert report["rpo_records"] == 0 and report["loss_manifest"] == [], report
    assert 0 < report["rto_seconds"] < 5, report
    assert [s["state"] for s in report["steps"]] == ["done"] * len(SWITCHOVER_STEPS)
    assert [s["kind"] for s in report["steps"]] == list(SWITCHOVER_STEPS)

    # The app was refused for good by the fenced region and followed the primary.
    app.wait_acked(new, before + 30, timeout_s=60)
    assert app.switches[-1] == (old, new), app.switches
    refusals = {(code, retriable) for region, code, retriable in app.refusals if region == old}
    assert refusals == {(KafkaError.POLICY_VIOLATION, False)}, app.refusals
    stale = refused_for_good(deployed.bootstraps[old])  # an app that did not move
    assert stale.code() == KafkaError.POLICY_VIOLATION, stale
    assert not stale.retriable() and not stale.fatal(), stale

    # The group resumes on the new primary: nothing read twice, nothing skipped.
    written = app.snapshot()
    reader = GroupConsumer(deployed.bootstraps[new], GROUP)
    reader.consume_all_of([r for r in written if r.offset >= left_at.get(r.partition, 0)], 60)
    seen_new = reader.close()
    starts = {p: left_at.get(p, 0) for p in range(PARTITIONS)}
    assert first_offsets(seen_new) == starts, "resumed at the committed offsets"
    old_offsets = {(p, o) for p, o, _ in seen_old}
    assert len(old_offsets) == len(seen_old) and not old_offsets & read_before, "read twice"
    old_offsets |= read_before
    new_offsets = [(p, o) for p, o, _ in seen_new]
    assert len(new_offsets) == len(set(new_offsets)), "a record read twice on the new primary"
    assert not old_offsets & set(new_offsets), "re-read after the switchover"
    missed = {(r.partition, r.offset) for r in written} - old_offsets - set(new_offsets)
    assert not missed, f"never read: {sorted(missed)[:10]}"

    # Every acked record is in the new primary once, and reaches the old one at its offset.
    expected = as_contents(written)
    for bootstrap in (deployed.bootstraps[new], deployed.bootstraps[old]):
        wait_for_ends(bootstrap, ends_of(written), 30, "the acked records")
        found = contents(bootstrap)
        assert {k: found.get(k) for k in expected} == expected, "acked records at their offsets"
        assert_no_duplicate_keys(found, bootstrap)
    return old_offsets | set(new_offsets)


def test_switchover_and_back_under_a_live_producer_and_group(deployment: Deployment) -> None:
    create_orders(deployment)
    app = AppProducer(deployment, "us-east").start()
    try:
        app.wait_acked("us-east", 100, timeout_s=30)
        read = move_the_app(deployment, app, "us-east", "eu-west", 1, read_before=set())
        state = deployment.failover_status()
        assert (state["primary"], state["epoch"]) == ("eu-west", 1), state
        assert state["flows"] == [{"source": "eu-west", "target": "us-east", "epoch": 1}]

        move_the_app(deployment, app, "eu-west", "us-east", 2, read_before=read)
        state = deployment.failover_status()
        assert (state["primary"], state["epoch"]) == ("us-east", 2), state
        assert state["flows"] == [{"source": "us-east", "target": "eu-west", "epoch": 2}]
    finally:
        written = app.stop()
    assert app.switches == [("us-east", "eu-west"), ("eu-west", "us-east")]
    wait_for_same_ends(deployment, 30, "eu-west to catch up with the last writes")
    us, eu = (contents(deployment.bootstraps[r]) for r in ("us-east", "eu-west"))
    assert us == eu == as_contents(written), "both regions hold exactly what was acked"
    history = json_of(deployment.cli("failover", "history", "--json"))
    assert [(h["operation"], h["outcome"]) for h in history] == [("switchover", "done")] * 2


# -- 2. and 3. forced failover of a frozen primary, then failback ---------------------------


class Frozen:
    """What the forced-failover scenario leaves: records by fate, the report, when thawed."""

    def __init__(self) -> None:
        self.mirrored: list[Acked] = []  # in both regions before the failover
        self.unmirrored: list[Acked] = []  # acked by us-east while the flow was paused
        self.report: dict[str, Any] = {}
        self.thawed_at_s = 0.0
        self.taken_after_thaw: list[Acked] = []  # acked by us-east before its fence arrived
        self.payments: list[Acked] = []  # a topic created on us-east while the flow was paused


def observed_ends(bootstrap: str, source: str) -> dict[tuple[str, int], int]:
    """us-east's end offsets as the flow last recorded them on eu-west."""

    async def read() -> dict[tuple[str, int], int]:
        async with KafkaClient(parse_bootstrap(bootstrap), request_timeout_s=5) as client:
            latest = await SourceEnds(client, source).latest()
        return {tp: end.end_offset for tp, end in latest.items()}

    return anyio.run(read)


def fail_over_a_frozen_primary(deployed: Deployment, app: AppProducer | None = None) -> Frozen:
    """Records mirrored, then records us-east alone has (flow paused: the mirror's lag), then
    us-east frozen and `failover --force` to eu-west, then us-east thawed until it refuses
    writes. `app`, if given, starts writing to us-east just before the freeze: its requests
    wait in us-east's sockets and are taken when it thaws, before its fence arrives."""
    us, eu = deployed.bootstraps["us-east"], deployed.bootstraps["eu-west"]
    out = Frozen()
    create_orders(deployed)
    out.mirrored = produce_acked(deployed, "us-east", "m", 30)
    wait_for_ends(eu, ends_of(out.mirrored), 30, "the first records on eu-west")
    done = deployed.cli("link", "pause", "us-east:eu-west")
    assert done.returncode == 0, done.stderr
    out.unmirrored = produce_acked(deployed, "us-east", "lost", 20)
    # A topic created while the flow is paused: its mirror exists on eu-west, empty.
    create_topic(us, PAYMENTS, 1)
    out.payments = produce_acked(deployed, "us-east", "pay", 7, topic=PAYMENTS)
    wait_until(lambda: end_offsets(eu, PAYMENTS) == {0: 0}, 30, "the empty mirror of payments")
    everything = ends_of(out.mirrored + out.unmirrored)
    observed: list[dict[int, int]] = [{}]

    def recorded() -> bool:
        ends = observed_ends(eu, "us-east")
        observed[0] = {p: e for (t, p), e in ends.items() if t == TOPIC}
        return observed[0] == everything and ends.get((PAYMENTS, 0)) == len(out.payments)

    try:
        wait_until(recorded, 15, "eu-west to record us-east's end offsets")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {observed[0]}, not {everything}") from None
    assert end_offsets(eu, TOPIC) == ends_of(out.mirrored), "the paused flow copied nothing"
    if app is not None:
        app.start().wait_acked("us-east", 20, timeout_s=30)

    pid = deployed.broker_pid("us-east")
    os.kill(pid, signal.SIGSTOP)  # us-east holds its sockets and answers nothing
    try:
        refused = deployed.cli("failover", "--to", "eu-west", timeout_s=60)
        assert_one_line_refusal(refused, "--force")
        out.report = deployed.operate("failover", "--to", "eu-west", "--force", timeout_s=90)
    finally:
        os.kill(pid, signal.SIGCONT)
        out.thawed_at_s = time.monotonic()
    # The old primary refuses client writes once the supervisor has told it its role.
    probe = Producer({"bootstrap.servers": us, "enable.idempotence": True, "acks": "all"})
    answers: list[tuple[KafkaError | None, Any]] = []
    while True:
        key = b"thawed%d" % len(out.taken_after_thaw)
        probe.produce(TOPIC, b"after-thaw", key, on_delivery=lambda e, m: answers.append((e, m)))
        assert probe.flush(10) == 0
        error, msg = answers.pop()
        if error is not None:
            assert error.code() == KafkaError.POLICY_VIOLATION and not error.retriable(), error
            break
        out.taken_after_thaw.append(
            Acked(key, b"after-thaw", msg.partition(), msg.offset(), "us-east")
        )
        assert time.monotonic() - out.thawed_at_s < 5, "us-east still takes writes after 5 s"
        time.sleep(0.1)
    return out


def test_forced_failover_of_a_frozen_primary_reports_exactly_what_is_lost(
    deployment: Deployment,
) -> None:
    frozen = fail_over_a_frozen_primary(deployment)
    report = frozen.report
    assert_report(report, "failover", "us-east", "eu-west", 1)
    assert report["rpo_records"] == len(frozen.unmirrored) + len(frozen.payments) == 27, report
    lost = expected_ranges(frozen.unmirrored) + expected_ranges(frozen.payments, PAYMENTS)
    assert ranges(report["loss_manifest"]) == sorted(lost), report
    assert report["observed_age_s"] is not None and report["observed_age_s"] < 30, report
    assert report["pending"] == ["us-east"], "the frozen region is fenced when it is back"
    fence = next(s for s in report["steps"] if s["kind"] == "fence_source")
    assert fence["state"] == "failed" and fence["error"], fence
    assert time.monotonic() - frozen.thawed_at_s < 30

    # eu-west is the primary: it takes writes right after what it had.
    new = produce_acked(deployment, "eu-west", "new", 12)
    for partition, rows in by_partition(new).items():
        assert rows[0].offset == ends_of(frozen.mirrored).get(partition, 0), rows
    state = deployment.failover_status()
    assert (state["primary"], state["epoch"], state["flows"]) == ("eu-west", 1, []), state
    assert state["roles"]["us-east"]["role"] == "standby", state
    # The journal keeps the fence pending; status asks us-east, which the supervisor told.
    confirmed = lambda: deployment.failover_status()["roles"]["us-east"]["confirmed"]  # noqa: E731
    wait_until(lambda: confirmed() is True, 10, "us-east to hold its standby role")


FAILBACK_STEPS = (
    "fence_source",
    "demote_topics",
    "save_divergent",
    "truncate",
    "start_flow",
    "catch_up",
    *SWITCHOVER_STEPS,
)


def check_failback(
    deployed: Deployment, frozen: Frozen, report: dict[str, Any], written_on_eu: list[Acked]
) -> None:
    """After `failback --to us-east`: what us-east alone had is saved on eu-west, and both
    regions hold the same records at the same offsets, each once."""
    us, eu = deployed.bootstraps["us-east"], deployed.bootstraps["eu-west"]
    diverged = frozen.unmirrored + frozen.taken_after_thaw
    assert_report(report, "failback", "eu-west", "us-east", 3)
    assert [s["kind"] for s in report["steps"]] == list(FAILBACK_STEPS)
    saved_ranges = expected_ranges(diverged) + expected_ranges(frozen.payments, PAYMENTS)
    assert ranges(report["diverged"]) == sorted(saved_ranges), report
    assert report["rpo_records"] == 0, report
    saved_payments = read_all(eu, f"{PAYMENTS}.diverged", timeout_s=20)
    assert [(s.key, s.value) for s in saved_payments] == [(r.key, r.value) for r in frozen.payments]

    # What us-east took that eu-west never saw is kept on eu-west, with where it came from.
    saved = read_all(eu, f"{TOPIC}.diverged", timeout_s=20)
    assert sorted(s.key or b"" for s in saved) == sorted(r.key for r in diverged), "each once"
    for partition, rows in by_partition(diverged).items():
        kept = sorted((s for s in saved if s.partition == partition), key=lambda s: s.offset)
        assert [(s.key, s.value) for s in kept] == [(r.key, r.value) for r in rows]
        for s, r in zip(kept, rows, strict=True):
            headers = dict(s.headers)
            assert headers["regionlink.diverged.region"] == b"us-east", s.headers
            assert headers["regionlink.diverged.offset"] == str(r.offset).encode(), s.headers
            assert headers["regionlink.diverged.epoch"] == b"1", s.headers  # the failover's

    # us-east is primary again; both regions hold the same records at the same offsets.
    state = deployed.failover_status()
    assert (state["primary"], state["epoch"], state["unfinished"]) == ("us-east", 3, None)
    assert state["flows"] == [{"source": "us-east", "target": "eu-west", "epoch": 3}], state
    # The flow the operator had paused before the failure runs again (stopping it cleared that).
    assert [f["state"] for f in deployed.status()["flows"]] == ["running"]
    more = produce_acked(deployed, "us-east", "back", 9)
    wait_for_ends(eu, ends_of(more), 30, "us-east's writes to reach eu-west")
    wait_for_same_ends(deployed, 30, "both regions to end at the same offsets")
    found_us, found_eu = contents(us), contents(eu)
    assert found_us == found_eu == as_contents(frozen.mirrored + written_on_eu + more)
    assert_no_duplicate_keys(found_us, "orders after failback")
    assert end_offsets(us, PAYMENTS) == end_offsets(eu, PAYMENTS) == {0: 0}, "cut back, empty"
    stale = refused_for_good(eu)
    assert stale.code() == KafkaError.POLICY_VIOLATION, stale


def test_failback_saves_what_the_old_primary_took_and_makes_both_identical(
    deployment: Deployment,
) -> None:
    """With an application writing all along: to us-east until it froze (its last writes wait
    in us-east's sockets and land when it thaws, after eu-west's promotion: split brain),
    then to eu-west, then, after the failback, to us-east again."""
    app = AppProducer(deployment, "us-east", prefix="app", message_timeout_ms=120_000)
    try:
        frozen = fail_over_a_frozen_primary(deployment, app)
        wait_until(lambda: app.switches == [("us-east", "eu-west")], 60, "the app on eu-west")
        app.wait_acked("eu-west", 30, timeout_s=30)
        new = produce_acked(deployment, "eu-west", "new", 15)  # the new primary's own writes
        before = app.snapshot()
        report = deployment.operate("failback", "--to", "us-east", timeout_s=240)
        wait_until(lambda: len(app.switches) == 2, 60, "the app to follow the primary home")
        app.wait_acked("us-east", app.acked_in("us-east") + 30, timeout_s=60)
    finally:
        written = app.stop()
    assert app.switches == [("us-east", "eu-west"), ("eu-west", "us-east")], app.switches
    assert report["rto_seconds"] < 5, report
    # Everything the app wrote to us-east before the failback only us-east ever had.
    only_us = [r for r in before if r.region == "us-east"]
    frozen.taken_after_thaw += only_us
    diverged = set(only_us)
    kept = [r for r in written if r not in diverged]
    check_failback(deployment, frozen, report, new + kept)


# -- 4. the orchestrator killed at every step (switchover, failback), a second one refused --


def run_and_kill_at(
    deployed: Deployment, operation_id: int, step: int, *command: str
) -> dict[int, str]:
    """Start `command` (operation `operation_id`), SIGKILL it once the journal says its step
    `step` started; the journal's steps of that operation at that moment."""
    orchestrator = subprocess.Popen(
        deployed.argv(*command, "--json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline_s = time.monotonic() + 60
        while step not in deployed.journal_steps(operation_id):
            assert orchestrator.poll() is None, f"finished (exit {orchestrator.returncode})"
            assert time.monotonic() < deadline_s, f"step {step} never started"
            time.sleep(0.002)
    finally:
        orchestrator.kill()
        orchestrator.wait(10)
    return deployed.journal_steps(operation_id)


@pytest.mark.parametrize(
    "step", range(len(SWITCHOVER_STEPS)), ids=[f"kill-at-{s}" for s in SWITCHOVER_STEPS]
)
def test_a_killed_switchover_resumes_when_rerun(deployment: Deployment, step: int) -> None:
    create_orders(deployment)
    app = AppProducer(deployment, "us-east").start()
    try:
        app.wait_acked("us-east", 50, timeout_s=30)
        at_kill = run_and_kill_at(deployment, 1, step, "switchover", "--to", "eu-west")
        assert deployment.failover_status()["unfinished"] == 1, "the operation is unfinished"

        report = deployment.operate("switchover", "--to", "eu-west")  # resumes operation 1
        assert_report(report, "switchover", "us-east", "eu-west", 1)
        steps = report["steps"]
        assert [s["state"] for s in steps] == ["done"] * len(SWITCHOVER_STEPS), steps
        for index, was in at_kill.items():  # a step cut short runs again, once
            assert steps[index]["attempts"] == (2 if was == "started" else 1), (at_kill, steps)
        app.wait_acked("eu-west", 30, timeout_s=60)
    finally:
        written = app.stop()
    shown = json_of(deployment.cli("failover", "show", "1", "--json"))
    assert shown["outcome"] == "done" and shown["steps"] == steps
    history = json_of(deployment.cli("failover", "history", "--json"))
    assert [(h["id"], h["outcome"]) for h in history] == [(1, "done")]
    state = deployment.failover_status()
    assert (state["primary"], state["unfinished"], state["orchestrator"]) == ("eu-west", None, None)
    wait_for_same_ends(deployment, 30, "us-east to catch up through the reverse flow")
    us, eu = (contents(deployment.bootstraps[r]) for r in ("us-east", "eu-west"))
    assert us == eu == as_contents(written), "every acked record once, at one offset"


KILLED_FAILBACK_STEPS = ("save_divergent", "truncate", "catch_up", "promote")


@pytest.mark.parametrize(
    "kind", KILLED_FAILBACK_STEPS, ids=[f"kill-at-{k}" for k in KILLED_FAILBACK_STEPS]
)
def test_a_killed_failback_resumes_when_rerun(deployment: Deployment, kind: str) -> None:
    frozen = fail_over_a_frozen_primary(deployment)
    new = produce_acked(deployment, "eu-west", "new", 15)
    step = FAILBACK_STEPS.index(kind)
    at_kill = run_and_kill_at(deployment, 2, step, "failback", "--to", "us-east")
    assert deployment.failover_status()["unfinished"] == 2, "the failback is unfinished"

    report = deployment.operate("failback", "--to", "us-east", timeout_s=240)  # resumes it
    steps = report["steps"]
    assert [s["state"] for s in steps] == ["done"] * len(FAILBACK_STEPS), steps
    for index, was in at_kill.items():  # a step cut short runs again, once
        assert steps[index]["attempts"] == (2 if was == "started" else 1), (at_kill, steps)
    check_failback(deployment, frozen, report, new)


def test_a_second_orchestrator_is_refused_while_one_runs(deployment: Deployment) -> None:
    create_orders(deployment)
    us = deployment.bootstraps["us-east"]
    produce_acked(deployment, "us-east", "a", 10)
    wait_for_ends(deployment.bootstraps["eu-west"], end_offsets(us, TOPIC), 30, "mirroring")
    assert deployment.cli("link", "pause", "us-east:eu-west").returncode == 0
    produce_acked(deployment, "us-east", "b", 10)  # lag: the drain waits
    first = subprocess.Popen(
        deployment.argv("switchover", "--to", "eu-west", "--json", "--drain-timeout-s", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: deployment.journal_steps(1).get(1) == "started", 30, "the drain")
        for second in (
            deployment.cli("switchover", "--to", "eu-west"),
            deployment.cli("failover", "--to", "eu-west", "--force"),
        ):
            assert_one_line_refusal(second, "another orchestrator", f"pid {first.pid}")
        assert deployment.cli("link", "resume", "us-east:eu-west").returncode == 0
        out, err = first.communicate(timeout=90)
    finally:
        first.kill()
        first.wait(10)
    assert first.returncode == 0, err
    assert_report(json_of(subprocess.CompletedProcess([], 0, out, err)), "switchover",
                  "us-east", "eu-west", 1)  # fmt: skip


# -- 5. refusals -----------------------------------------------------------------------------


def test_failover_without_force_is_refused_while_the_primary_is_up(
    deployment: Deployment,
) -> None:
    done = deployment.cli("failover", "--to", "eu-west")
    assert_one_line_refusal(done, "us-east is reachable", "regionlink switchover --to eu-west")
    state = deployment.failover_status()
    assert (state["primary"], state["epoch"]) == ("us-east", 0), "nothing changed"
    history = json_of(deployment.cli("failover", "history", "--json"))
    assert history == []


def test_a_switchover_that_cannot_drain_is_aborted_and_the_primary_unfenced(
    deployment: Deployment,
) -> None:
    create_orders(deployment)
    us, eu = deployment.bootstraps["us-east"], deployment.bootstraps["eu-west"]
    mirrored = produce_acked(deployment, "us-east", "a", 10)
    wait_for_ends(eu, ends_of(mirrored), 30, "mirroring")
    assert deployment.cli("link", "pause", "us-east:eu-west").returncode == 0
    produce_acked(deployment, "us-east", "b", 10)  # lag that will not drain

    done = deployment.cli("switchover", "--to", "eu-west", "--json", "--drain-timeout-s", "2")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["outcome"], report["epoch"]) == ("aborted", 1), report
    assert "drain" in report["reason"] and "lag" in report["reason"], report
    kinds = [(s["kind"], s["state"]) for s in report["steps"]]
    assert kinds[:3] == [("fence_source", "done"), ("drain", "failed"), ("sync_groups", "skipped")]
    assert ("unfence", "done") in kinds, kinds

    # us-east serves again (at the new epoch), eu-west is still its read-only mirror.
    after = produce_acked(deployment, "us-east", "c", 5)
    assert len(after) == 5
    stale = refused_for_good(eu)
    assert stale.code() == KafkaError.POLICY_VIOLATION, stale
    state = deployment.failover_status()
    assert (state["primary"], state["epoch"], state["unfinished"]) == ("us-east", 1, None), state
    assert state["flows"] == [{"source": "us-east", "target": "eu-west", "epoch": 0}], state
    assert deployment.cli("link", "resume", "us-east:eu-west").returncode == 0
    wait_for_same_ends(deployment, 30, "the flow to catch up after the abort")
    assert contents(us) == contents(eu)
