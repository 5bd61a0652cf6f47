"""The behaviour package's shared rollout toolkit: how an env is named or built, how a vector
of returns is scored under a preference, how seeds are derived, and one episode's return.
ARS, PPO and the flight controller's tuning all run episodes through these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike

from tora.data.trajectories import Direction
from tora.envs import make_env, objective_directions
from tora.errors import ToraError
from tora.evaluate.rollout import reward_vector

__all__ = [
    "EnvSource",
    "build_env",
    "derive_seed",
    "episode_return",
    "objective_signs",
    "scalarize",
]

EnvSource = str | Callable[[], gym.Env]
"""An env id for :func:`tora.envs.make_env`, or a zero-argument factory (picklable when
``workers > 1``)."""


def objective_signs(env: EnvSource) -> np.ndarray | None:
    """+1 for each objective of ``env`` to maximize, -1 for each to minimize (a cost); None
    when every objective is maximized (then scores are plain ``w . R``).

    An env id is asked through :func:`tora.envs.objective_directions`; a factory's env is
    built and its ``reward_directions`` read, the attribute that function reads. Envs that
    declare no directions (or no vector reward at all) maximize everything.
    """
    if isinstance(env, str):
        try:
            directions: Sequence[Any] = objective_directions(env)
        except ToraError:  # no declared names and no vector reward space: a scalar reward
            return None
    else:
        e = env()
        directions = getattr(e.unwrapped, "reward_directions", None) or ()
        e.close()
    signs = np.array([-1.0 if Direction(d) is Direction.MINIMIZE else 1.0 for d in directions])
    return signs if (signs < 0).any() else None


def scalarize(returns: ArrayLike, weights: ArrayLike, signs: ArrayLike | None = None) -> np.ndarray:
    """Scores ``w . (sign * R)`` of return vectors ``returns`` (..., K): with ``signs`` (K,)
    of -1 for an objective to minimize, a preference (w_r, w_c) scores ``w_r R - w_c C``.
    ``signs`` None: all +1, ``w . R`` (computed without the product, so exactly as before)."""
    r = np.asarray(returns, dtype=np.float64)
    if signs is not None:
        r = r * np.asarray(signs, dtype=np.float64)
    return r @ np.asarray(weights, dtype=np.float64)


def derive_seed(*key: int) -> int:
    """A 32-bit seed that is a pure function of the non-negative integers ``key``."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


def build_env(env: EnvSource) -> gym.Env:
    """The env of an id (through :func:`tora.envs.make_env`) or of a factory."""
    if isinstance(env, str):
        return make_env(env)
    return env()


def episode_return(
    env: gym.Env, act: Callable[[np.ndarray], np.ndarray], seed: int, limit: int | None = None
) -> tuple[np.ndarray, int]:
    """Summed reward vector and length of one episode of ``act`` from ``env.reset(seed=...)``,
    ending at a termination, a truncation or ``limit`` steps (None: the env's own end)."""
    obs, _ = env.reset(seed=seed)
    total: np.ndarray | None = None
    steps = 0
    while limit is None or steps < limit:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        rv = reward_vector(reward, info)
        total = rv if total is None else total + rv
        steps += 1
        if terminated or truncated:
            break
    if total is None:
        raise ToraError(f"an episode needs at least one step, got limit {limit}")
    return total, steps
