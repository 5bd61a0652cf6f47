"""SafeDash: a toy reward/cost task whose safe optimum is known in closed form.

A runner picks a throttle u in [0, 1] every step (action a in [-1, 1], u = (a + 1) / 2). It
earns reward u and pays cost ``COST_SLOPE * max(0, u - LIMIT)``: everything above the limit
costs. Over ``EPISODE_STEPS`` steps a constant throttle u earns ``T u`` and costs
``T * COST_SLOPE * max(0, u - LIMIT)``, so under a budget kappa the best constant throttle is
``LIMIT + kappa / (T * COST_SLOPE)``. With :func:`throttle_policy` (throttle = w_r) the best
safe weight is known too, which is what the selector and controller tests check.

Observation (2,): ``[u of the previous step, fraction of the episode elapsed]``. The reward
vector ``[reward, cost]`` is returned by ``step`` and in ``info["reward_vector"]``, with
``info["cost"]`` as the safety envs report it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tora.data.trajectories import Direction, Objective, Trajectories
from tora.evaluate.safe import DSRLReference

SAFE_DASH_ID = "tora/SafeDash-v0"
EPISODE_STEPS = 20
LIMIT = 0.5
"""Throttle above which every step costs."""
COST_SLOPE = 2.0
"""Cost per step per unit of throttle above the limit (full throttle costs 1 per step)."""

REFERENCE = DSRLReference(
    reward_max=float(EPISODE_STEPS), reward_min=0.0, max_cost=10.0, episode_steps=EPISODE_STEPS
)
"""Normalization of SafeDash in DSRL's terms: full throttle scores 1, standing still 0."""


class SafeDashEnv(gym.Env[np.ndarray, np.ndarray]):
    """Reward for throttle, cost for throttle above a limit; see the module docstring."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)
    reward_names = ("reward", "cost")
    reward_directions = (Direction.MAXIMIZE, Direction.MINIMIZE)

    def __init__(self, max_episode_steps: int = EPISODE_STEPS) -> None:
        self.max_episode_steps = int(max_episode_steps)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._u = 0.0
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self._u, self._t / self.max_episode_steps], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._u = float(self.np_random.uniform(0.0, 0.1))
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        self._u = (a + 1.0) / 2.0
        self._t += 1
        cost = COST_SLOPE * max(0.0, self._u - LIMIT)
        reward = np.array([self._u, cost], dtype=np.float64)
        truncated = self._t >= self.max_episode_steps
        return self._obs(), reward, False, truncated, {"reward_vector": reward, "cost": cost}


def throttle_policy(obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A scripted SafeDash policy: throttle = w_r (row by row), so weights map to behaviour
    exactly and the best safe weight under a budget is known."""
    w = np.atleast_2d(weights)
    return (2.0 * w[:, :1] - 1.0).astype(np.float32)


def collect_toy(episodes: int, seed: int) -> Trajectories:
    """A SafeDash dataset: each episode holds one throttle drawn from U(0, 1), with Gaussian
    noise (std 0.05) on every step, so episode costs run from 0 to about 10. Seeded."""
    rng = np.random.default_rng(seed)
    env = SafeDashEnv()
    out = []
    for e in range(episodes):
        u = rng.uniform(0.0, 1.0)
        obs, _ = env.reset(seed=int(seed) * 100_003 + e)
        rows: dict[str, list[Any]] = {k: [] for k in ("obs", "act", "rew", "next")}
        done = False
        while not done:
            a = np.clip(2.0 * (u + rng.normal(0.0, 0.05)) - 1.0, -1.0, 1.0)
            action = np.array([a], dtype=np.float32)
            nxt, r, term, trunc, _ = env.step(action)
            rows["obs"].append(obs)
            rows["act"].append(action)
            rows["rew"].append(r)
            rows["next"].append(nxt)
            obs, done = nxt, term or trunc
        n = len(rows["act"])
        out.append(
            {
                "observations": np.asarray(rows["obs"], np.float32),
                "actions": np.asarray(rows["act"], np.float32),
                "rewards": np.asarray(rows["rew"], np.float32),
                "next_observations": np.asarray(rows["next"], np.float32),
                "timeouts": np.arange(n) == n - 1,
            }
        )
    objectives = (
        Objective("reward", Direction.MAXIMIZE),
        Objective("cost", Direction.MINIMIZE),
    )
    return Trajectories.from_episodes(out, objectives, {"env_id": SAFE_DASH_ID})
