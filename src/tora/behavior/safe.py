"""Behaviour policies and offline data for the safe-RL tasks, made the way DSRL made its data.

DSRL (Liu et al., "Datasets and Benchmarks for Offline Safe Reinforcement Learning", 2023)
collected each Bullet-Safety-Gym dataset from many behaviour policies trained under different
cost budgets, with perturbed actions, so that its episodes fill the reward/cost plane from
slow, cheap episodes (normalized reward near 0, cost 0) to fast, costly ones (reward near
R_max, cost up to the task's maximum). tora-rl reproduces that spread with its own pieces.

**Behaviour policies**: one linear ARS policy (with a bias, :mod:`tora.behavior.policy`) per
cost-penalty weight. The rows of :func:`penalty_grid` are preferences ``(w_r, w_c)`` evenly
spaced over the trade-off between DSRL's *normalized* reward and cost: ``u = i / n`` of the way
from reward only, ``((1 - u) / (R_max - R_min), u / max_cost)`` rescaled to sum to 1, so
``w_c / w_r`` runs from 0 (row 0) to ``(n - 1) (R_max - R_min) / max_cost`` (the last row;
cost only would reward standing still). Evenly spaced *raw* weights would be a poor grid: a
BallRun step earns up to ~16 reward and costs at most 1, so even at (0.1, 0.9) running at
full speed scores higher than keeping to the limit (79 against 46). ARS scores a rollout
``w_r R - w_c C`` (:func:`tora.behavior.rollout.scalarize`; the cost is an objective to
minimize) and
:func:`tora.behavior.train.train_behavior_set` trains the set as warm-start chains from *both
ends* (``chain_from="ends"``): the reward-only policy and the most cost-averse one start from
zero, and each other row starts from its nearer trained neighbour. Both ends are needed
because the scores have two separate optima: a cost is paid per step beyond a speed or
position limit, so easing off a little costs reward without saving any cost, and only
keeping under the limit all the time pays. Measured on SafetyBallRun: chained from the
reward-only end alone, every penalty up to w_c / w_r = 7 kept the full-speed policy (cost 91);
from the cost-averse end alone, every penalty down to 1.6 kept a safe one (cost 0, return
460). With both ends the set has both kinds, split where the chains meet.

**Data** (:func:`collect_safe`): each episode rolls out one policy of the set, perturbed by
one of :data:`NOISE_LEVELS` of Gaussian action noise (std as a fraction of the half-width of
the action box) and, in half of the episodes, slowed by an action factor ``f ~ U(0, 1)``:
``a' = clip(f (a + std * eps))``. Policies, noise levels and slowed episodes are each spread
evenly over the episodes in a seeded random order. Noise-free episodes give the two kinds of
policies as trained; noise pushes the safe ones over their limits (costs without reward) and
the fast ones off their best speed; the factor fills the slow end down to R_min and, on fast
policies, the costs between 0 and the maximum (a slower start crosses the limit later).

Seeding: episode ``e`` resets the env with a seed derived from ``(seed, 1, e)`` and draws its
noise from a generator keyed ``(seed, 2, e)``; the policy, noise level and factor of every
episode come from one generator keyed ``(seed, 0)``. The same seed gives the same arrays (and,
through the writers, the same bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tora.behavior.collect import (
    BEHAVIOR_NAME,
    Noise,
    check_options,
    check_policies,
    env_objectives,
    rollouts,
)
from tora.behavior.policy import LinearPolicy
from tora.behavior.ppo import MLPPolicy
from tora.data.trajectories import Trajectories
from tora.envs import SAFETY_ENV_IDS, make_env, resolve_env_id
from tora.errors import ToraError
from tora.evaluate.safe import dsrl_reference
from tora.preferences import simplex_grid

__all__ = [
    "NOISE_LEVELS",
    "SAFE_EPISODES",
    "collect_safe",
    "is_safety_task",
    "penalty_grid",
    "preference_grid",
]

SAFE_EPISODES = 1000
"""Default number of episodes of a safe-RL dataset (DSRL's have a few thousand)."""

NOISE_LEVELS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)
"""Standard deviations of the per-step Gaussian action noise, as fractions of the half-width
of the action box; each episode draws one."""

# First words of the seed keys of the random streams (module docstring); 1 is the reset stream
# of tora.behavior.collect.rollouts.
_PLAN, _NOISE = 0, 2
# Noise is drawn this many steps at a time when the env has no time limit.
_BLOCK = 1024


def is_safety_task(env_id: str) -> bool:
    """Whether ``env_id`` names one of the six Bullet-Safety-Gym tasks (any of their ids)."""

    return resolve_env_id(env_id) in SAFETY_ENV_IDS


def penalty_grid(env_id: str, num_policies: int) -> np.ndarray:
    """``(num_policies, 2)`` preferences ``(w_r, w_c)`` of a safe-RL task's behaviour set.

    Row ``i`` lies ``u = i / n`` of the way from reward only to cost only over the
    DSRL-normalized objectives: ``((1 - u) / (R_max - R_min), u / max_cost)`` divided by its
    sum (module docstring). Row 0 is ``(1, 0)``; ``w_c / w_r`` increases along the rows, and
    the last row stops one step short of cost only, which would reward standing still.
    """

    if num_policies < 1:
        raise ToraError(f"need at least one policy, got {num_policies}")
    ref = dsrl_reference(env_id)
    u = _normalized_grid(num_policies)
    raw = u / np.array([ref.reward_max - ref.reward_min, ref.max_cost])
    return raw / raw.sum(axis=1, keepdims=True)


def _normalized_grid(num_policies: int) -> np.ndarray:
    """Rows ``(1 - u, u)``, ``u = i / n``: the penalty grid over the normalized objectives."""
    u = np.arange(num_policies, dtype=np.float64) / num_policies
    return np.stack([1.0 - u, u], axis=1)


def preference_grid(
    env_id: str, num_objectives: int, num_policies: int
) -> tuple[np.ndarray, np.ndarray]:
    """The preferences a behaviour set of ``env_id`` is trained for, and the points whose
    distances decide its warm-start chain (:func:`tora.behavior.train.chain_order`).

    On the safe-RL tasks: :func:`penalty_grid`, chained by the evenly spaced normalized
    preferences it comes from (the raw weights crowd together near cost only, where the
    chain would otherwise run first); elsewhere ``simplex_grid(num_objectives,
    num_policies)`` for both.
    """

    if is_safety_task(env_id):
        return penalty_grid(env_id, num_policies), _normalized_grid(num_policies)
    grid = simplex_grid(num_objectives, num_policies)
    return grid, grid


class _EpisodeNoise:
    """``clip(factor * (a + std * N(0, I)), low, high)`` for each action ``a``; the normal
    draws come in blocks of one episode's length, so a step costs a sum, a product and a
    clip. The factor scales the noise too, so a nearly stopped episode does not random-walk
    backwards (below DSRL's R_min)."""

    def __init__(
        self,
        rng: np.random.Generator,
        factor: float,
        std: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        block: int,
    ) -> None:
        self.rng, self.factor, self.std = rng, factor, std
        self.low, self.high, self.block = low, high, block
        self.pos = block  # empty: the first call draws a block

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.pos == self.block:
            self.table = self.rng.standard_normal((self.block, self.std.size)) * self.std
            self.pos = 0
        i = self.pos
        self.pos += 1
        return np.minimum(np.maximum(self.factor * (action + self.table[i]), self.low), self.high)


def _spread(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` indices in ``range(k)``, each used ``n // k`` or ``n // k + 1`` times, in a
    random order: every policy and every noise level gets its share of the episodes."""
    return rng.permutation(np.arange(n, dtype=np.int64) % k)


def collect_safe(
    env_id: str,
    policies: Sequence[LinearPolicy | MLPPolicy],
    episodes: int = SAFE_EPISODES,
    seed: int = 0,
    progress: bool = True,
    *,
    noise_levels: Sequence[float] = NOISE_LEVELS,
) -> Trajectories:
    """Roll out a safe-RL task's behaviour set into DSRL-like data (module docstring).

    Args:
        env_id: one of the six Bullet-Safety-Gym tasks (any of its ids; resolved and recorded).
        policies: the behaviour set, in grid order (each needs ``info["return_vector"]``).
        episodes: number of episodes (>= 1); each policy and each noise level gets an equal
            share, assigned in a seeded random order.
        seed: non-negative seed of every random draw.
        progress: show a progress bar over episodes.
        noise_levels: action-noise standard deviations (fractions of the action half-width).

    Returns:
        Trajectories with objectives ``reward`` (maximize) and ``cost`` (minimize) and no
        preferences; ``metadata`` has env_id, source_format "tora", behavior, collection
        "dsrl", seed, policy_index, noise_level and action_factor (one per episode),
        noise_levels and the policies' weights and evaluated return vectors.
    """

    check_options(episodes, seed)
    resolved = resolve_env_id(env_id)
    if not is_safety_task(resolved):
        raise ToraError(f"{resolved} is not a safe-RL task; use collect_with_policies")
    levels_table = [float(x) for x in noise_levels]
    if not levels_table or min(levels_table) < 0 or not np.isfinite(levels_table).all():
        raise ToraError(f"noise levels must be finite and non-negative, got {levels_table}")
    objectives = env_objectives(resolved)
    env = make_env(resolved)
    try:
        returns = check_policies(policies, env, resolved, len(objectives))
        plan = np.random.default_rng([seed, _PLAN])
        chosen = _spread(plan, episodes, len(policies))
        levels = _spread(plan, episodes, len(levels_table))
        slowed = _spread(plan, episodes, 2) == 1
        factors = np.where(slowed, plan.uniform(0.0, 1.0, episodes), 1.0)

        def perturb(e: int, low: np.ndarray, high: np.ndarray, limit: int | None) -> Noise:
            sigma, factor = levels_table[int(levels[e])], float(factors[e])
            if sigma == 0.0 and factor == 1.0:
                return None  # the policy's own actions, untouched
            rng = np.random.default_rng([seed, _NOISE, e])
            std = sigma * (high - low) / 2.0
            return _EpisodeNoise(rng, factor, std, low, high, limit or _BLOCK)

        records = rollouts(
            env, policies, chosen, perturb, seed, desc=f"collect {resolved}", progress=progress
        )
    finally:
        env.close()
    metadata: dict[str, Any] = {
        "env_id": resolved,
        "source_format": "tora",
        "behavior": BEHAVIOR_NAME,
        "collection": "dsrl",
        "seed": int(seed),
        "policy_index": chosen.tolist(),
        "noise_level": [levels_table[int(i)] for i in levels],
        "noise_levels": levels_table,
        "action_factor": factors.tolist(),
        "policy_weights": [p.weights.tolist() for p in policies],
        "policy_returns": returns.tolist(),
    }
    return Trajectories.from_episodes(records, objectives, metadata)
