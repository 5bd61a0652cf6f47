"""``tora critic`` and ``tora evaluate --candidates``: value critics per objective, and
selection among candidate plans, from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tora.cli.main import main

PRETRAIN = [
    "--steps", "10", "--batch-size", "16", "--diffusion-steps", "10", "--denoiser-hidden-dim",
    "32", "--denoiser-depth", "1", "--denoiser-time-dim", "8", "--inverse-steps", "10",
    "--inverse-network-hidden-dim", "16", "--no-progress", "--device", "cpu",
]  # fmt: skip
FINETUNE = [
    "--steps", "3", "--batch-size", "4", "--num-pairs", "50", "--segment-length", "8",
    "--no-progress", "--device", "cpu",
]  # fmt: skip
CRITIC = [
    "--steps", "20", "--batch-size", "16", "--network-hidden-dim", "16", "--network-depth", "1",
    "--held-out", "0.2", "--evaluate-every", "10", "--no-progress", "--device", "cpu",
]  # fmt: skip
FAST_EVAL = ["--episodes", "1", "--sampler-steps", "2", "--device", "cpu", "--no-progress"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_files: tuple[Path, Path]) -> Path:
    """A run with reference, inverse dynamics and both objective models, without critics."""
    run = tmp_path_factory.mktemp("runs") / "run"
    data = str(data_files[0])
    assert main(["pretrain", "--data", data, "--run", str(run), *PRETRAIN]) == 0
    for name in ("speed", "energy"):
        command = ["finetune", "--data", data, "--run", str(run), "--objective", name]
        assert main([*command, *FINETUNE]) == 0
    return run


def test_critic_then_evaluate_with_candidates(
    trained: Path,
    data_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    evaluate = ["evaluate", "--run", str(run), "--weights", "0.5,0.5", *FAST_EVAL]
    # Refused before any work, naming the missing critic and the command that trains it.
    code, _, err = run_cli([*evaluate, "--candidates", "3"], capsys)
    assert code == 2 and "no value critic for objective 'speed'" in err and "tora critic" in err
    code, _, err = run_cli([*evaluate, "--candidates", "0"], capsys)
    assert code == 2 and "--candidates must be at least 1" in err

    data = str(data_files[0])
    code, out, err = run_cli(["critic", "--data", data, "--run", str(run), *CRITIC], capsys)
    assert code == 0, err
    for name in ("speed", "energy"):
        assert f"value critic '{name}' saved" in out and "held-out R^2" in out
        saved = json.loads((run / "critics" / name / "critic_command.json").read_text())
        assert saved["critic"]["steps"] == 20 and saved["options"]["objective"] == []

    code, out, err = run_cli(
        [*evaluate, "--candidates", "3", "--out", str(tmp_path / "eval")], capsys
    )
    assert code == 0, err
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["sweep"]["candidates"] == 3
    config = json.loads((tmp_path / "eval" / "config.json").read_text())
    assert config["options"]["candidates"] == 3


def test_critic_refuses_other_data_unknown_names_and_restarts(
    trained: Path,
    data_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    base = ["critic", "--run", str(run), "--objective", "energy", *CRITIC]
    code, _, err = run_cli([*base, "--data", str(data_files[0])], capsys)
    assert code == 0, err
    assert not (run / "critics" / "speed").exists()  # only the objective asked for
    code, _, err = run_cli([*base, "--data", str(data_files[1])], capsys)
    assert code == 2 and "data_sha256" in err and "--restart" in err
    code, _, err = run_cli([*base, "--data", str(data_files[1]), "--restart"], capsys)
    assert code == 0, err
    code, _, err = run_cli(
        ["critic", "--run", str(run), "--objective", "comfort", "--data", str(data_files[0])],
        capsys,
    )
    assert code == 2 and "unknown objective 'comfort'" in err
    twice = ["critic", "--run", str(run), "--objective", "speed", "speed"]
    code, _, err = run_cli([*twice, "--data", str(data_files[0]), *CRITIC], capsys)
    assert code == 2 and "speed more than once" in err
    code, _, err = run_cli(
        ["critic", "--run", str(tmp_path / "nope"), "--data", str(data_files[0]), *CRITIC],
        capsys,
    )
    assert code == 2 and "tora pretrain" in err
