"""TORA as a benchmark method: pretrain the reference planner, DPO one copy per objective,
compose them per preference at sampling time (seeds/000).

Unlike the conditioned baselines, TORA never sees a preference during training: each
objective model learns from preference pairs labelled by that objective alone, and the
trade-off exists only at inference, as sum_i w_i eps_i.

With ``candidates`` > 1 (issue 17, "TORA + selection"), one value critic per objective is
trained too, still without preferences, and at every step the agent acts towards the best of
that many sampled plans by sum_i w_i V_i(last planned state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tora.configs import config_from_dict, config_to_dict
from tora.data.trajectories import Trajectories
from tora.diffusion.samplers import SamplerConfig
from tora.errors import CheckpointError
from tora.io import atomic_write_json, read_json_object
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import critic_run, finetune_run, pretrain_run
from tora.planning.agent import Agent
from tora.policies.base import Method
from tora.train.critic import ValueCriticTrainConfig
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig
from tora.train.planner_io import CRITICS_DIR, INVERSE_DIR, OBJECTIVES_DIR, REFERENCE_DIR
from tora.train.pretrain import PretrainConfig

METHOD_FILE = "tora_method.json"
"""Written last into a trained TORA run: its settings, and the sign that training finished."""


@dataclass
class ToraConfig:
    """Everything TORA trains, and how it samples at evaluation."""

    pretrain: PretrainConfig = field(
        default_factory=lambda: PretrainConfig(
            steps=20000,
            denoiser=DenoiserConfig(kind="mlp", hidden_dim=256, depth=3),
            optim=OptimConfig(lr=1e-3, checkpoint_every=1000),
        )
    )
    """Reference planner (stage 1)."""
    inverse: InverseDynamicsTrainConfig = field(default_factory=InverseDynamicsTrainConfig)
    """Inverse dynamics model."""
    dpo: DPOConfig = field(
        default_factory=lambda: DPOConfig(
            optim=OptimConfig(lr=1e-5, ema_decay=0.0, checkpoint_every=500)
        )
    )
    """Diffusion-DPO, once per objective (stage 2)."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=20))
    """Plan sampling at evaluation."""
    candidates: int = 1
    """Plans sampled per step and row; above 1 the agent acts towards the one of highest
    sum_i w_i V_i(last planned state), and value critics are trained (1: plain TORA, no
    critic)."""
    critic: ValueCriticTrainConfig = field(default_factory=ValueCriticTrainConfig)
    """Value critics, one per objective (trained only when candidates > 1)."""


def train_tora(
    traj: Trajectories,
    out_dir: Path,
    config: ToraConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Both TORA stages into ``out_dir`` (resumable, as each stage is), and the value
    critics when ``config.candidates`` > 1."""
    out_dir = Path(out_dir)
    if config.candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {config.candidates}")
    pretrain_run(traj, out_dir, config.pretrain, config.inverse, device, progress)
    finetune_run(traj, out_dir, config.dpo, device=device, progress=progress)
    if config.candidates > 1:
        critic_run(traj, out_dir, config.critic, device=device, progress=progress)
    atomic_write_json(out_dir / METHOD_FILE, {"kind": "tora", "config": config_to_dict(config)})
    return out_dir


def load_tora(
    out_dir: Path,
    device: torch.device | str = "cpu",
    seed: int = 0,
    candidates: int | None = None,
) -> Agent:
    """The composed agent of a run trained by :func:`train_tora`, with its sampler.
    ``candidates`` overrides the run's own number (critics must be in the run for N > 1)."""
    path = Path(out_dir) / METHOD_FILE
    if not path.is_file():
        raise CheckpointError(f"{out_dir} holds no finished TORA run ({METHOD_FILE} missing)")
    saved = read_json_object(path)
    if saved.get("kind") != "tora":
        raise CheckpointError(f"{path} describes {saved.get('kind')!r}, not a TORA run")
    config = config_from_dict(ToraConfig, saved["config"])
    return Agent.load(
        out_dir,
        device=str(device),
        sampler=config.sampler,
        seed=seed,
        candidates=config.candidates if candidates is None else candidates,
    )


def tora_stages(config: ToraConfig) -> dict[str, Any]:
    """What determines each trained directory of a TORA run (besides data and seed): the
    reference planner its pretraining; the inverse dynamics its own settings and the stride;
    the objective models and the critics their own settings and the reference they start from
    or are checked against. The sampler and the number of candidates train nothing."""
    pretrain = config_to_dict(config.pretrain)
    stages = {
        REFERENCE_DIR: {"pretrain": pretrain},
        INVERSE_DIR: {"inverse": config_to_dict(config.inverse), "stride": config.pretrain.stride},
        OBJECTIVES_DIR: {"pretrain": pretrain, "dpo": config_to_dict(config.dpo)},
    }
    if config.candidates > 1:
        stages[CRITICS_DIR] = {"pretrain": pretrain, "critic": config_to_dict(config.critic)}
    return stages


TORA = Method(
    name="tora",
    label="TORA",
    config_cls=ToraConfig,
    train=train_tora,
    load=load_tora,
    sees_preferences=False,
    stages=tora_stages,
)
