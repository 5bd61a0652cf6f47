"""``tora text collect | train | evaluate | sweep`` end to end on tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tora.cli.main import main
from tora.envs.text.game import list_games
from tora.text.data import HELD_OUT_GAME, load_text_dataset


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Collect on two training games, train points and morality policies briefly."""
    root = tmp_path_factory.mktemp("text-cli")
    games = [g for g in list_games() if g != HELD_OUT_GAME][:2]
    data = root / "data.jsonl"
    assert main(["text", "collect", "--games", *games, "--episodes", "15", "--out", str(data)]) == 0
    for objective in ("points", "morality"):
        args = ["text", "train", "--data", str(data), "--objective", objective]
        args += ["--out", str(root / objective), "--steps", "20", "--encoder-dim", "256"]
        args += ["--pairs-count", "200", "--no-progress", "--device", "cpu"]
        assert main(args) == 0
    return root


def test_collect_writes_the_training_games(
    pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_text_dataset(pipeline / "data.jsonl")
    assert HELD_OUT_GAME not in data.games and len(data.games) == 2
    assert len(data.episodes) == 30
    assert data.header["config"]["episodes"] == 15


def test_train_writes_a_policy_and_resumes(
    pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((pipeline / "morality" / "config.json").read_text())
    assert config["format"] == "tora-text-policy" and config["objective"] == "morality"
    assert config["data"]["sha256"] and (pipeline / "morality" / "train_command.json").is_file()
    args = ["text", "train", "--data", str(pipeline / "data.jsonl"), "--objective", "morality"]
    args += ["--out", str(pipeline / "morality"), "--steps", "20", "--encoder-dim", "256"]
    args += ["--pairs-count", "200", "--no-progress"]
    capsys.readouterr()
    assert main(args) == 0  # finished: resumes at its last step and does nothing
    assert "policy 'morality' saved" in capsys.readouterr().out


def test_scalarized_baseline_trains(pipeline: Path) -> None:
    out = pipeline / "scalarized"
    args = ["text", "train", "--data", str(pipeline / "data.jsonl"), "--objective", "scalarized"]
    args += ["--pairs-scalar-weights", "0.3", "0.7", "--out", str(out), "--steps", "5"]
    args += ["--encoder-dim", "256", "--pairs-count", "100", "--no-progress"]
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["objective"] == "scalarized(0.3,0.7)"


def test_evaluate_prints_the_metrics(
    pipeline: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    runs = [str(pipeline / "points"), str(pipeline / "morality")]
    args = ["text", "evaluate", "--runs", *runs, "--weights", "0.3", "0.7", "--episodes", "3"]
    args += ["--baseline-episodes", "20", "--out", str(tmp_path / "rows.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "points=0.30 morality=0.70" in out and "random agent" in out and "score %" in out
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert rows[0]["weights"] == [0.3, 0.7]


def test_invalid_weights_are_a_clear_cli_error(
    pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [str(pipeline / "points"), str(pipeline / "morality")]
    args = ["text", "evaluate", "--runs", *runs, "--weights", "0.6", "0.6", "--episodes", "1"]
    assert main([*args, "--baseline-episodes", "2"]) == 2
    assert "weights must sum to 1" in capsys.readouterr().err
    assert main(["text", "evaluate", "--runs", runs[0], "--weights", "0.5", "0.5"]) == 2
    assert "expected 1 weights" in capsys.readouterr().err


def test_sweep_prints_a_table_and_plots(
    pipeline: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    runs = [str(pipeline / "points"), str(pipeline / "morality")]
    out = tmp_path / "sweep"
    args = ["text", "sweep", "--runs", *runs, "--out", str(out), "--points", "3"]
    args += [
        "--episodes",
        "2",
        "--baseline-episodes",
        "10",
        "--baselines",
        str(pipeline / "points"),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "points=1.00 morality=0.00" in printed and "points=0.00 morality=1.00" in printed
    assert "keyword points agent" in printed and "random agent" in printed
    result = json.loads((out / "sweep.json").read_text())
    assert result["game"] == HELD_OUT_GAME and result["policies"] == ["points", "morality"]
    assert [r["kind"] for r in result["rows"]][:4] == ["mixture"] * 3 + ["baseline"]
    png = (out / "tradeoff.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "config.json").is_file()


def test_collect_with_an_llm_needs_an_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TORA_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("TORA_LLM_MODEL", raising=False)
    args = [
        "text",
        "collect",
        "--agents-llm",
        "0.5",
        "--episodes",
        "1",
        "--out",
        str(tmp_path / "x.jsonl"),
    ]
    assert main(args) == 2
    assert "no LLM endpoint configured" in capsys.readouterr().err
