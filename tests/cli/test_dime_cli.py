"""Smoke tests of ``tora dime``: bandit sweeps, offline training and evaluation on Cruise."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tora.cli.main import main

TINY_POLICY = ["--hidden-dim", "16", "--steps", "20", "--batch-size", "32", "--num-actions", "4"]
TINY_CRITIC = ["--critic-hidden-dim", "16", "--critic-steps", "20", "--critic-batch-size", "32"]
QUIET = ["--no-progress", "--device", "cpu"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["dime", "bandit"], "concave front"),
        (["dime", "train"], "Expectile tau of V's loss"),
        (["dime", "evaluate"], "single-trade-off policies act at their own"),
    ],
)
def test_help_shows_field_docs(
    command: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert expected in " ".join(capsys.readouterr().out.split())


def test_bandit_runs_in_seconds_and_writes_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.perf_counter()
    args = ["dime", "bandit", "--steps", "40", "--alphas", "3", "--seeds", "0", "1"]
    code, out, _ = run_cli([*args, "--out", str(tmp_path)], capsys)
    assert code == 0
    assert time.perf_counter() - start < 20
    results = json.loads((tmp_path / "results.json").read_text())
    summary = {(r["problem"], r["method"]): r for r in results["summary"]}
    assert set(summary) == {(p, m) for p in ("schaffer", "fonseca_fleming") for m in ("ls", "dime")}
    assert all(r["seeds"] == [0, 1] for r in summary.values())
    assert len(results["sweeps"]) == 8 and len(results["sweeps"][0]["alphas"]) == 3
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["solver"]["steps"] == 40 and config["options"]["alphas"] == 3
    for problem in ("schaffer", "fonseca_fleming"):
        assert (tmp_path / f"front_{problem}.png").stat().st_size > 0
    # One table row per (problem, method) with the mean ± std over the seeds.
    assert out.count("±") == 4 and "s/sweep" in out


def test_bandit_one_problem_one_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["dime", "bandit", "--problem", "schaffer", "--methods", "dime", "--steps", "10"]
    code, out, _ = run_cli([*args, "--alphas", "2", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert [p.name for p in sorted(tmp_path.glob("*.png"))] == ["front_schaffer.png"]
    assert out.count("±") == 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cruise.h5"
    args = ["data", "make", "--episodes", "4", "--seed", "1", "--no-plot", "--no-progress"]
    assert main([*args, "--out", str(path)]) == 0
    return path


def test_train_and_evaluate(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    base = ["dime", "train", "--data", str(dataset), "--out", str(run), *QUIET, *TINY_CRITIC]
    code, out, _ = run_cli([*base, *TINY_POLICY, "--variant", "ls", "--alpha", "0.3", "1"], capsys)
    assert code == 0, out
    assert "LS (CRR) (alpha 0.3)" in out and "LS (CRR) (alpha 1)" in out
    multi = [*base, *TINY_POLICY, "--variant", "dime_awbc", "--multi"]
    code, out, _ = run_cli(multi, capsys)
    assert code == 0 and "DiME (AWBC) multi (all alphas)" in out
    assert sorted(p.name for p in run.iterdir()) == [
        "command_dime_awbc_multi.json",
        "command_ls.json",
        "critic",
        "dime_awbc_multi",
        "ls",
    ]

    args = ["dime", "evaluate", "--run", str(run), "--alpha", "0", "1", "--episodes", "1"]
    code, out, _ = run_cli([*args, *QUIET], capsys)
    assert code == 0
    rows = json.loads((run / "eval" / "results.json").read_text())["rows"]
    # The multi policy at each requested alpha, each LS policy at its own.
    got = [(r["variant"], r["alpha"]) for r in rows]
    assert got == [("dime_awbc", 0.0), ("dime_awbc", 1.0), ("ls", 0.3), ("ls", 1.0)]
    assert all(len(r["returns"]) == 2 for r in rows)
    assert "return_speed" in out and "task return" in out

    code, _, err = run_cli([*base, *TINY_POLICY, "--variant", "ls", "--multi"], capsys)
    assert code == 2 and "no multi variant" in err
    # Other critic settings in the same run are refused, not mixed.
    other = [*base, *TINY_POLICY, "--critic-expectile", "0.9", "--alpha", "0.5"]
    code, _, err = run_cli(other, capsys)
    assert code == 2 and "other settings" in err


def test_evaluate_default_alphas_are_the_api_defaults() -> None:
    from tora.cli.dime import DimeEvaluateOptions
    from tora.dime.offline import EVAL_ALPHAS

    assert DimeEvaluateOptions().alpha == EVAL_ALPHAS


def test_train_needs_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["dime", "train", "--out", str(tmp_path), *QUIET], capsys)
    assert code == 2 and "--data is required" in err
