"""benchmarks/ppo_settings.py: variants parsed into PPOConfig fields, runs resumed, a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "ppo_settings.py"


def _run(out: Path, *variants: str) -> dict:
    args = [sys.executable, str(SCRIPT), "--env", "tora/SafeDash-v0", "--weights", "1", "0"]
    for v in variants:
        args += ["--variant", v]
    args += ["--updates", "2", "--out", str(out), "--no-progress"]
    subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads((out / "tora_SafeDash-v0" / "summary.json").read_text())


def test_variants_train_once_and_are_read_back(tmp_path: Path) -> None:
    scaled = "scaled=reward_scale:return_std,lr:0.003,episode_steps:20"
    first = _run(tmp_path, "plain", scaled)
    runs = first["runs"]
    assert set(runs) == {"plain/seed0", "scaled/seed0"}
    assert runs["plain/seed0"]["overrides"] == {}
    assert runs["scaled/seed0"]["overrides"] == {
        "reward_scale": "return_std",
        "lr": 0.003,
        "episode_steps": 20,
    }
    assert runs["scaled/seed0"]["updates"] == 2
    # A second call finds the finished states and trains nothing: the same figures.
    assert _run(tmp_path, "plain", scaled)["runs"] == runs


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    args = [sys.executable, str(SCRIPT), "--env", "tora/SafeDash-v0", "--weights", "1", "0"]
    done = subprocess.run(
        [*args, "--variant", "x=learning_rate:1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "not a PPOConfig field" in done.stderr
