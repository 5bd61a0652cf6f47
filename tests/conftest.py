"""Shared test setup: one torch thread (the machine is shared) and fixed seeds."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tiny_text_game import TINY_PATH
from tora.envs.text.game import Game, load_game


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread from the start: module-scoped fixtures train before any per-test
    fixture runs, and two threads contending with other work ran them ~10x slower."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module that asks for it (starting one takes seconds). Its
    workers import tora and the helpers in tests/ as this process does, and run torch on
    one thread."""
    ray = pytest.importorskip("ray")
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _single_thread_and_seeded() -> Iterator[None]:
    """Every test starts single-threaded with torch and NumPy's global RNGs seeded at 0."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (seeds the legacy global RNG some libraries still use)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small Cruise datasets of the same shape from different seeds (read-only): a run's
    data and other data it must refuse."""
    from tora.data.formats import save_dataset
    from tora.envs.scripted import collect_cruise

    root = tmp_path_factory.mktemp("data")
    paths = (root / "a.h5", root / "b.h5")
    for seed, path in zip((3, 4), paths, strict=True):
        save_dataset(collect_cruise(6, seed=seed, progress=False), path)
    return paths


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Cruise run (speed and energy models) trained for a handful of steps: enough to roll
    out and serve, not to steer. Shared and read-only: copy it to change it."""
    from tora.envs.scripted import collect_cruise
    from tora.nn.denoisers import DenoiserConfig
    from tora.pipeline import finetune_run, pretrain_run
    from tora.train.dpo import DPOConfig
    from tora.train.inverse import InverseDynamicsTrainConfig
    from tora.train.pretrain import PretrainConfig

    traj = collect_cruise(6, seed=1, progress=False)
    run = tmp_path_factory.mktemp("run")
    tiny = DenoiserConfig(hidden_dim=32, depth=1, time_dim=8)
    pretrain = PretrainConfig(horizon=4, steps=5, diffusion_steps=10, denoiser=tiny)
    pretrain_run(traj, run, pretrain, InverseDynamicsTrainConfig(steps=5), progress=False)
    dpo = DPOConfig(steps=3, num_pairs=50, segment_length=5)
    finetune_run(traj, run, dpo, progress=False)
    return run


# ----------------------------------------------------------------- the tiny text game
@pytest.fixture
def tiny_data() -> dict[str, Any]:
    """A fresh copy of the tiny text game's JSON, free to break."""
    return json.loads(TINY_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_game() -> Game:
    """The tiny text game, parsed (tests/tiny_text_game.py says what its paths score)."""
    return load_game(TINY_PATH)
