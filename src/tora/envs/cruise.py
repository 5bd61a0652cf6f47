"""Cruise: the built-in two-objective environment for the demo and the tests.

A car drives along an endless hilly road. It is rewarded for speed (objective ``speed``) and for
saving fuel (objective ``energy``): the same tension as D4MORL's speed-versus-energy MuJoCo
tasks, in an environment that steps in microseconds. Holding throttle u gives a cruising speed
near u, so per step it earns about (u, 1 - u^2): every throttle is the best response to some
weight, and intermediate weights must produce intermediate driving, not one of two extremes.
Hills push the speed around, so a plan has to anticipate the road.

Observation (3,): ``[v, sin(phase), cos(phase)]``, where phase = 2 pi x / PERIOD locates the car
on the periodic road. Action (1,) in [-1, 1]; the throttle is u = (a + 1) / 2 in [0, 1].
Dynamics: ``v' = clip(v + LAG (u - v) - GRADE sin(phase), 0, V_MAX)``; ``x' = x + v'``.
Reward: the vector ``[v', 1 - u^2]`` (mo-gymnasium convention: ``step`` returns a NumPy vector),
also in ``info["reward_vector"]``. Episodes are truncated after 100 steps and never terminate.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

OBJECTIVES = ("speed", "energy")
PERIOD = 30.0
"""Length of one hill-and-valley cycle of the road."""
LAG = 0.2
"""Fraction of the gap between speed and throttle closed each step."""
GRADE = 0.04
"""Speed lost per step on the steepest uphill (gained downhill)."""
V_MAX = 1.5
"""Speed limit of the car."""
EPISODE_STEPS = 100


class CruiseEnv(gym.Env[np.ndarray, np.ndarray]):
    """Speed-versus-energy driving on a hilly road; see the module docstring."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)
    reward_names = OBJECTIVES

    def __init__(self, max_episode_steps: int = EPISODE_STEPS) -> None:
        self.max_episode_steps = int(max_episode_steps)
        self.observation_space = spaces.Box(
            low=np.array([0.0, -1.0, -1.0], dtype=np.float32),
            high=np.array([V_MAX, 1.0, 1.0], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.reward_space = spaces.Box(
            low=np.array([0.0, 0.0], dtype=np.float32),
            high=np.array([V_MAX, 1.0], dtype=np.float32),
            dtype=np.float32,
        )
        self._x = 0.0
        self._v = 0.0
        self._t = 0

    def _phase(self) -> float:
        return 2.0 * np.pi * self._x / PERIOD

    def _obs(self) -> np.ndarray:
        p = self._phase()
        return np.array([self._v, np.sin(p), np.cos(p)], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._x = float(self.np_random.uniform(0.0, PERIOD))
        self._v = float(self.np_random.uniform(0.0, 0.2))
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        throttle = (a + 1.0) / 2.0
        slope = np.sin(self._phase())
        self._v = float(np.clip(self._v + LAG * (throttle - self._v) - GRADE * slope, 0.0, V_MAX))
        # Keep x within one period: the road is periodic and a small x keeps sin() exact.
        self._x = (self._x + self._v) % PERIOD
        self._t += 1
        reward = np.array([self._v, 1.0 - throttle**2], dtype=np.float32)
        truncated = self._t >= self.max_episode_steps
        return self._obs(), reward, False, truncated, {"reward_vector": reward.copy()}


def ideal_front(num_points: int = 101, steps: int = EPISODE_STEPS) -> np.ndarray:
    """(n, 2) returns of holding each constant throttle on a flat road from standstill:
    a reference curve for plots (hills and smarter throttle timing can beat it slightly)."""
    out = []
    for u in np.linspace(0.0, 1.0, num_points):
        v, speed = 0.0, 0.0
        for _ in range(steps):
            v += LAG * (u - v)
            speed += v
        out.append((speed, steps * (1.0 - u**2)))
    return np.asarray(out)
