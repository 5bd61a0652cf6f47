"""How well a planner predicts the next state: a diagnostic for plans that act badly.

TORA acts through an inverse dynamics model fed the planner's first planned transition
``(s_t, s_hat_{t+m})``. When an agent fails although behaviour cloning on the same data works,
either that model or the planned state is at fault. The inverse model is easy to check (its
training loss); this module checks the planner: on transitions of a dataset it compares the
planned next state with the recorded one, in the planner's normalized units (so every state
dimension counts alike), next to two references computed on the same transitions:

- ``still``: predicting "the state does not change" (``|s_t - s_{t+m}|``): a planner that has
  learned anything about the dynamics should beat it;
- ``shuffled``: predicting another transition's next state (a random permutation): a planner
  that ignores the state it starts from scores about this.

Measured on SafetyDroneCircle (BENCHMARKS.md section 6): the safe suite's reference planner
(4,000 steps) scores 1.05 against still 0.18 and shuffled 0.90, worse than guessing; 20,000
steps bring it to 0.53, and the drone still crashes, while the same inverse dynamics model
fed the true next states flies it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tora.data.normalize import Normalizer
from tora.data.trajectories import Trajectories
from tora.errors import ShapeMismatchError, ToraError

__all__ = ["next_state_error"]

PlanFn = Callable[[np.ndarray], np.ndarray]
"""Observations (B, D) -> planned windows (B, H, D), row 0 the observation itself."""


def _pairs(traj: Trajectories, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """All (s_t, s_{t+stride}) inside one episode, as two (N, D) arrays."""
    firsts, seconds = [], []
    for i in range(traj.num_episodes):
        states = traj.episode_states(i)
        if len(states) > stride:
            firsts.append(states[:-stride])
            seconds.append(states[stride:])
    if not firsts:
        raise ToraError(f"no episode is longer than the stride ({stride})")
    return np.concatenate(firsts), np.concatenate(seconds)


def next_state_error(
    plan: PlanFn,
    traj: Trajectories,
    normalizer: Normalizer,
    stride: int = 1,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean absolute error of the planned next state on ``samples`` random transitions of
    ``traj`` (at most), in the planner's normalized units ``(x - mean) / std``.

    For a loaded agent: ``next_state_error(lambda s: agent.plan(s, w), traj,
    agent.spec.normalizer, agent.spec.stride)``.

    Returns ``planned``, ``still`` and ``shuffled`` (module docstring), ``per_dim`` (the
    planned error per state dimension) and ``samples`` (transitions used)."""
    if stride < 1 or samples < 2:
        raise ToraError(f"need stride >= 1 and samples >= 2, got {stride} and {samples}")
    mean = np.asarray(normalizer.mean, np.float64)
    std = np.asarray(normalizer.std, np.float64)
    s, s_next = _pairs(traj, stride)
    if mean.shape != (s.shape[1],) or std.shape != (s.shape[1],) or (std <= 0).any():
        raise ShapeMismatchError(
            f"the normalizer must have {s.shape[1]} positive stds for these states, got "
            f"mean {mean.shape}, std {std.shape}"
        )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(s), size=min(samples, len(s)), replace=False)
    s, s_next = s[pick].astype(np.float64), s_next[pick].astype(np.float64)
    planned = np.asarray(plan(s), np.float64)
    if planned.ndim != 3 or planned.shape[0] != len(s) or planned.shape[1] < 2:
        raise ShapeMismatchError(
            f"plan() must return (B, H >= 2, D) windows for {len(s)} states, got {planned.shape}"
        )
    z = lambda x: (x - mean) / std  # noqa: E731  (a one-line local helper)
    err = np.abs(z(planned[:, 1]) - z(s_next))
    shuffled = s_next[rng.permutation(len(s_next))]
    return {
        "planned": float(err.mean()),
        "still": float(np.abs(z(s) - z(s_next)).mean()),
        "shuffled": float(np.abs(z(shuffled) - z(s_next)).mean()),
        "per_dim": err.mean(axis=0).tolist(),
        "samples": len(s),
    }
