"""Drill files: the library loads, mistakes are one line naming file, line and key, and a
seed resolves a timeline the same way every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.drill.runs import LIBRARY, find_drill, list_drills
from chaos.drill.spec import Action, StepModel, load_drill
from chaos.drill.timeline import Timeline
from mirror.errors import ConfigError

MINIMAL = """\
name = "tiny"
description = "a test drill"
topology = "topology.toml"
invariants = ["no lost-write"]

[workload]
[[workload.topics]]
name = "orders"
[[workload.producers]]
topic = "orders"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drill.toml"
    path.write_text(text)
    return path


def test_every_drill_in_the_library_loads_and_names_an_existing_topology() -> None:
    entries = list_drills()
    assert {e.name for e in entries} >= {
        "switchover-under-load", "primary-loss", "orchestrator-killed", "worker-kills",
        "leader-bounce", "zombie-worker",
    }  # fmt: skip
    for entry in entries:
        drill = load_drill(Path(entry.file))
        assert drill.topology_path.exists(), entry
        assert drill.model.invariants and drill.model.description
        assert find_drill(entry.name) == Path(entry.file)


def test_a_minimal_drill_loads_with_defaults(tmp_path: Path) -> None:
    drill = load_drill(_write(tmp_path, MINIMAL))
    spec = drill.model.workload.spec()
    assert spec.producers[0].acks == "all" and spec.producers[0].idempotence
    assert drill.topology_path == (tmp_path / "topology.toml").resolve()


@pytest.mark.parametrize(
    ("addition", "line", "needle"),
    [
        ('\n[[steps]]\nat_s = 3\naction = "switchover"\n', 14, "switchover needs to"),
        ('\n[[steps]]\nat_s = 3\naction = "explode"\n', 14, "steps[0].action"),
        ('\n[[steps]]\nat_s = [5, 2]\naction = "kill"\nprocess = "*"\n', 13, "runs backwards"),
        ('\n[[workload.groups]]\ngroup = "g"\ntopics = ["nope"]\n', 8, "not listed"),
    ],
)
def test_mistakes_name_the_file_line_and_key(
    tmp_path: Path, addition: str, line: int, needle: str
) -> None:
    path = _write(tmp_path, MINIMAL + addition)
    with pytest.raises(ConfigError) as caught:
        load_drill(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:") and needle in message, message


def test_an_unknown_invariant_is_refused_when_the_drill_is_read(tmp_path: Path) -> None:
    text = MINIMAL.replace('["no lost-write"]', '["no such-thing"]')
    with pytest.raises(ConfigError, match=r"drill.toml:4: invariants: .*unknown name"):
        load_drill(_write(tmp_path, text))


def _step(**fields: object) -> StepModel:
    return StepModel.model_validate({"action": "kill", "process": "*/worker-*", **fields})


def test_a_seed_resolves_ranges_and_picks_the_same_way_every_time() -> None:
    steps = [_step(at_s=(1, 9), pick="one"), _step(at_s=2, times=3, every_s=1.5)]
    processes = {f"us-east->eu-west/worker-{i}": "us-east" for i in range(4)}
    processes["us-east/broker-1"] = "us-east"

    def resolve(seed: int) -> list[tuple[float, list[str]]]:
        timeline = Timeline(steps, seed)
        return [(s.at_s, timeline.targets(s.step, processes)) for s in timeline.steps]

    assert resolve(7) == resolve(7)
    assert any(resolve(seed) != resolve(7) for seed in range(8)), "seeds differ"
    repeated = [at for at, names in resolve(7) if len(names) == 4]
    assert repeated == [2.0, 3.5, 5.0]  # times = 3, every 1.5 s, every worker


def test_a_region_name_targets_its_brokers_and_controllers_not_its_workers() -> None:
    processes = {
        "us-east/broker-1": "us-east",
        "us-east/controller-1": "us-east",
        "us-east->eu-west/worker-0": "us-east",
        "eu-west/broker-1": "eu-west",
    }
    step = StepModel.model_validate({"at_s": 1, "action": Action.STOP, "process": "us-east"})
    assert Timeline([step], 0).targets(step, processes) == [
        "us-east/broker-1", "us-east/controller-1",
    ]  # fmt: skip


def test_the_library_lives_next_to_the_code() -> None:
    assert LIBRARY.name == "drills" and LIBRARY.parent.name == "chaos"
