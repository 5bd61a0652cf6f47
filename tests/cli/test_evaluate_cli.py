"""``tora evaluate``: options are checked before any work, subsets and reorderings of the
objective models evaluate and report by objective name."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tora.cli.main import main
from tora.envs import CRUISE_ID, HOPPER_3OBJ_ID
from tora.evaluate import steering_correlation
from tora.evaluate.rollout import SweepResult


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def fake_run(root: Path, env_id: str, objectives: list[str]) -> Path:
    """The config files of a run, without weights: all the option checks read."""
    (root / "reference").mkdir(parents=True)
    doc = {"env_id": env_id, "objectives": [{"name": n} for n in objectives]}
    (root / "reference" / "config.json").write_text(json.dumps(doc))
    for name in objectives:
        (root / "objectives" / name).mkdir(parents=True)
        (root / "objectives" / name / "config.json").write_text("{}")
    return root


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading models, building an environment or rolling out fails the test: the options
    must be refused before any of it."""
    import tora.cli.evaluate
    import tora.envs
    import tora.pipeline
    from tora.planning.agent import Agent

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the options were checked")

    # Both the functions and the names the command module bound when it imported them.
    monkeypatch.setattr(tora.pipeline, "evaluate_run", forbidden)
    monkeypatch.setattr(tora.cli.evaluate, "evaluate_run", forbidden)
    monkeypatch.setattr(tora.envs, "make_env", forbidden)
    monkeypatch.setattr(tora.pipeline, "make_env", forbidden)
    monkeypatch.setattr(Agent, "load", forbidden)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--weights", ""], "--weights is empty"),
        (["--weights", " "], "--weights is empty"),
        (["--weights", "0.5,,0.5"], "empty item"),
        (["--weights", "0.5,0.5,"], "empty item"),
        (["--weights", "1"], "expected 2 weights"),
        (["--weights", "0.5,nan"], "finite"),
        (["--objectives", ""], "--objectives is empty"),
        (["--objectives", "speed,speed"], "speed more than once"),
        (["--objectives", "speed,,energy"], "empty item"),
        (["--objectives", "speed,comfort"], "'comfort' in .*available: energy, speed"),
        (["--objectives", "energy", "--weights", "0.5,0.5"], r"expected 1 weights.*\(energy\)"),
        (["--ref-point", "0,0,0"], "--ref-point has 3 values but .* has 2 reward objectives"),
        (["--ref-point", ""], "--ref-point is empty"),
        (["--env", HOPPER_3OBJ_ID, "--ref-point", "0,0"], "--ref-point has 2 values"),
        (["--env", "tora/Nope-v0"], "unknown environment id"),
        (["--episodes", "0"], "--episodes"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    options: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_work: None,
) -> None:
    run = fake_run(tmp_path / "run", CRUISE_ID, ["speed", "energy"])
    code, _, err = run_cli(["evaluate", "--run", str(run), "--no-progress", *options], capsys)
    assert code == 2
    assert re.search(message, err), err


def test_unusable_out_directory_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    run = fake_run(tmp_path / "run", CRUISE_ID, ["speed", "energy"])
    a_file = tmp_path / "taken"
    a_file.write_text("not a directory")
    for out, message in [(a_file, "is an existing file"), (a_file / "sub", "is a file")]:
        code, _, err = run_cli(["evaluate", "--run", str(run), "--out", str(out)], capsys)
        assert code == 2 and message in err, err
    assert a_file.read_text() == "not a directory"
    code, _, err = run_cli(["evaluate", "--run", str(tmp_path / "nope")], capsys)
    assert code == 2 and "no such run directory" in err


def steered_evaluate_run(
    run: Path,
    weights: np.ndarray,
    episodes: int,
    seed: int,
    env_id: str,
    objectives: list[str],
    *args: Any,
    **kwargs: Any,
) -> SweepResult:
    """Stands in for a rollout: reward r rises with the weight on the model named r."""
    from tora.envs import objective_names

    rewards = list(objective_names(env_id))
    weights = np.atleast_2d(weights)
    means = np.full((weights.shape[0], len(rewards)), 3.0)
    for j, name in enumerate(objectives):
        means[:, rewards.index(name)] = 10.0 * weights[:, j] + 1.0
    returns = np.repeat(means[:, None, :], episodes, axis=1)
    lengths = np.full((weights.shape[0], episodes), 10)
    return SweepResult(
        weights, returns, lengths, rewards, env_id, seed, meta={"models": list(objectives)}
    )


def test_two_of_three_objectives_with_the_default_ref_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a 3-objective env the default reference point has 3 zeros, and two of its three
    objective models, in another order than the env's, evaluate and report by name."""
    import tora.cli.evaluate

    monkeypatch.setattr(tora.cli.evaluate, "evaluate_run", steered_evaluate_run)
    run = fake_run(tmp_path / "run", HOPPER_3OBJ_ID, ["speed", "jump", "energy"])
    out = tmp_path / "eval"
    code, stdout, err = run_cli(
        [
            "evaluate",
            "--run",
            str(run),
            "--objectives",
            "energy,speed",
            "--sweep",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["ref_point"] == [0.0, 0.0, 0.0]
    assert summary["objectives"] == ["speed", "jump", "energy"]
    assert summary["steering_objectives"] == ["energy", "speed"]
    assert summary["steering_correlation"] == pytest.approx(1.0)
    assert "steering correlation: 1 over energy, speed" in stdout
    with (out / "returns.csv").open(newline="") as f:
        head = next(csv.reader(f))
    assert head[2:7] == ["w_energy", "w_speed", "return_speed", "return_jump", "return_energy"]
    for name in ("pareto_front.png", "weight_sweep.png", "config.json"):
        assert (out / name).stat().st_size > 0


FAST = ["--episodes", "1", "--sampler-steps", "2", "--device", "cpu", "--no-progress"]


def test_one_objective_model_of_two(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    code, stdout, err = run_cli(
        [
            "evaluate",
            "--run",
            str(trained_run),
            "--objectives",
            "energy",
            "--weights",
            "1",
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "pareto_front.png",
        "results.json",
        "returns.csv",
        "weight_sweep.png",
    ]
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["weight_objectives"] == ["energy"] and summary["steering_objectives"] == [
        "energy"
    ]
    assert "w_energy" in stdout and "return_speed" in stdout


def test_reordered_objective_models_pair_by_name(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    code, _, err = run_cli(
        [
            "evaluate",
            "--run",
            str(trained_run),
            "--objectives",
            "energy,speed",
            "--sweep",
            "3",
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    sweep = results["sweep"]
    assert sweep["models"] == ["energy", "speed"] and sweep["objectives"] == ["speed", "energy"]
    # Weight columns (energy, speed) put in the returns' (speed, energy) order.
    by_name = steering_correlation(
        np.asarray(sweep["weights"])[:, [1, 0]], np.asarray(sweep["mean_returns"])
    )
    assert results["summary"]["steering_correlation"] == pytest.approx(by_name)
    with (out / "returns.csv").open(newline="") as f:
        head = next(csv.reader(f))
    assert head[2:6] == ["w_energy", "w_speed", "return_speed", "return_energy"]


def test_diagnose_reports_every_planner_on_a_dataset(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tora.data.formats import save_dataset
    from tora.envs.scripted import collect_cruise

    data = tmp_path / "val.h5"
    save_dataset(collect_cruise(3, seed=5, progress=False), data)
    command = ["diagnose", "--run", str(trained_run), "--data", str(data), "--samples", "50"]
    code, stdout, _ = run_cli(
        [*command, "--sampler-steps", "2", "--device", "cpu", "--json"], capsys
    )
    assert code == 0
    found = json.loads(stdout)
    assert list(found["next_state_error"]) == ["reference", "speed", "energy"]
    assert found["objectives"] == ["speed", "energy"]
    assert all(len(v) == 2 for v in found["planned_reward"].values())
    assert found["still"] > 0 and found["shuffled"] > found["still"]
    assert list(found["action_error"]) == ["reference", "speed", "energy"]
    assert 0 <= found["action_floor"] < found["action_shuffled"]
    code, stdout, _ = run_cli([*command, "--sampler-steps", "2", "--device", "cpu"], capsys)
    assert code == 0 and "next-state error" in stdout and "shift speed" in stdout
    assert "action error" in stdout and "its floor" in stdout
    code, _, err = run_cli([*command, "--samples", "1"], capsys)
    assert code == 2 and "--samples" in err
