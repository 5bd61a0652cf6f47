"""Batched evaluation rollouts: every (preference, episode) pair advances in lockstep.

One policy call per environment step serves the whole sweep: row b of the observation batch
comes with row b of the weight batch. Environments that finish drop out of the batch; the
loop ends when all have finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from tora.errors import ShapeMismatchError

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(observations (B, obs_dim), weights (B, K)) -> actions (B, act_dim)."""


def reward_vector(reward: Any, info: Mapping[str, Any]) -> np.ndarray:
    """The per-objective reward of one step, whatever the env's convention.

    ``info["reward_vector"]`` first (tora-rl's envs), then a vector ``reward``
    (mo-gymnasium), then a scalar reward with ``info["cost"]`` (safety envs: [reward, cost]),
    then a plain scalar reward.
    """
    if "reward_vector" in info:
        return np.asarray(info["reward_vector"], dtype=np.float64).reshape(-1)
    r = np.asarray(reward, dtype=np.float64).reshape(-1)
    if r.size == 1 and "cost" in info:
        return np.array([r[0], float(info["cost"])])
    return r


@dataclass
class SweepResult:
    """Returns of a preference sweep.

    weights: (n, K) preference rows; returns: (n, E, R) per preference, episode and reward
    objective (R may differ from K when only some objective models are loaded);
    lengths: (n, E) episode lengths.
    """

    weights: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    objective_names: list[str]
    env_id: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_returns(self) -> np.ndarray:
        """(n, R) mean return per preference over its episodes (the D4MORL protocol)."""
        return self.returns.mean(axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "seed": self.seed,
            "objectives": self.objective_names,
            "weights": self.weights.tolist(),
            "returns": self.returns.tolist(),
            "mean_returns": self.mean_returns.tolist(),
            "lengths": self.lengths.tolist(),
            **self.meta,
        }


def rollout_sweep(
    policy: Policy,
    make_env: Callable[[], gym.Env],
    weights: np.ndarray,
    episodes: int,
    seed: int,
    env_id: str = "",
    objective_names: Sequence[str] | None = None,
    max_steps: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run ``episodes`` episodes for every weight row; env j is reset with seed ``seed + j``.

    Episode e of every preference uses the same start seed, so preferences are compared on
    the same starting states.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n = weights.shape[0]
    envs = [make_env() for _ in range(n * episodes)]
    w_rows = np.repeat(weights, episodes, axis=0)
    obs = np.stack([env.reset(seed=seed + (j % episodes))[0] for j, env in enumerate(envs)])
    obs = obs.astype(np.float32)
    active = np.ones(len(envs), dtype=bool)
    totals: np.ndarray | None = None
    lengths = np.zeros(len(envs), dtype=np.int64)
    limit = max_steps or getattr(envs[0].spec, "max_episode_steps", None) or 10**9
    bar = tqdm(
        desc=f"evaluate {n} preferences x {episodes} episodes",
        total=None if limit == 10**9 else limit,
        disable=not progress,
    )
    step = 0
    while active.any() and step < limit:
        idx = np.flatnonzero(active)
        actions = np.asarray(policy(obs[idx], w_rows[idx]))
        if actions.shape[0] != idx.size:
            raise ShapeMismatchError(
                f"policy returned {actions.shape[0]} actions for {idx.size} observations"
            )
        for row, j in enumerate(idx):
            next_obs, reward, terminated, truncated, info = envs[j].step(actions[row])
            r = reward_vector(reward, info)
            if totals is None:
                totals = np.zeros((len(envs), r.size))
            totals[j] += r
            lengths[j] += 1
            obs[j] = next_obs
            if terminated or truncated:
                active[j] = False
        step += 1
        bar.update(1)
    bar.close()
    for env in envs:
        env.close()
    assert totals is not None
    k = totals.shape[1]
    names = list(objective_names) if objective_names else [f"objective_{i}" for i in range(k)]
    return SweepResult(
        weights=weights,
        returns=totals.reshape(n, episodes, k),
        lengths=lengths.reshape(n, episodes),
        objective_names=names,
        env_id=env_id,
        seed=seed,
    )
