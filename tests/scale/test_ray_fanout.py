"""What fans out on Ray gives what the serial commands give, on a local 2-CPU Ray: a preference
sweep shared among actors (tora.scale.sweep) and objectives fine-tuned as tasks
(tora.scale.finetune), with their failures reported, not lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tora.cli.main import main
from tora.diffusion.samplers import SamplerConfig
from tora.envs import CRUISE_ID
from tora.errors import ToraError, UnknownObjectiveError
from tora.evaluate.rollout import SweepResult, merge_rows
from tora.pipeline import evaluate_run, sweep_rows
from tora.planning.agent import Agent
from tora.preferences import Preferences, simplex_grid
from tora.scale.sweep import RaySweepOptions, evaluate_run_ray, sweep_shares

ray = pytest.importorskip("ray")

# Noise in every sampler step (eta = 1), so each row's own noise stream matters throughout.
SAMPLER = SamplerConfig(steps=3, eta=1.0)
WEIGHTS = simplex_grid(2, 3)
EPISODES, SEED = 2, 4
RTOL, ATOL = 1e-4, 1e-3
"""The tolerance of tests/planning/test_batched_sweep.py: a batch of another size rounds its
matrix products differently (about 1e-7 relative per step); a row drawing another row's
noise would change returns by whole units."""

PRETRAIN = [
    "--steps", "5", "--diffusion-steps", "10", "--denoiser-hidden-dim", "32",
    "--denoiser-depth", "1", "--denoiser-time-dim", "8", "--inverse-steps", "5",
    "--no-progress", "--device", "cpu",
]  # fmt: skip
FINETUNE = [
    "--steps", "3", "--num-pairs", "50", "--segment-length", "5", "--no-progress",
    "--device", "cpu",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("local_ray")  # tests/conftest.py


def serial_sweep(run: Path) -> SweepResult:
    return evaluate_run(
        run, WEIGHTS, EPISODES, SEED, CRUISE_ID, sampler=SAMPLER, device="cpu", progress=False
    )


def ray_sweep(run: Path, actors: int, **kwargs: object) -> tuple[SweepResult, list[str]]:
    logged: list[str] = []
    result = evaluate_run_ray(
        run,
        WEIGHTS,
        EPISODES,
        SEED,
        CRUISE_ID,
        sampler=SAMPLER,
        options=RaySweepOptions(actors=actors),
        log=logged.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return result, logged


def test_the_sweep_on_ray_is_the_serial_sweep_cut_into_shares(trained_run: Path) -> None:
    result, logged = ray_sweep(trained_run, actors=2)
    # Exactly what the same two shares give rolled out here (same batches, same noise).
    prefs = Preferences(WEIGHTS, 2, ["speed", "energy"])
    parts = [
        sweep_rows(
            Agent.load(trained_run, device="cpu", sampler=SAMPLER, seed=SEED),
            CRUISE_ID,
            prefs,
            EPISODES,
            SEED,
            share,
            progress=False,
        )
        for share in sweep_shares(len(WEIGHTS) * EPISODES, 2)
    ]
    here = merge_rows(parts, prefs, EPISODES, SEED, CRUISE_ID, result.objective_names)
    np.testing.assert_array_equal(result.returns, here.returns)
    # The whole serial sweep batches all six rows together: equal up to that rounding.
    serial = serial_sweep(trained_run)
    np.testing.assert_allclose(result.returns, serial.returns, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(result.lengths, serial.lengths)
    np.testing.assert_array_equal(result.weights, serial.weights)
    assert result.objective_names == serial.objective_names == ["speed", "energy"]
    assert result.meta["models"] == serial.meta["models"]
    assert result.meta["timing"]["ray_actors"] == 2
    assert (
        logged[0] == "ray: 6 sweep rows (3 preferences x 2 episodes) on 2 actors, up to 3 rows each"
    )
    assert logged[-1] == "ray: 6/6 sweep rows finished (per actor: 3/3, 3/3)"


def test_one_actor_gives_the_serial_sweep_exactly(trained_run: Path) -> None:
    result, _ = ray_sweep(trained_run, actors=1, progress=False)
    np.testing.assert_array_equal(result.returns, serial_sweep(trained_run).returns)


def test_an_actors_error_is_raised_as_it_is(trained_run: Path) -> None:
    with pytest.raises(UnknownObjectiveError, match="no objective model 'comfort'"):
        ray_sweep(trained_run, actors=2, objectives=["speed", "comfort"])
    with pytest.raises(ToraError, match="at least 1 actor, got 0"):
        RaySweepOptions(actors=0)


def test_evaluate_on_ray_writes_the_serial_report(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["evaluate", "--run", str(trained_run), "--sweep", "3", "--episodes", "2"]
    common += ["--seed", str(SEED), "--sampler-steps", "3", "--sampler-eta", "1", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "serial"), "--no-progress"]) == 0
    serial_out = capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "ray"), "--ray", "--ray-actors", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.replace(str(tmp_path / "ray"), "OUT") == serial_out.replace(
        str(tmp_path / "serial"), "OUT"
    )
    assert "ray: 6/6 sweep rows finished" in captured.err
    saved = {
        name: json.loads((tmp_path / name / "results.json").read_text())
        for name in ("serial", "ray")
    }
    for results in saved.values():
        results["sweep"].pop("timing")  # how long it took differs
    assert saved["ray"] == saved["serial"]


# ------------------------------------------------------------------ fine-tuning on Ray
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory, data_files: tuple[Path, Path]) -> Path:
    """A run with its reference planner and inverse dynamics, no objective model yet."""
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["pretrain", "--data", str(data_files[0]), "--run", str(run), *PRETRAIN]) == 0
    return run


def finetune(run: Path, data: Path, *options: str) -> int:
    command = ["finetune", "--data", str(data), "--run", str(run)]
    return main([*command, "--objective", "speed", "--objective", "energy", *FINETUNE, *options])


def model_files(run: Path) -> dict[str, bytes]:
    """Each objective's weights and config (with the weights' SHA-256)."""
    return {
        f"{name}/{file}": (run / "objectives" / name / file).read_bytes()
        for name in ("speed", "energy")
        for file in ("model.safetensors", "config.json", "pairs.json", "history.json")
    }


def test_finetune_on_ray_saves_the_serial_models_byte_for_byte(
    pretrained: Path, data_files: tuple[Path, Path], tmp_path: Path
) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "ray"
    shutil.copytree(pretrained, serial)
    shutil.copytree(pretrained, parallel)
    assert finetune(serial, data_files[0]) == 0
    assert finetune(parallel, data_files[0], "--ray") == 0
    expected = model_files(serial)
    assert model_files(parallel) == expected
    # Each objective's record of the command names its own objective, as when it took one.
    for name in ("speed", "energy"):
        records = [
            json.loads((run / "objectives" / name / "finetune_command.json").read_text())
            for run in (serial, parallel)
        ]
        assert records[0]["options"]["objective"] == name
        assert records[0]["options"].pop("run") != records[1]["options"].pop("run")
        assert records[0] == records[1]
    # A rerun resumes: both have nothing left to train, and the models stay as they were.
    assert finetune(parallel, data_files[0], "--ray") == 0
    assert model_files(parallel) == expected


def test_a_failed_objective_does_not_stop_the_others(
    pretrained: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(pretrained, run)
    # 'energy' trained from other settings: continuing it would mix the two, so it fails.
    energy = ["finetune", "--data", str(data_files[0]), "--run", str(run), "--objective"]
    assert main([*energy, "energy", *FINETUNE, "--seed", "1"]) == 0
    capsys.readouterr()
    assert finetune(run, data_files[0], "--ray") == 2
    captured = capsys.readouterr()
    assert "objective model 'speed' saved" in captured.out
    assert "1 of 2 objectives failed" in captured.err
    assert "'energy' StaleRunError" in captured.err
    assert (run / "objectives" / "speed" / "model.safetensors").is_file()
