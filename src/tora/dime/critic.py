"""The task critic of offline DiME and LS: Implicit Q-Learning (IQL) on the dataset.

The offline case study of the DiME paper (seeds/003, Sec. 5.2 and 6.2) trades off two
objectives, the task return, through a critic learned from the dataset, and staying close to
the data. This module learns that critic with IQL (Kostrikov, Nair & Levine, "Offline
Reinforcement Learning with Implicit Q-Learning", ICLR 2022), for one scalar reward.

Why IQL and not the paper's critic. The paper evaluates the current policy with a
distributional C51 critic and 5-step bootstrap targets (App. C, Table 3), whose targets query
``Q`` at the policy's actions in the next state. Offline, those actions may lie where the data
has none, and the bootstrap then feeds the critic its own extrapolation errors. IQL never
evaluates ``Q`` at an action outside the dataset during training:

* ``V(s)`` is fitted to an upper expectile of ``Q(s, a)`` over the dataset's actions,
  ``L_V = E_D[ |tau - 1(u < 0)| u^2 ]``, ``u = min_j Q'_j(s, a) - V(s)`` (``Q'`` the target
  twins): ``tau = 0.5`` gives the behaviour policy's value, ``tau -> 1`` the value of the
  best action the data supports;
* ``Q`` is fitted by one-step TD to the dataset's next state through ``V``:
  ``L_Q = E_D[ sum_j (r + gamma (1 - d) V(s') - Q_j(s, a))^2 ]``, with ``d`` the terminal
  flag (a timeout is not a terminal: the episode was cut, the state still has a future);
* the target twins track the online ones by Polyak averaging, ``Q' <- (1 - lambda) Q' +
  lambda Q``.

The critic does not depend on the policy, so it is trained once per dataset, before any
policy, and every LS / DiME policy (every trade-off, every variant) reuses it. That also
removes the paper's need for a trade-off-conditioned critic for the "multi" policies (App. A):
IQL's ``Q`` is not the value of any one trained policy. The price is that ``Q`` is reliable
only near the data; DiME's improvement step queries it at actions sampled from the policy,
which stays near the data through its KL bound and its behaviour-cloning term.

The scalar task reward of a multi-objective dataset is a fixed scalarization,
``r = sum_k w_k sign_k r_k`` with ``w`` on the simplex (default: equal weights; a one-hot
``w`` picks one objective) and ``sign_k = -1`` for an objective to minimize (a cost), times
``reward_scale``. Defaults follow IQL's MuJoCo settings (expectile 0.7, discount 0.99, Polyak
rate 0.005, two hidden layers of 256) and the DiME paper's discount (0.99, Table 3).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tora.configs import config_to_dict
from tora.data.normalize import Normalizer
from tora.data.trajectories import Objective, Trajectories
from tora.device import resolve_device
from tora.errors import CheckpointError, ToraError
from tora.nn.dime import Critic
from tora.preferences import validate_weights
from tora.train.checkpoint import load_state_into, read_config
from tora.train.loop import OptimConfig, train_and_save
from tora.train.losses.iql import critic_loss, td_targets

__all__ = [
    "CRITIC_KIND",
    "CriticConfig",
    "LoadedCritic",
    "data_fingerprint",
    "load_critic",
    "task_rewards",
    "train_critic",
]

Stats = dict[str, float]

CRITIC_KIND = "dime_critic"
"""The ``kind`` recorded in a critic directory's config.json."""


@dataclass
class CriticConfig:
    """How the IQL task critic is learned from the dataset."""

    hidden_dim: int = 256
    """Width of the hidden layers of Q and V (IQL uses 256)."""
    depth: int = 2
    """Number of hidden layers of Q and V (IQL uses 2)."""
    steps: int = 20000
    """Gradient steps (IQL trains 1M; a small dataset and a CPU need far fewer)."""
    batch_size: int = 256
    """Transitions per gradient step, drawn uniformly with replacement."""
    discount: float = 0.99
    """Discount gamma of the task return (the DiME paper's 0.99, Table 3)."""
    expectile: float = 0.7
    """Expectile tau of V's loss: 0.5 evaluates the behaviour policy, values towards 1
    approach the best action the data supports (IQL uses 0.7 for MuJoCo locomotion)."""
    target_rate: float = 0.005
    """Polyak rate lambda of the target twins (IQL's 0.005)."""
    task_weights: list[float] | None = None
    """Scalarization of a multi-objective dataset's rewards into the task reward, one weight
    per objective, summing to 1 (none: equal weights; one-hot: one objective). Costs count
    negatively."""
    reward_scale: float = 1.0
    """Factor on the task reward. LS's trade-off and DiME (AWBC)'s prior weights exp(A)
    depend on the reward's units; DiME (BC)'s do not."""
    seed: int = 0
    """Seed of the initialization and of the batches."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(ema_decay=0.0))
    """Optimizer and checkpointing of Q and V (no EMA: the target twins already average)."""

    def __post_init__(self) -> None:
        if not 0 < self.expectile < 1:
            raise ToraError(f"expectile must lie in (0, 1), got {self.expectile}")
        if not 0 <= self.discount < 1:
            raise ToraError(f"discount must lie in [0, 1), got {self.discount}")
        if not 0 < self.target_rate <= 1:
            raise ToraError(f"target_rate must lie in (0, 1], got {self.target_rate}")
        if self.steps < 1 or self.batch_size < 1:
            raise ToraError("steps and batch_size must be at least 1")


def task_rewards(
    traj: Trajectories, weights: list[float] | None = None, scale: float = 1.0
) -> np.ndarray:
    """``(T,)`` scalar task reward ``scale * sum_k w_k sign_k r_k`` (see the module docstring).

    ``weights``: a preference over the dataset's objectives (validated like every preference
    of the project: finite, non-negative, summing to 1); None gives equal weights.
    """
    k = traj.num_objectives
    w = (
        np.full(k, 1.0 / k)
        if weights is None
        else validate_weights(weights, k, traj.objective_names)[0]
    )
    signs = np.array([o.sign for o in traj.objectives])
    return (scale * traj.rewards.astype(np.float64) @ (w * signs)).astype(np.float32)


def data_fingerprint(traj: Trajectories) -> str:
    """Hex SHA-256 of the arrays a critic and its policies learn from: a policy is trained
    only with a critic of the very same data."""
    digest = hashlib.sha256()
    for name in ("observations", "actions", "rewards", "next_observations", "terminals"):
        digest.update(np.ascontiguousarray(getattr(traj, name)).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- training


def _device(device: torch.device | str) -> torch.device:
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def train_critic(
    dataset: Trajectories,
    out_dir: Path,
    config: CriticConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Learn the IQL critic of ``dataset``'s task reward into ``out_dir`` (resumable).

    The directory holds ``model.safetensors`` (online and target twins, V), ``config.json``
    (kind, sizes, observation normalizer, task weights, the data's fingerprint and the
    settings), ``history.json`` and, while training, ``train_state/``.
    """
    config = CriticConfig() if config is None else config
    dev = _device(device)
    out_dir = Path(out_dir)
    raw_rewards = task_rewards(dataset, config.task_weights)
    rewards_np = config.reward_scale * raw_rewards
    normalizer = Normalizer.fit(dataset.observations)
    obs = normalizer.normalize(torch.as_tensor(dataset.observations, device=dev))
    next_obs = normalizer.normalize(torch.as_tensor(dataset.next_observations, device=dev))
    actions = torch.as_tensor(dataset.actions, device=dev)
    rewards = torch.as_tensor(rewards_np, device=dev)
    terminals = torch.as_tensor(dataset.terminals, device=dev)

    torch.manual_seed(config.seed)
    critic = Critic(dataset.obs_dim, dataset.act_dim, config.hidden_dim, config.depth).to(dev)
    generator = torch.Generator(device=dev).manual_seed(config.seed)
    n = dataset.num_transitions

    def step_fn() -> tuple[torch.Tensor, Stats]:
        # The target follows the weights of the previous optimizer step: a one-step lag that
        # keeps the whole update inside step_fn.
        critic.update_target(config.target_rate)
        idx = torch.randint(n, (config.batch_size,), generator=generator, device=dev)
        s, a = obs[idx], actions[idx]
        with torch.no_grad():
            targets = td_targets(
                rewards[idx], terminals[idx], critic.value(next_obs[idx]), config.discount
            )
            target_q = critic.target_q(s, a)
        return critic_loss(
            critic.q_values(s, a), targets, target_q, critic.value(s), config.expectile
        )

    weights = config.task_weights
    train_and_save(
        desc="train DiME critic (IQL)",
        model=critic,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": CRITIC_KIND,
            "obs_dim": dataset.obs_dim,
            "act_dim": dataset.act_dim,
            "objectives": [o.to_dict() for o in dataset.objectives],
            "task_weights": None if weights is None else [float(w) for w in weights],
            "normalizer": normalizer.to_dict(),
            "data_fingerprint": data_fingerprint(dataset),
            "env_id": dataset.metadata.get("env_id"),
            # In reward units, without reward_scale: comparable with evaluation returns.
            "task_return_mean": float(
                np.add.reduceat(raw_rewards, dataset.episode_bounds[:-1]).mean()
            ),
            "train": config_to_dict(config),
        },
        progress=progress,
    )
    return out_dir


@dataclass(frozen=True)
class LoadedCritic:
    """A trained critic with what is needed to use it."""

    critic: Critic
    """The networks, in eval mode, gradients off."""
    normalizer: Normalizer
    """The observation normalizer the critic (and its policies) read through."""
    objectives: tuple[Objective, ...]
    """The dataset's objectives."""
    task_weights: np.ndarray
    """``(K,)`` the scalarization of the task reward (equal weights when none was given)."""
    config: dict[str, Any]
    """The saved config.json."""

    @torch.no_grad()
    def advantages(
        self, obs: torch.Tensor, actions: torch.Tensor, chunk: int = 8192
    ) -> torch.Tensor:
        """``A(s, a) = min_j Q'_j(s, a) - V(s)`` ``(T,)`` of normalized observations and
        actions, in chunks (a whole dataset at once)."""
        parts = [
            self.critic.target_q(obs[i : i + chunk], actions[i : i + chunk])
            - self.critic.value(obs[i : i + chunk])
            for i in range(0, obs.shape[0], chunk)
        ]
        return torch.cat(parts)


def load_critic(out_dir: Path, device: torch.device | str = "cpu") -> LoadedCritic:
    """Load a critic trained by :func:`train_critic`; CheckpointError if it is not one."""
    out_dir = Path(out_dir)
    config = read_config(out_dir)
    if config.get("kind") != CRITIC_KIND:
        raise CheckpointError(f"{out_dir} holds a {config.get('kind')!r} model, not a DiME critic")
    try:
        train = config["train"]
        critic = Critic(
            int(config["obs_dim"]),
            int(config["act_dim"]),
            int(train["hidden_dim"]),
            int(train["depth"]),
        )
        normalizer = Normalizer.from_dict(config["normalizer"])
        objectives = tuple(Objective.from_dict(o) for o in config["objectives"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{out_dir}/config.json is missing or has a bad entry: {exc}"
        ) from exc
    load_state_into(out_dir, critic)
    critic = critic.to(_device(device)).eval().requires_grad_(False)
    k = len(objectives)
    weights = config.get("task_weights")
    task_weights = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
    return LoadedCritic(critic, normalizer, objectives, task_weights, config)
