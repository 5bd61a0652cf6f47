"""Training the inverse dynamics model a_t = f(s_t, s_{t+m}) on the offline data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tora.data.normalize import Normalizer
from tora.data.trajectories import Trajectories
from tora.data.windows import WindowSpec
from tora.nn.inverse_dynamics import InverseDynamics, InverseDynamicsConfig
from tora.train.loop import OptimConfig, run_identity, train_and_save
from tora.train.losses import inverse_dynamics_loss
from tora.train.pretrain import window_tensors


@dataclass
class InverseDynamicsTrainConfig:
    """Settings of inverse-dynamics training."""

    steps: int = 10000
    """Gradient steps."""
    batch_size: int = 256
    """Transitions per gradient step."""
    seed: int = 0
    """Seed of initialization and batches."""
    network: InverseDynamicsConfig = field(default_factory=InverseDynamicsConfig)
    """Network architecture."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, ema_decay=0.0))
    """Optimizer and checkpointing."""


def train_inverse_dynamics(
    traj: Trajectories,
    out_dir: Path,
    config: InverseDynamicsTrainConfig,
    normalizer: Normalizer,
    stride: int = 1,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> Path:
    """Fit f on every (s_t, s_{t+m}, a_t) of ``traj``, m = ``stride`` (the planner's stride);
    states are normalized with the planner's ``normalizer``. Earlier training in ``out_dir``
    on other data, stride or settings is refused; ``restart`` moves it aside."""
    device = torch.device(device)
    out_dir = Path(out_dir)
    states, rows = window_tensors(traj, WindowSpec(2, stride), normalizer, device)
    actions = torch.as_tensor(traj.actions, device=device)
    # The data's own action range bounds the output: finite even when the env's box is not.
    low, high = traj.actions.min(0), traj.actions.max(0)
    high = high + (high <= low) * 1e-6  # a constant action dimension still needs a range
    torch.manual_seed(config.seed)
    model = InverseDynamics(
        traj.obs_dim, traj.act_dim, torch.as_tensor(low), torch.as_tensor(high), config.network
    ).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        batch = torch.randint(
            rows.shape[0], (config.batch_size,), generator=generator, device=device
        )
        pair = states[rows[batch]]
        return inverse_dynamics_loss(model(pair[:, 0], pair[:, 1]), actions[batch])

    train_and_save(
        desc="train inverse dynamics",
        model=model,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": "inverse_dynamics",
            "obs_dim": traj.obs_dim,
            "act_dim": traj.act_dim,
            "stride": stride,
            "action_low": low.tolist(),
            "action_high": high.tolist(),
            "network": asdict(config.network),
            "normalizer": normalizer.to_dict(),
            "train": asdict(config),
        },
        progress=progress,
        # The normalizer is fitted on the data, so the data's fingerprint stands for it too.
        identity=run_identity(config, data_sha256=traj.fingerprint(), stride=stride),
        restart=restart,
    )
    return out_dir
