"""Pretraining the reference planner: a DDPM on windows of future states (TORA, stage 1).

The reference models the behaviour in the offline data with no preference at all; every
objective model starts from it, and DPO keeps each of them close to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tora.data.coding import FIT_WINDOWS, CodingKind, WindowCoding
from tora.data.normalize import Normalizer
from tora.data.trajectories import Trajectories
from tora.data.windows import WindowIndex, WindowSpec
from tora.diffusion.schedule import NoiseSchedule
from tora.nn.denoisers import DenoiserConfig
from tora.train.loop import OptimConfig, run_identity, train_and_save
from tora.train.losses import denoising_loss
from tora.train.planner_io import PlannerSpec


@dataclass
class PretrainConfig:
    """Settings of reference-planner pretraining."""

    horizon: int = 4
    """States per planned window, H (4 suits MuJoCo locomotion; Lu et al. 2025)."""
    stride: int = 1
    """Environment steps between planned states, m."""
    steps: int = 20000
    """Gradient steps."""
    batch_size: int = 256
    """Windows per gradient step."""
    diffusion_steps: int = 100
    """Steps of the forward noising process used in training."""
    schedule: Literal["cosine", "linear"] = "cosine"
    """Noise schedule."""
    window_coding: CodingKind = "absolute"
    """What the denoiser generates after the known first state: the normalized states
    ("absolute") or each state's standardized step from the first ("delta"; for fast,
    smooth dynamics such as the drones', where a step is a small fraction of the state's
    spread: :mod:`tora.data.coding`)."""
    seed: int = 0
    """Seed of initialization, batches and noise: the same seed repeats the run exactly."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Network architecture."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and checkpointing."""


def window_tensors(
    traj: Trajectories, spec: WindowSpec, normalizer: Normalizer, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalized state table (S, D), window rows (T, H)) on ``device``.

    Batches index the table rather than a precomputed (T, H, D) copy, so memory stays at one
    copy of the states whatever the horizon.
    """
    index = WindowIndex(traj, spec)
    states = normalizer.normalize(torch.as_tensor(index.states, device=device))
    rows = torch.as_tensor(index.rows(np.arange(len(index))), device=device)
    return states, rows


def fit_coding(
    kind: CodingKind, states: torch.Tensor, rows: torch.Tensor, seed: int
) -> WindowCoding:
    """The window coding ``kind`` fitted on the training windows (``window_tensors``'
    normalized state table and window rows; a seeded subset where there are many)."""
    if kind == "absolute":
        return WindowCoding()
    count = rows.shape[0]
    pick = np.arange(count)
    if count > FIT_WINDOWS:
        pick = np.sort(np.random.default_rng(seed).choice(count, FIT_WINDOWS, replace=False))
    return WindowCoding.fit(kind, states[rows[torch.as_tensor(pick, device=rows.device)]])


def noisy_windows(
    x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t with its first state left clean, t, noise) for a batch of clean windows x0.

    The first state stays clean because at planning time it is the known current state
    (inpainting); the model must learn to continue from it, not to denoise it.
    """
    b = x0.shape[0]
    t = torch.randint(schedule.num_steps, (b,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    xt = schedule.add_noise(x0, noise, t)
    xt[:, 0] = x0[:, 0]
    return xt, t, noise


def pretrain_planner(
    traj: Trajectories,
    out_dir: Path,
    config: PretrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> Path:
    """Train the reference planner on ``traj`` and save it to ``out_dir``; resumes if killed.

    Earlier training in ``out_dir`` on other data or settings is refused
    (:class:`~tora.errors.StaleRunError`); ``restart`` moves it aside and starts over."""
    device = torch.device(device)
    out_dir = Path(out_dir)
    window = WindowSpec(config.horizon, config.stride)
    normalizer = Normalizer.fit(traj.observations)
    states, rows = window_tensors(traj, window, normalizer, device)
    spec = PlannerSpec(
        horizon=config.horizon,
        stride=config.stride,
        obs_dim=traj.obs_dim,
        denoiser=config.denoiser,
        schedule=NoiseSchedule(config.diffusion_steps, config.schedule),
        normalizer=normalizer,
        coding=fit_coding(config.window_coding, states, rows, config.seed),
    )
    torch.manual_seed(config.seed)
    model = spec.build().to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        batch = torch.randint(
            rows.shape[0], (config.batch_size,), generator=generator, device=device
        )
        x0 = spec.encode(states[rows[batch]])
        xt, t, noise = noisy_windows(x0, spec.schedule, generator)
        return denoising_loss(model(xt, t), noise)

    train_and_save(
        desc="pretrain reference planner",
        model=model,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": "reference_planner",
            "planner": spec.to_dict(),
            "env_id": traj.metadata.get("env_id"),
            "objectives": [o.to_dict() for o in traj.objectives],
            "act_dim": traj.act_dim,
            "train": asdict(config),
        },
        progress=progress,
        identity=run_identity(config, data_sha256=traj.fingerprint()),
        restart=restart,
    )
    return out_dir
