"""Wall time of a whole preference sweep, split into planning and stepping the environments.

A sweep advances every (preference, episode) row as one batch: per step, one policy call for
the batch, then one step of every still-running environment (see
:func:`tora.evaluate.rollout.rollout_sweep`). Which of the two dominates decides where speed
comes from: a faster planner (device, sampler steps) or more environment workers. This module
measures both on a real sweep and returns the numbers; printing is the caller's business.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

import numpy as np
import torch

from tora.envs import make_env, objective_names
from tora.evaluate.rollout import Policy, rollout_sweep
from tora.evaluate.vector import available_cores
from tora.preferences import simplex_grid


class RandomPolicy:
    """Seeded uniform actions in the action box: a policy that costs next to nothing, so a
    sweep with it times the environments and the sweep machinery alone."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        size = (obs.shape[0], *self.low.shape)
        return self.rng.uniform(self.low, self.high, size=size).astype(np.float32)


def _policy_and_objectives(policy: Any, env_id: str, seed: int) -> tuple[Policy, int, str]:
    """The callable to time, the number of preference weights it takes, and its name."""
    if isinstance(policy, str):
        if policy != "random":
            raise ValueError(f"unknown policy {policy!r}: pass 'random' or a policy callable")
        env = make_env(env_id)
        try:
            space = env.action_space
            acts = RandomPolicy(space.low, space.high, seed)  # type: ignore[attr-defined]
        finally:
            env.close()
        return acts, len(objective_names(env_id)), "random"
    # An agent (anything with .act and .objective_names) takes one weight per loaded model,
    # which may be fewer than the environment's objectives.
    names = getattr(policy, "objective_names", None)
    act = getattr(policy, "act", None)
    if names is not None and callable(act):
        return act, len(names), type(policy).__name__
    if not callable(policy):
        raise TypeError(f"policy must be 'random', an agent or a callable, got {policy!r}")
    name = getattr(policy, "__qualname__", type(policy).__name__)
    return policy, len(objective_names(env_id)), name


def time_sweep(
    env_id: str,
    policy: Policy | Any | Literal["random"] = "random",
    n_prefs: int = 501,
    episodes: int = 1,
    workers: int | None = None,
    steps: int | None = None,
    num_objectives: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run one sweep of ``n_prefs`` preferences x ``episodes`` episodes and time it.

    ``policy``: ``"random"`` (:class:`RandomPolicy`), an agent (its ``act`` is timed and it
    fixes the number of weights) or any ``(obs (B, D), weights (B, K)) -> actions`` callable.
    The preferences are :func:`tora.preferences.simplex_grid` rows over ``num_objectives``
    objectives (default: the agent's models, else the environment's objectives; for three or
    more objectives ``n_prefs`` must be a lattice size, e.g. 325 for three). ``workers``: as
    in :func:`~tora.evaluate.rollout.rollout_sweep` (None picks one per core). ``steps``: cut
    episodes at this many steps (default: the environment's time limit).

    Returns seconds of the whole sweep (``wall_seconds``) and its parts: ``startup_seconds``
    (building and resetting the environments, starting workers), ``policy_seconds``,
    ``env_seconds`` (stepping, including the wait for workers) and ``other_seconds`` (the rest
    of the loop), with ``env_steps`` and ``env_steps_per_second`` over the whole wall time.
    """
    act, k, policy_name = _policy_and_objectives(policy, env_id, seed)
    k = int(num_objectives) if num_objectives is not None else k
    weights = simplex_grid(k, n_prefs)
    start = time.perf_counter()
    result = rollout_sweep(
        act,
        functools.partial(make_env, env_id),
        weights,
        episodes,
        seed,
        env_id=env_id,
        max_steps=steps,
        progress=False,
        workers=workers,
    )
    wall = time.perf_counter() - start
    t = result.meta["timing"]
    sweep_steps = max(1, int(t["sweep_steps"]))
    other = wall - t["startup_seconds"] - t["policy_seconds"] - t["env_seconds"]
    return {
        "env_id": env_id,
        "policy": policy_name,
        "preferences": int(weights.shape[0]),
        "objectives": k,
        "episodes": int(episodes),
        "envs": int(weights.shape[0] * episodes),
        "workers": int(t["workers"]),
        "cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "steps_limit": steps,
        "sweep_steps": int(t["sweep_steps"]),
        "env_steps": int(t["env_steps"]),
        "wall_seconds": wall,
        "startup_seconds": t["startup_seconds"],
        "policy_seconds": t["policy_seconds"],
        "env_seconds": t["env_seconds"],
        "other_seconds": max(0.0, other),
        "policy_ms_per_step": 1e3 * t["policy_seconds"] / sweep_steps,
        "env_ms_per_step": 1e3 * t["env_seconds"] / sweep_steps,
        "env_steps_per_second": t["env_steps"] / wall if wall > 0 else float("inf"),
        "mean_return": result.mean_returns.mean(axis=0).tolist(),
    }


__all__ = ["RandomPolicy", "time_sweep"]
