"""The README's API example must run as written (against a tiny trained run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tora.envs.scripted import collect_cruise
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import finetune_run, pretrain_run
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig
from tora.train.pretrain import PretrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    matches = [b for b in blocks if "Agent.load" in b]
    assert matches, "README lost its Agent.load example"
    return matches[0]


def test_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    traj = collect_cruise(6, seed=0, progress=False)
    run = tmp_path / "runs" / "demo" / "run"
    small = PretrainConfig(
        steps=3,
        batch_size=8,
        diffusion_steps=5,
        denoiser=DenoiserConfig(hidden_dim=16, depth=1, time_dim=8),
    )
    pretrain_run(traj, run, small, InverseDynamicsTrainConfig(steps=3), progress=False)
    finetune_run(
        traj,
        run,
        DPOConfig(steps=2, batch_size=4, num_pairs=20, optim=OptimConfig(ema_decay=0)),
        progress=False,
    )
    monkeypatch.chdir(tmp_path)  # the example refers to runs/demo/run
    namespace: dict = {}
    exec(compile(api_example(), str(README), "exec"), namespace)
    assert namespace["agent"].objective_names == ["speed", "energy"]
