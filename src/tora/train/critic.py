"""Value critics, one per objective, fitted offline on Monte Carlo returns (issue 17, item 3).

V_k(s) estimates the discounted return of objective k from state s under the behaviour that
made the data: a plain regression of every recorded state on the discounted sum of the
rewards that followed it in its episode, with no preference, no bootstrap and no policy
improvement. The agent uses the critics to rank candidate plans by sum_k w_k V_k(last planned
state) (:class:`~tora.planning.agent.Agent`, ``candidates > 1``).

What the data gives, and what it does not:

* an episode that ends in a *terminal* (a fall) has nothing after it, so its returns are
  exact, and the state reached at the terminal is added with value 0;
* an episode cut by a *timeout* (or simply where the recording stops) has an unknown tail:
  its returns stop at the cut, so states near the end are credited with fewer rewards than
  their true discounted return. Nothing is bootstrapped to fill the tail: a critic fitted on
  its own predictions would feed its extrapolation back into its targets. With gamma 0.99
  the missing part is gamma^n of the value n steps before the cut, so it matters mostly
  within the last ~1 / (1 - gamma) steps of each episode.

The critic reads the planner's normalized state (the reference planner's normalizer), since
it scores planned states in that space; that normalizer's source, the reference weights'
hash, is part of the run's identity, and the critic is refused by a run whose reference has
changed. Each critic is a directory ``RUN/critics/<objective>/`` of its own, so adding one
touches no other file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from tora.data.trajectories import Trajectories
from tora.errors import DataError, ShapeMismatchError
from tora.nn.critics import ValueCritic, ValueCriticConfig
from tora.train.loop import OptimConfig, run_identity, train_and_save
from tora.train.losses import value_regression_loss
from tora.train.planner_io import (
    CRITIC_KIND,
    CRITICS_DIR,
    REFERENCE_DIR,
    load_planner,
    reference_hash,
)

MIN_TARGET_STD = 1e-6
"""Floor on the target's std: a constant objective must not divide by zero."""
_HELD_OUT_CAP = 65536
"""At most this many held-out states are measured (a fixed subset), so a measurement stays
cheap on large datasets."""


@dataclass
class ValueCriticTrainConfig:
    """Settings of value-critic training, one critic per objective."""

    steps: int = 5000
    """Gradient steps."""
    batch_size: int = 256
    """States per gradient step."""
    gamma: float = 0.99
    """Discount of the Monte Carlo return the critic predicts."""
    held_out: float = 0.1
    """Fraction of episodes left out of training to measure the fit on (history.json,
    val_explained_variance: the R^2 on states the critic never saw; 0: none)."""
    evaluate_every: int = 1000
    """Steps between held-out measurements (0: only at the start and the end)."""
    seed: int = 0
    """Seed of the held-out split, initialization and batches."""
    network: ValueCriticConfig = field(default_factory=ValueCriticConfig)
    """Network architecture."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, ema_decay=0.0, checkpoint_every=1000)
    )
    """Optimizer and checkpointing."""


def discounted_returns_to_go(traj: Trajectories, gamma: float) -> np.ndarray:
    """(T, K) float64: G_t = sum_i gamma^i r_{t+i} over the rest of t's episode.

    The sum stops at the episode's end whatever ended it (see the module docstring on
    timeouts)."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    out = traj.rewards.astype(np.float64)
    lengths = traj.episode_lengths
    position = np.arange(traj.num_transitions) - np.repeat(traj.episode_bounds[:-1], lengths)
    has_next = position < np.repeat(lengths, lengths) - 1
    # One vectorized update per position, from the latest back: G_t = r_t + gamma G_{t+1}
    # across all episodes at once (a Python loop over transitions would take seconds on
    # D4MORL-sized data).
    order = np.argsort(position, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(position))[:-1])
    for idx in reversed(groups):
        idx = idx[has_next[idx]]
        out[idx] += gamma * out[idx + 1]
    return out


def critic_samples(
    traj: Trajectories, returns: np.ndarray, episodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(states (N, D), targets (N,)) of the given episodes for one objective: every recorded
    state with its discounted return-to-go (``returns``, (T,), one column of
    :func:`discounted_returns_to_go`), plus the state reached at each terminal with 0
    (nothing follows it)."""
    rows = np.concatenate([np.arange(*traj.episode_bounds[i : i + 2]) for i in episodes])
    terminal = rows[traj.terminals[rows]]
    states = np.concatenate([traj.observations[rows], traj.next_observations[terminal]])
    targets = np.concatenate([returns[rows], np.zeros(terminal.size)])
    return states, targets


def split_episodes(num_episodes: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training episodes, held-out episodes), a seeded split; sorted indices."""
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out must lie in [0, 1), got {held_out}")
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_held = int(held_out * num_episodes)
    if n_held == num_episodes:
        n_held = 0
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def train_value_critic(
    run_dir: Path,
    traj: Trajectories,
    objective: str,
    config: ValueCriticTrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> Path:
    """Fit V for ``objective`` on ``traj``; writes ``run_dir/critics/<objective>/`` and
    resumes there if interrupted.

    States are normalized with the reference planner's normalizer (``run_dir/reference``).
    Earlier training there from other data, another reference or other settings is refused
    (:class:`~tora.errors.StaleRunError`); ``restart`` moves it aside and starts over."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    k = traj.objective_index(objective)  # clear error listing the dataset's objectives
    ref_sha256 = reference_hash(run_dir)  # first: says to pretrain if there is no reference
    _, spec, _ = load_planner(run_dir / REFERENCE_DIR, "cpu")
    if spec.obs_dim != traj.obs_dim:
        raise ShapeMismatchError(
            f"dataset observations have {traj.obs_dim} dims but the reference planner in "
            f"{run_dir} was trained on {spec.obs_dim}: use the dataset it was pretrained on"
        )
    train_eps, held_eps = split_episodes(traj.num_episodes, config.held_out, config.seed)
    returns = discounted_returns_to_go(traj, config.gamma)[:, k]
    states_np, targets_np = critic_samples(traj, returns, train_eps)
    if targets_np.size < 2:
        raise DataError(f"{targets_np.size} training state(s) for the critic; need at least 2")
    mean = float(targets_np.mean())
    std = max(float(targets_np.std()), MIN_TARGET_STD)

    def tensors(states: np.ndarray, targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        s = spec.normalizer.normalize(torch.as_tensor(states, device=device))
        z = torch.as_tensor((targets - mean) / std, dtype=torch.float32, device=device)
        return s, z

    states, targets = tensors(states_np, targets_np)
    torch.manual_seed(config.seed)
    model = ValueCritic(traj.obs_dim, mean, std, config.network).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        batch = torch.randint(
            targets.numel(), (config.batch_size,), generator=generator, device=device
        )
        return value_regression_loss(model.standardized(states[batch]), targets[batch])

    evaluate: Callable[[], dict[str, float]] | None = None
    held_count = 0
    if held_eps.size:
        held_states, held_targets = critic_samples(traj, returns, held_eps)
        # A fixed subset, chosen without the run's generator: measuring draws nothing from it.
        keep = np.random.default_rng(config.seed).permutation(held_targets.size)[:_HELD_OUT_CAP]
        val_s, val_z = tensors(held_states[keep], held_targets[keep])
        held_count = int(held_targets.size)

        def measure() -> dict[str, float]:
            _, stats = value_regression_loss(model.standardized(val_s), val_z)
            return stats

        evaluate = measure

    out_dir = run_dir / CRITICS_DIR / objective
    train_and_save(
        desc=f"value critic '{objective}'",
        model=model,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": CRITIC_KIND,
            "objective": objective,
            "direction": traj.objectives[k].direction.value,
            "gamma": config.gamma,
            "obs_dim": traj.obs_dim,
            "network": asdict(config.network),
            "target_mean": mean,
            "target_std": std,
            "reference_sha256": ref_sha256,
            "env_id": traj.metadata.get("env_id"),
            "samples": {"train": int(targets_np.size), "held_out": held_count},
            "train": asdict(config),
        },
        progress=progress,
        # The reference's hash stands for the normalizer the critic's inputs go through.
        identity=run_identity(
            config,
            objective=objective,
            data_sha256=traj.fingerprint(),
            reference_sha256=ref_sha256,
        ),
        restart=restart,
        evaluate=evaluate,
        evaluate_every=config.evaluate_every,
    )
    return out_dir
