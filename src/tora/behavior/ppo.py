"""PPO behaviour policies: small MLPs for tasks where a linear ARS policy is not enough.

ARS (:mod:`tora.behavior.ars`) trains the shipped linear sets. On the Circle tasks of
Bullet-Safety-Gym it stalls: 60 iterations of CarCircle's reward-only root end at a return of
18 while the best constant action earns 112, and warm-starting ARS from that action reaches
116 (DSRL's R_max is 534; BENCHMARKS.md section 6). Circling needs a feedback law that a
linear map of the observation does not express well. This module trains a Gaussian MLP policy
with PPO (Schulman et al. 2017, clipped surrogate, GAE) on the scalarized reward
``w . (sign * R)``, the score ARS climbs, so the same cost-penalty grid applies.

Design choices, each for a reason:

- **Whole episodes per update.** Every update resets ``envs`` environments with seeds derived
  from ``(seed, update, env)`` and runs each to its end. Nothing of an environment outlives an
  update, so a checkpoint (networks, optimizer, observation statistics, update count) is the
  whole state and a killed run resumes *exactly*: the resumed run's parameters equal the
  uninterrupted run's (tests/behavior/test_ppo.py).
- **Fixed normalization within an update.** Observations are whitened with the running
  statistics as they were when the update began; the update's states are merged in after the
  gradient steps, so the log-probabilities the ratio compares are computed on the same inputs.
- **Time limits bootstrap, terminations do not.** An episode cut by the time limit adds
  ``gamma V(s_T)`` to its last reward; a crash adds nothing.
- **An optional alive bonus** (``alive_bonus``), added to every step's training reward, for
  tasks that end when the agent falls: a crash then forfeits the bonuses of the steps it cuts
  off. On the Drone it taught hovering, not circling (BENCHMARKS.md section 6), which is why
  that task's set is :mod:`tora.behavior.flight`'s controllers instead.
- **Optional reward scaling** (``reward_scale="return_std"``): training rewards divided by the
  running standard deviation of their discounted sums, as fixed per update as the observation
  statistics and saved with them. On MO-Hopper the unscaled value loss (targets in the
  hundreds) owns the one gradient-norm clip over both networks and the policy barely moves.
- **Deterministic behaviour policy.** :class:`MLPPolicy` acts with the Gaussian's mean, as the
  linear policies are deterministic; exploration noise for datasets is added by the collector.

File format (no pickle): ``<stem>.safetensors`` holds the mean network's weights (``net.*``),
``mean``, ``std``, ``m2`` and ``count`` of the observation statistics and the action box
``low``/``high``; ``<stem>.json`` holds ``format: "tora-mlp-policy"``, the env id, preference
weights, dimensions, hidden width and depth, free-form training info and the tensor file's
SHA-256, written last.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from tqdm.auto import tqdm

from tora.behavior.policy import (
    MLP_POLICY_FORMAT,
    RunningStat,
    policy_paths,
    read_policy_files,
    write_policy_files,
)
from tora.behavior.rollout import (
    EnvSource,
    build_env,
    derive_seed,
    episode_return,
    objective_signs,
    scalarize,
)
from tora.configs import settings_diff
from tora.errors import CheckpointError, ShapeMismatchError, ToraError
from tora.evaluate.vector import reward_vector
from tora.nn.actor_critic import ActorCritic, tanh_mlp
from tora.train.checkpoint import has_training_state, load_training_state, save_training_state

__all__ = ["MLP_POLICY_FORMAT", "MLPPolicy", "PPOConfig", "load_mlp_policy", "train_ppo"]

_VERSION = 1
_OBS_CLIP = 10.0
"""Whitened observations are clipped to +-10: one wild state must not saturate the tanh net."""


@dataclass
class PPOConfig:
    """Settings of :func:`train_ppo` (what the defaults reach on CarCircle: BENCHMARKS.md
    section 6)."""

    updates: int = 150
    """Policy updates; each collects ``envs`` whole episodes."""
    envs: int = 8
    """Episodes (environments run in lockstep) per update."""
    hidden: int = 64
    """Width of the policy and value MLPs (tanh)."""
    depth: int = 2
    """Hidden layers of each MLP."""
    lr: float = 3e-4
    """Adam step size (policy, log std and value together)."""
    epochs: int = 10
    """Passes over an update's samples."""
    minibatch: int = 256
    """Samples per gradient step."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip epsilon."""
    value_weight: float = 0.5
    """Weight of the value loss next to the policy loss."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian (state-independent, learned)."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    reward_scale: Literal["none", "return_std"] = "none"
    """How training rewards are scaled. "return_std": divided by the standard deviation of
    the discounted return the training reward sums to along each episode (a running estimate
    over every earlier update, fixed within an update). Without it the value targets of a
    MuJoCo task are in the hundreds, the value loss's gradient dwarfs the policy's, and the
    one gradient-norm clip over both shrinks the policy's step to almost nothing; with it
    the value targets are of order 1 (BENCHMARKS.md section 4)."""
    alive_bonus: float = 0.0
    """Added to every step's scalarized training reward (not to recorded returns). A positive
    bonus makes an early termination cost the bonuses it forfeits: the Drone, which ends its
    episode when it tips over and earns little before it learns to fly, needs it to learn to
    stay up before it learns to circle."""
    episode_steps: int | None = None
    """Steps per episode at most; None: the env's own time limit (required then)."""
    seed: int = 0
    """Seeds resets, action noise and minibatch order: the same seed repeats the run."""
    checkpoint_every: int = 5
    """Updates between resumable checkpoints (and one at the end)."""
    eval_episodes: int = 5
    """Deterministic episodes (the mean action) whose mean return vector is reported."""
    child_updates: int | None = None
    """In a behaviour set (:func:`tora.behavior.train.train_behavior_set`): updates of a
    policy warm-started from a finished neighbour; None: ``updates``."""
    warm_log_std: Literal["reset", "parent"] = "reset"
    """With a warm start (a set's warm-started neighbours): "reset", the Gaussian's log std
    starts at ``init_log_std``; "parent", at the warm start's final log std (saved in its
    file). A trained MO-Hopper policy ends near log std -1.9, so "reset" restarts its child
    with four times the noise; "parent" was not better there (BENCHMARKS.md section 4)."""
    target_kl: float | None = None
    """Stop an update's epochs after the first minibatch whose approximate KL divergence from
    the policy that collected the batch (the mean of old minus new log-probability) exceeds
    this; None: always run every epoch. PPO's usual guard against one update overshooting;
    it did not keep a warm-started MO-Hopper-3obj gait from collapsing (BENCHMARKS.md
    section 4), so it is off by default."""
    value_warmup: int = 0
    """With a warm start: the first ``value_warmup`` of the ``updates`` fit only the value
    network (the policy and its log std stay the warm start's), so that the first policy
    steps follow advantages from a value that has seen the task rather than from a fresh
    network. Without a warm start it does nothing."""
    chain_from: Literal["corners", "first", "ends"] = "ends"
    """In a behaviour set: which grid rows train from scratch (see
    :class:`tora.behavior.ars.ARSConfig`); the others start from their nearest finished
    neighbour's network and observation statistics."""

    def __post_init__(self) -> None:
        counts = {
            "updates": self.updates,
            "envs": self.envs,
            "hidden": self.hidden,
            "depth": self.depth,
            "epochs": self.epochs,
            "minibatch": self.minibatch,
            "checkpoint_every": self.checkpoint_every,
        }
        if self.child_updates is not None:
            counts["child_updates"] = self.child_updates
        bad = [k for k, v in counts.items() if v < 1]
        if bad:
            raise ToraError(f"PPOConfig: {', '.join(bad)} must be positive")
        if self.eval_episodes < 0 or self.value_warmup < 0:
            raise ToraError("PPOConfig: eval_episodes and value_warmup must be >= 0")
        if not (0 < self.gamma <= 1 and 0 <= self.lam <= 1 and 0 < self.clip < 1):
            raise ToraError("PPOConfig: need 0 < gamma <= 1, 0 <= lam <= 1, 0 < clip < 1")
        if not math.isfinite(self.alive_bonus):
            raise ToraError(f"PPOConfig: alive_bonus must be finite, got {self.alive_bonus}")
        if self.warm_log_std not in ("reset", "parent"):
            raise ToraError(
                f"PPOConfig: warm_log_std must be 'reset' or 'parent', got {self.warm_log_std!r}"
            )
        if self.reward_scale not in ("none", "return_std"):
            raise ToraError(
                f"PPOConfig: reward_scale must be 'none' or 'return_std', got {self.reward_scale!r}"
            )
        if self.target_kl is not None and not (
            math.isfinite(self.target_kl) and self.target_kl > 0
        ):
            raise ToraError(f"PPOConfig: target_kl must be None or > 0, got {self.target_kl}")
        if self.lr <= 0 or self.max_grad_norm <= 0 or self.value_weight < 0:
            raise ToraError("PPOConfig: lr and max_grad_norm must be > 0, value_weight >= 0")
        if self.episode_steps is not None and self.episode_steps < 1:
            raise ToraError(f"PPOConfig: episode_steps must be >= 1, got {self.episode_steps}")

    def fingerprint(self) -> dict[str, Any]:
        """Every field but the ones that only say how long to train or how often to save: a
        resumed run must keep these. ``alive_bonus``, ``reward_scale`` and ``warm_log_std``
        came later and are left out at their defaults, so checkpoints written before them
        still resume (``value_warmup`` and ``target_kl`` too)."""
        skip = {"updates", "checkpoint_every", "eval_episodes", "child_updates", "chain_from"}
        if self.value_warmup == 0:
            skip.add("value_warmup")
        if self.target_kl is None:
            skip.add("target_kl")
        if self.alive_bonus == 0.0:
            skip.add("alive_bonus")
        if self.reward_scale == "none":
            skip.add("reward_scale")
        if self.warm_log_std == "reset":
            skip.add("warm_log_std")
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class MLPPolicy:
    """``a = clip(net(clip((s - mean) / std, -10, 10)), low, high)``: a deterministic MLP
    behaviour policy (the mean of the Gaussian PPO trained)."""

    net: nn.Sequential
    obs_stat: RunningStat
    low: np.ndarray
    high: np.ndarray
    hidden: int
    depth: int
    env_id: str = ""
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    info: dict[str, Any] = field(default_factory=dict)
    log_std: np.ndarray | None = None
    """The Gaussian's log std when training ended (the action noise a warm-started neighbour
    may start from, ``PPOConfig.warm_log_std``); None in files saved before it was kept."""

    @property
    def obs_dim(self) -> int:
        return int(self.obs_stat.mean.shape[0])

    @property
    def act_dim(self) -> int:
        return int(self.low.shape[0])

    def normalize(self, obs: ArrayLike) -> torch.Tensor:
        s = np.asarray(obs, dtype=np.float64)
        if s.shape[-1:] != (self.obs_dim,) or s.ndim > 2:
            raise ShapeMismatchError(
                f"the policy takes observations of size {self.obs_dim} (or a batch (B, "
                f"{self.obs_dim})), got shape {s.shape}"
            )
        z = np.clip((s - self.obs_stat.mean) / self.obs_stat.std, -_OBS_CLIP, _OBS_CLIP)
        return torch.as_tensor(z, dtype=torch.float32)

    @torch.no_grad()
    def act(self, obs: ArrayLike) -> np.ndarray:
        """The action(s) for one observation (obs,) or a batch (B, obs), float64."""
        a = self.net(self.normalize(obs)).double().numpy()
        return np.clip(a, self.low, self.high)

    def __call__(self, obs: ArrayLike) -> np.ndarray:
        return self.act(obs)

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` then ``<stem>.json``; returns both paths."""
        tensors = {f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}
        tensors.update(
            mean=torch.as_tensor(self.obs_stat.mean),
            std=torch.as_tensor(self.obs_stat.std),
            m2=torch.as_tensor(self.obs_stat.m2),
            count=torch.tensor(int(self.obs_stat.count), dtype=torch.int64),
            low=torch.as_tensor(np.asarray(self.low, dtype=np.float64)),
            high=torch.as_tensor(np.asarray(self.high, dtype=np.float64)),
        )
        if self.log_std is not None:
            tensors["log_std"] = torch.as_tensor(np.asarray(self.log_std, dtype=np.float64))
        extra = {"hidden": self.hidden, "depth": self.depth}
        return write_policy_files(path, tensors, MLP_POLICY_FORMAT, _VERSION, self, extra)


def load_mlp_policy(path: str | os.PathLike[str]) -> MLPPolicy:
    """Load a policy saved by :meth:`MLPPolicy.save` (the stem or either file).

    Raises CheckpointError if a file is missing, corrupt, from another save, or does not fit
    the dimensions its JSON declares.
    """
    doc, tensors, tensor_path = read_policy_files(path, MLP_POLICY_FORMAT, _VERSION, "MLP")
    json_path = policy_paths(path)[1]
    try:
        obs_dim, act_dim = int(doc["obs_dim"]), int(doc["act_dim"])
        hidden, depth = int(doc["hidden"]), int(doc["depth"])
        env_id, weights, info = str(doc["env_id"]), list(doc["weights"]), dict(doc["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{json_path}: missing or malformed field: {exc}") from exc
    net = tanh_mlp(obs_dim, act_dim, hidden, depth)
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(state, strict=True)
        stat = RunningStat(
            int(tensors["count"].item()),
            tensors["mean"].double().numpy(),
            tensors["m2"].double().numpy(),
        )
        low, high = tensors["low"].double().numpy(), tensors["high"].double().numpy()
        log_std = tensors["log_std"].double().numpy() if "log_std" in tensors else None
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{tensor_path}: tensors do not fit {json_path.name}: {exc}") from exc
    if log_std is not None and (log_std.shape != (act_dim,) or not np.isfinite(log_std).all()):
        raise CheckpointError(f"{tensor_path}: log_std is not {act_dim} finite numbers")
    if stat.mean.shape != (obs_dim,) or low.shape != (act_dim,) or high.shape != (act_dim,):
        raise CheckpointError(f"{tensor_path}: statistics or action box of the wrong size")
    if not all(np.isfinite(p.detach().numpy()).all() for p in net.parameters()):
        raise CheckpointError(f"{tensor_path}: non-finite network weights")
    net.eval().requires_grad_(False)
    return MLPPolicy(
        net, stat, low, high, hidden, depth, env_id, np.asarray(weights, np.float64), info, log_std
    )


# ------------------------------------------------------------------------------- training
def _time_limit(env: gym.Env, config: PPOConfig, name: str) -> int:
    if config.episode_steps is not None:
        return int(config.episode_steps)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    limit = limit or getattr(env.unwrapped, "max_episode_steps", None)
    if not limit:
        raise ToraError(f"{name} has no time limit; set PPOConfig.episode_steps")
    return int(limit)


@dataclass
class _Batch:
    z: torch.Tensor  # (N, obs) whitened observations
    actions: torch.Tensor  # (N, act) sampled (unclipped) actions
    log_probs: torch.Tensor  # (N,)
    advantages: torch.Tensor  # (N,)
    returns: torch.Tensor  # (N,) value targets
    raw_obs: np.ndarray  # (N, obs) for the running statistics
    episode_returns: np.ndarray  # (envs, K) return vectors of the update's episodes
    discounted: np.ndarray  # (N,) discounted sums of the unscaled training reward so far


def _whiten(obs: np.ndarray, stat: RunningStat) -> torch.Tensor:
    z = np.clip((obs - stat.mean) / stat.std, -_OBS_CLIP, _OBS_CLIP)
    return torch.as_tensor(z, dtype=torch.float32)


@torch.no_grad()
def _rollout(
    model: ActorCritic,
    envs: list[gym.Env],
    stat: RunningStat,
    weights: np.ndarray,
    signs: np.ndarray | None,
    limit: int,
    config: PPOConfig,
    update: int,
    low: np.ndarray,
    high: np.ndarray,
    scale: float = 1.0,
) -> _Batch:
    """One whole episode per env under the current Gaussian, then GAE on the training
    rewards divided by ``scale``."""
    n = len(envs)
    gen = torch.Generator().manual_seed(derive_seed(config.seed, update, 0))
    obs = np.stack(
        [
            np.asarray(e.reset(seed=derive_seed(config.seed, update, 1, i))[0], np.float64)
            for i, e in enumerate(envs)
        ]
    )
    per_env: list[dict[str, list[Any]]] = [
        {"z": [], "a": [], "lp": [], "r": [], "v": [], "raw": []} for _ in range(n)
    ]
    last_value = np.zeros(n)
    totals: list[np.ndarray | None] = [None] * n
    active = np.ones(n, dtype=bool)
    for _ in range(limit):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        z = _whiten(obs[idx], stat)
        dist = model.dist(z)
        a = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen)
        lp = dist.log_prob(a).sum(-1)
        v = model.value(z).squeeze(-1)
        act = np.clip(a.double().numpy(), low, high)
        for j, i in enumerate(idx):
            nxt, reward, terminated, truncated, info = envs[i].step(act[j])
            rv = reward_vector(reward, info)
            totals[i] = rv if totals[i] is None else totals[i] + rv
            rec = per_env[i]
            rec["z"].append(z[j])
            rec["a"].append(a[j])
            rec["lp"].append(float(lp[j]))
            rec["v"].append(float(v[j]))
            rec["r"].append(float(scalarize(rv, weights, signs)) + config.alive_bonus)
            rec["raw"].append(obs[i].copy())
            obs[i] = np.asarray(nxt, np.float64)
            cut = len(rec["r"]) >= limit
            if terminated:
                active[i] = False
            elif truncated or cut:
                active[i] = False
                last_value[i] = float(model.value(_whiten(obs[i][None], stat)).squeeze())
    zs, acts, lps, advs, rets, raws, sums = [], [], [], [], [], [], []
    for i, rec in enumerate(per_env):
        unscaled, v = np.asarray(rec["r"]), np.asarray(rec["v"])
        running = 0.0
        for x in unscaled:  # what the reward-scale statistics summarize
            running = config.gamma * running + x
            sums.append(running)
        r = unscaled / scale
        nxt_v = np.append(v[1:], last_value[i])
        delta = r + config.gamma * nxt_v - v
        adv = np.zeros_like(r)
        running = 0.0
        for t in range(len(r) - 1, -1, -1):
            running = delta[t] + config.gamma * config.lam * running
            adv[t] = running
        zs += rec["z"]
        acts += rec["a"]
        lps += rec["lp"]
        advs.append(adv)
        rets.append(adv + v)
        raws += rec["raw"]
    returns = np.stack([t if t is not None else np.zeros(1) for t in totals])
    return _Batch(
        torch.stack(zs),
        torch.stack(acts),
        torch.tensor(lps, dtype=torch.float32),
        torch.as_tensor(np.concatenate(advs), dtype=torch.float32),
        torch.as_tensor(np.concatenate(rets), dtype=torch.float32),
        np.asarray(raws),
        returns,
        np.asarray(sums),
    )


def _optimize(
    model: ActorCritic,
    opt: torch.optim.Optimizer,
    batch: _Batch,
    config: PPOConfig,
    update: int,
    value_only: bool = False,
) -> dict[str, float]:
    """PPO's epochs over one update's samples; ``value_only``: the value loss alone (the
    policy's parameters get no gradient, so Adam leaves them as they are)."""
    gen = torch.Generator().manual_seed(derive_seed(config.seed, update, 2))
    adv = batch.advantages
    adv = (adv - adv.mean()) / (adv.std() + 1e-8) if adv.numel() > 1 else adv * 0
    n = adv.numel()
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "clip_frac": 0.0}
    steps = 0
    kl_limit = None if value_only else config.target_kl
    # Every epoch's minibatches in one stream (each epoch's permutation drawn when it starts),
    # so that passing the KL limit ends the update, not just the epoch.
    minibatches = (
        idx
        for _ in range(config.epochs)
        for idx in torch.randperm(n, generator=gen).split(config.minibatch)
    )
    for idx in minibatches:
        dist = model.dist(batch.z[idx])
        log_ratio = dist.log_prob(batch.actions[idx]).sum(-1) - batch.log_probs[idx]
        if kl_limit is not None and float(-log_ratio.detach().mean()) > kl_limit:
            break
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - config.clip, 1 + config.clip)
        policy_loss = -torch.min(ratio * adv[idx], clipped * adv[idx]).mean()
        value_loss = (model.value(batch.z[idx]).squeeze(-1) - batch.returns[idx]).pow(2).mean()
        loss = config.value_weight * value_loss
        if not value_only:
            loss = loss + policy_loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        stats["policy_loss"] += policy_loss.item()
        stats["value_loss"] += value_loss.item()
        stats["clip_frac"] += ((ratio.detach() - 1).abs() > config.clip).float().mean().item()
        steps += 1
    return {**{k: v / max(steps, 1) for k, v in stats.items()}, "steps": steps}


def _stat_tensors(stat: RunningStat, prefix: str = "obs") -> dict[str, torch.Tensor]:
    return {
        f"{prefix}_count": torch.tensor(int(stat.count), dtype=torch.int64),
        f"{prefix}_mean": torch.as_tensor(stat.mean),
        f"{prefix}_m2": torch.as_tensor(stat.m2),
    }


def _read_stat(tensors: dict[str, torch.Tensor], prefix: str) -> RunningStat:
    return RunningStat(
        int(tensors[f"{prefix}_count"].item()),
        tensors[f"{prefix}_mean"].double().numpy(),
        tensors[f"{prefix}_m2"].double().numpy(),
    )


def _reward_scale(returns: RunningStat, config: PPOConfig) -> float:
    """What this update divides the training rewards by (1 before any statistics)."""
    return float(returns.std[0]) if config.reward_scale == "return_std" else 1.0


def _evaluate(
    policy: MLPPolicy, env: gym.Env, episodes: int, limit: int, seed: int
) -> tuple[np.ndarray, int]:
    """Mean return vector of ``episodes`` deterministic episodes, and their steps."""
    runs = [
        episode_return(env, policy.act, derive_seed(seed, 10**6, e), limit) for e in range(episodes)
    ]
    return np.mean(np.stack([r for r, _ in runs]), axis=0), sum(n for _, n in runs)


def train_ppo(
    env: EnvSource,
    weights: ArrayLike,
    config: PPOConfig,
    *,
    init: MLPPolicy | None = None,
    state_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    desc: str = "PPO",
) -> MLPPolicy:
    """Train one MLP policy for preference ``weights`` with PPO; return it evaluated.

    Args:
        env: env id or factory; rewards may be vectors (``info["reward_vector"]`` or the
            reward itself) or scalars.
        weights: (K,) preference; an episode step scores ``w . (sign * r)``, sign -1 for
            objectives the env minimizes (a cost).
        config: the settings.
        init: a warm start: its mean network and observation statistics are copied (the
            value network starts afresh, and the log std too unless ``warm_log_std`` is
            "parent"); it must have ``config``'s width and depth.
        state_path: a directory for resumable state: loaded if it holds one (its settings
            must match ``config.fingerprint()``), rewritten every ``checkpoint_every``
            updates and at the end. Running again with more ``updates`` continues the run.
        progress: a progress bar with the mean scalarized return of each update.
        desc: the bar's label.

    Returns:
        The deterministic policy; ``info`` holds updates, env_steps, seconds, the mean return
        vector of ``eval_episodes`` deterministic episodes (``return_vector``), its
        ``scalarized_return`` and the per-update ``history`` of mean scalarized returns.
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if not np.isfinite(w).all():
        raise ToraError(f"preference weights must be finite, got {w.tolist()}")
    name = env if isinstance(env, str) else "the env"
    signs = objective_signs(env)
    envs = [build_env(env) for _ in range(config.envs)]
    try:
        space = envs[0].action_space
        if not isinstance(space, gym.spaces.Box) or envs[0].observation_space.shape is None:
            raise ShapeMismatchError(f"{name}: PPO policies need Box spaces, got {space}")
        obs_dim = int(np.prod(envs[0].observation_space.shape))
        low = np.asarray(space.low, np.float64).reshape(-1)
        high = np.asarray(space.high, np.float64).reshape(-1)
        limit = _time_limit(envs[0], config, str(name))
        # The networks' initial weights, seeded without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, 3))
            model = ActorCritic(obs_dim, low.size, config.hidden, config.depth, config.init_log_std)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        stat = RunningStat.zeros(obs_dim)
        returns_stat = RunningStat.zeros(1)  # of the discounted training returns
        if init is not None:
            if (init.obs_dim, init.act_dim, init.hidden, init.depth) != (
                obs_dim,
                low.size,
                config.hidden,
                config.depth,
            ):
                raise ShapeMismatchError(
                    f"warm start has dims ({init.obs_dim}, {init.act_dim}), width {init.hidden} "
                    f"and depth {init.depth}; {name} and the config need ({obs_dim}, "
                    f"{low.size}), {config.hidden} and {config.depth}"
                )
            model.net.load_state_dict(init.net.state_dict())
            stat = init.obs_stat.copy()
            if config.warm_log_std == "parent":
                if init.log_std is None:
                    raise ToraError(
                        "warm_log_std='parent' needs the warm start's log std, and its file "
                        "has none (saved before it was kept); use warm_log_std='reset'"
                    )
                with torch.no_grad():
                    model.log_std.copy_(torch.as_tensor(init.log_std, dtype=torch.float32))
        update, env_steps, seconds = 0, 0, 0.0
        history: list[float] = []
        fingerprint = {**config.fingerprint(), "weights": w.tolist()}
        if state_path is not None and has_training_state(state_path):
            state = load_training_state(state_path, model, opt)
            saved = state["extra_json"]
            if saved.get("fingerprint") != fingerprint:
                changed = "; ".join(settings_diff(saved.get("fingerprint"), fingerprint))
                raise CheckpointError(
                    f"{state_path}: saved with other settings ({changed}); "
                    "use another directory or the same settings"
                )
            t = state["extra_tensors"]
            stat = _read_stat(t, "obs")
            if config.reward_scale != "none":
                returns_stat = _read_stat(t, "return")
            update, env_steps = int(state["step"]), int(saved["env_steps"])
            seconds, history = float(saved["seconds"]), list(saved["history"])

        def checkpoint() -> None:
            if state_path is not None:
                save_training_state(
                    state_path,
                    step=update,
                    model=model,
                    optimizer=opt,
                    ema=None,
                    extra_tensors={
                        **_stat_tensors(stat),
                        **(
                            _stat_tensors(returns_stat, "return")
                            if config.reward_scale != "none"
                            else {}
                        ),
                    },
                    extra_json={
                        "fingerprint": fingerprint,
                        "env_steps": env_steps,
                        "seconds": seconds,
                        "history": history,
                    },
                )

        bar = tqdm(total=config.updates, initial=update, desc=desc, disable=not progress)
        while update < config.updates:
            start = time.perf_counter()
            scale = _reward_scale(returns_stat, config)
            batch = _rollout(model, envs, stat, w, signs, limit, config, update, low, high, scale)
            value_only = init is not None and update < config.value_warmup
            _optimize(model, opt, batch, config, update, value_only)
            stat = stat.merge(RunningStat.from_batch(batch.raw_obs))
            returns_stat = returns_stat.merge(RunningStat.from_batch(batch.discounted[:, None]))
            update += 1
            env_steps += int(batch.raw_obs.shape[0])
            history.append(float(scalarize(batch.episode_returns, w, signs).mean()))
            seconds += time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(ret=f"{history[-1]:.1f}")
            if update % config.checkpoint_every == 0 or update == config.updates:
                checkpoint()
        bar.close()
        if state_path is not None and update == 0:
            checkpoint()
        model.eval()
        net = model.net.requires_grad_(False)
        env_id = env if isinstance(env, str) else ""
        policy = MLPPolicy(net, stat.copy(), low, high, config.hidden, config.depth, env_id, w)
        policy.log_std = model.log_std.detach().double().numpy().copy()
        info: dict[str, Any] = {
            "algorithm": "ppo",
            "updates": update,
            "eval_steps": 0,
            "env_steps": env_steps,
            "seconds": seconds,
            "history": history,
        }
        if config.eval_episodes:
            rv, info["eval_steps"] = _evaluate(
                policy, envs[0], config.eval_episodes, limit, config.seed
            )
            info["return_vector"] = rv.tolist()
            info["scalarized_return"] = float(scalarize(rv, w, signs))
        policy.info = info
        return policy
    finally:
        for e in envs:
            e.close()
