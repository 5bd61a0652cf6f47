"""Fixtures of the planning tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tora.envs.scripted import collect_cruise
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import finetune_run, pretrain_run
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig
from tora.train.pretrain import PretrainConfig


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained for a handful of steps: enough to plan with, not to plan well."""
    # Module fixtures run before conftest's single-thread fixture; on a shared machine extra
    # torch threads make this tiny training several times slower, not faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_tiny_run(tmp_path_factory.mktemp("run"))
    finally:
        torch.set_num_threads(threads)


def _train_tiny_run(run: Path) -> Path:
    data = collect_cruise(12, seed=3, progress=False)
    pretrain = PretrainConfig(
        horizon=4,
        steps=30,
        batch_size=32,
        diffusion_steps=20,
        denoiser=DenoiserConfig(hidden_dim=64, depth=2, time_dim=16),
        optim=OptimConfig(lr=1e-3, checkpoint_every=1000, log_every=5),
    )
    pretrain_run(data, run, pretrain, InverseDynamicsTrainConfig(steps=30), progress=False)
    dpo = DPOConfig(
        steps=10,
        batch_size=8,
        num_pairs=200,
        segment_length=8,
        optim=OptimConfig(lr=1e-4, ema_decay=0),
    )
    finetune_run(data, run, dpo, progress=False)
    return run
