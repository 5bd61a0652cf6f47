"""tora behavior show: a set's figures from its index, checked against hand computations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tora.behavior import ARSConfig, train_behavior_set
from tora.behavior.report import D4MORL_BEHAVIOUR_HV, format_report, set_report
from tora.cli.main import main
from tora.errors import CheckpointError

STEPS = 20


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("set")
    config = ARSConfig(iterations=1, directions=2, top=1, episode_steps=STEPS, eval_episodes=2)
    train_behavior_set("tora/Cruise-v0", out, 3, config, progress=False)
    return out


def _rewrite(
    src: Path, dst: Path, env_id: str, returns: list[list[float]], steps: list[int]
) -> None:
    """A copy of ``src``'s index with other env, return vectors and evaluation steps."""
    index = json.loads((src / "index.json").read_text())
    index["env_id"] = env_id
    for entry, r, n in zip(index["policies"], returns, steps, strict=True):
        entry["return_vector"], entry["eval_steps"] = r, n
    dst.mkdir()
    (dst / "index.json").write_text(json.dumps(index))


def test_report_reads_returns_and_lengths_from_the_index(tiny_set: Path) -> None:
    report = set_report(tiny_set)
    index = json.loads((tiny_set / "index.json").read_text())
    assert (report.env_id, report.algorithm, report.total) == ("tora/Cruise-v0", "ars", 3)
    assert [p.returns for p in report.policies] == [e["return_vector"] for e in index["policies"]]
    assert [p.mean_length for p in report.policies] == [
        e["eval_steps"] / 2 for e in index["policies"]
    ]
    assert report.episode_steps == STEPS
    assert report.env_steps == sum(e["env_steps"] for e in index["policies"]) > 0
    assert report.train_seconds == pytest.approx(sum(e["seconds"] for e in index["policies"]))
    assert report.d4morl is None and report.ratio is None  # Cruise has no published figure


def test_hypervolume_ratio_and_early_ends_by_hand(tiny_set: Path, tmp_path: Path) -> None:
    # Boxes [0,1000]x[0,2000] and [0,2000]x[0,1000] overlap in [0,1000]^2: 2e6 + 2e6 - 1e6.
    # The third point is dominated; the second policy's 2 episodes ran 30 of 40 steps.
    fake = tmp_path / "fake"
    returns = [[1000.0, 2000.0], [2000.0, 1000.0], [500.0, 500.0]]
    _rewrite(tiny_set, fake, "tora/MO-Hopper-v0", returns, [2 * STEPS, 30, 2 * STEPS])
    report = set_report(fake)
    assert report.hypervolume == pytest.approx(3e6)
    assert report.d4morl == D4MORL_BEHAVIOUR_HV["tora/MO-Hopper-v0"]
    assert report.ratio == pytest.approx(3e6 / 2.09e7)
    assert report.early == [1]
    text = format_report(report)
    assert text.count("ENDS EARLY") == 1 and "ratio 0.144" in text


def test_show_command_prints_writes_json_and_refuses_what_is_not_a_set(
    tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    assert main(["behavior", "show", str(tiny_set), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 of 3 policies finished" in printed and "M env steps" in printed
    written = json.loads(out.read_text())
    assert written["finished"] == 3 and written["env_steps"] == set_report(tiny_set).env_steps
    assert main(["behavior", "show", "tora/MO-Hopper-v0"]) == 0  # the shipped set
    assert "D4MORL's behaviour policies" in capsys.readouterr().out
    assert main(["behavior", "show", str(tmp_path / "none")]) == 2
    assert "neither a set directory nor an env id" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not a behaviour-policy set"):
        set_report(tmp_path)
