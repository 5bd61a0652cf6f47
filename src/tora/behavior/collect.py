"""Offline data from behaviour policies, collected the way D4MORL collected its datasets.

D4MORL (Zhu, Dang & Grover, "Scaling Pareto-Efficient Decision Making via Offline
Multi-Objective RL", ICLR 2023) made every trajectory by drawing a preference, picking the
behaviour policy whose normalized return vector is closest to it and rolling that policy out
for one episode (``shared/REFERENCE.md`` section 1; the sampling is in
:mod:`tora.behavior.preferences`). Two data qualities:

- ``"expert"``: the policy's deterministic action;
- ``"amateur"``: at each step, with probability 0.35 the deterministic action, otherwise that
  action times one factor ``U(0.35, 1.65)`` drawn for the step (the same factor for every
  action dimension), clipped to the action space. On MO-Swimmer the perturbed steps take a
  uniformly random action from the action space instead, as D4MORL did there.

Episodes last as long as the environment lets them (the 500-step ``TimeLimit`` of the MuJoCo
tasks, or a termination). Each episode's drawn preference is stored in
``Trajectories.preferences`` (D4MORL's files keep it on every step) and the index of the
policy that acted in ``metadata["policy_index"]``, a list that the native format keeps.

Seeding: everything is a function of ``seed``. The preferences come from one generator keyed
``(seed, 0)``; episode ``e`` resets the env with a seed derived from ``(seed, 1, e)`` and, for
amateur data, draws its noise from a generator keyed ``(seed, 2, e)``. So the same seed gives
the same arrays, and an episode's start and noise do not depend on the other episodes.

Speed: the loop does one matrix-vector product, a clip and (amateur) one table lookup per step
besides ``env.step``; the noise is drawn in blocks per episode rather than per step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from tora.behavior.policy import LinearPolicy
from tora.behavior.ppo import MLPPolicy
from tora.behavior.preferences import (
    PREFERENCE_KINDS,
    PreferenceKind,
    closest_policy,
    normalize_returns,
    sample_preferences,
)
from tora.data.trajectories import Direction, Objective, Trajectories, objectives_from_names
from tora.envs import make_env, objective_directions, objective_names, resolve_env_id
from tora.errors import ShapeMismatchError, ToraError
from tora.evaluate.rollout import reward_vector

__all__ = [
    "AMATEUR_KEEP_PROB",
    "AMATEUR_SCALE",
    "BEHAVIOR_NAME",
    "QUALITIES",
    "Quality",
    "collect_with_policies",
    "env_objectives",
    "policy_return_vectors",
]

Quality = Literal["expert", "amateur"]
QUALITIES: tuple[str, ...] = ("expert", "amateur")
AMATEUR_KEEP_PROB = 0.35
"""Probability that an amateur step keeps the deterministic action (D4MORL)."""
AMATEUR_SCALE = (0.35, 1.65)
"""Range of the uniform factor an amateur step scales the action by otherwise (D4MORL)."""
BEHAVIOR_NAME = "ars-linear"
"""``metadata["behavior"]`` of collected data: linear policies trained with ARS."""

# First words of the seed keys of the three random streams (see the module docstring).
_PREFS, _RESETS, _NOISE = 0, 1, 2
# Noise is drawn this many steps at a time when the env has no time limit.
_NOISE_BLOCK = 1024


def policy_return_vectors(policies: Sequence[LinearPolicy | MLPPolicy]) -> np.ndarray:
    """``(P, K)`` evaluated return vectors of the policies (``info["return_vector"]``).

    Raises ToraError if a policy has none (e.g. a hand-made policy never evaluated), as the
    preference-to-policy matching needs them.
    """
    rows = []
    for i, policy in enumerate(policies):
        ret = policy.info.get("return_vector")
        if ret is None:
            raise ToraError(
                f"behaviour policy {i} has no info['return_vector']; policies need their "
                "evaluated return vector to be matched to preferences (train_behavior_set "
                "records it)"
            )
        rows.append(np.asarray(ret, dtype=np.float64).reshape(-1))
    if len({r.size for r in rows}) > 1:
        raise ShapeMismatchError("behaviour policies have return vectors of different lengths")
    return np.stack(rows)


def _episode_seed(seed: int, stream: int, episode: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, stream, episode])


def env_objectives(env_id: str) -> tuple[Objective, ...]:
    """The objectives of ``env_id`` with their directions (a safe-RL task's cost is marked
    "minimize"), as collected data records them."""

    names = objective_names(env_id)
    directions = objective_directions(env_id)
    minimize = [n for n, d in zip(names, directions, strict=True) if d is Direction.MINIMIZE]
    return objectives_from_names(names, minimize)


def check_options(episodes: int, seed: int) -> None:
    """Refuse episode counts below 1 and negative seeds (ToraError)."""
    if episodes < 1:
        raise ToraError(f"episodes must be at least 1, got {episodes}")
    if seed < 0:
        raise ToraError(f"seed must be non-negative, got {seed}")


class _AmateurNoise:
    """D4MORL's amateur perturbation for one episode, with its random numbers drawn in blocks."""

    def __init__(
        self,
        rng: np.random.Generator,
        low: np.ndarray,
        high: np.ndarray,
        random_actions: bool,
        block: int,
    ) -> None:
        self.rng, self.low, self.high = rng, low, high
        self.random_actions, self.block = random_actions, block
        self.pos = block  # empty: the first call draws a block

    def _refill(self) -> None:
        # All three tables are drawn for every block so that the streams' positions do not
        # depend on which steps kept the deterministic action.
        self.keep = self.rng.random(self.block) < AMATEUR_KEEP_PROB
        self.scale = self.rng.uniform(*AMATEUR_SCALE, size=self.block)
        if self.random_actions:
            self.random = self.rng.uniform(self.low, self.high, size=(self.block, self.low.size))
        self.pos = 0

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.pos == self.block:
            self._refill()
        i = self.pos
        self.pos += 1
        if self.keep[i]:
            return action
        if self.random_actions:
            return self.random[i]
        return np.minimum(np.maximum(action * self.scale[i], self.low), self.high)


def check_policies(
    policies: Sequence[LinearPolicy | MLPPolicy], env: gym.Env, env_id: str, k: int
) -> np.ndarray:
    """(P, K) return vectors after checking the policies fit the env's spaces."""
    if not policies:
        raise ToraError("no behaviour policies given")
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, gym.spaces.Box) or obs_space.shape is None:
        raise ShapeMismatchError(f"{env_id}: linear policies need Box spaces, got {act_space}")
    obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
    for i, p in enumerate(policies):
        if (p.obs_dim, p.act_dim) != (obs_dim, act_dim):
            raise ShapeMismatchError(
                f"behaviour policy {i} maps {p.obs_dim} observations to {p.act_dim} actions, "
                f"but {env_id} has {obs_dim} and {act_dim}"
            )
    others = sorted({p.env_id for p in policies if p.env_id and p.env_id != env_id})
    if others:
        warnings.warn(
            f"behaviour policies were trained on {others}, collecting in {env_id}",
            stacklevel=3,
        )
    returns = policy_return_vectors(policies)
    if returns.shape[1] != k:
        raise ShapeMismatchError(
            f"behaviour policies have {returns.shape[1]}-objective return vectors, "
            f"{env_id} has {k} objectives"
        )
    return returns


def collect_with_policies(
    env_id: str,
    policies: Sequence[LinearPolicy | MLPPolicy],
    episodes: int,
    quality: Quality | str = "expert",
    prefs: PreferenceKind | str = "uniform",
    seed: int = 0,
    progress: bool = True,
    *,
    max_steps: int | None = None,
) -> Trajectories:
    """Roll out behaviour policies as D4MORL did: one drawn preference per episode.

    Args:
        env_id: any id :func:`tora.envs.make_env` accepts (resolved and recorded).
        policies: the behaviour set; each needs ``info["return_vector"]``.
        episodes: number of episodes (>= 1).
        quality: ``"expert"`` or ``"amateur"`` (module docstring).
        prefs: preference distribution, ``"uniform"``, ``"wide"`` or ``"narrow"``.
        seed: non-negative seed of every random draw (module docstring).
        progress: show a progress bar over episodes.
        max_steps: cut episodes after this many steps (marked as timeouts); default: the
            env's own time limit only.

    Returns:
        Trajectories with one preference per episode; ``metadata`` has env_id,
        source_format "tora", quality, prefs, seed, behavior, policy_index (one int per
        episode) and the policies' weights, return vectors and normalized returns.
    """

    if quality not in QUALITIES:
        raise ToraError(f"unknown quality {quality!r}; choose from {QUALITIES}")
    if prefs not in PREFERENCE_KINDS:
        raise ToraError(f"unknown preference distribution {prefs!r}; choose {PREFERENCE_KINDS}")
    check_options(episodes, seed)
    if max_steps is not None and max_steps < 1:
        raise ToraError(f"max_steps must be at least 1, got {max_steps}")

    resolved = resolve_env_id(env_id)
    objectives = env_objectives(resolved)
    env = make_env(resolved)
    try:
        returns = check_policies(policies, env, resolved, len(objectives))
        normalized = normalize_returns(returns)
        preferences = sample_preferences(
            prefs, episodes, normalized, np.random.default_rng([seed, _PREFS])
        )
        chosen = closest_policy(preferences, normalized)
        # D4MORL's Swimmer amateurs act at random instead of scaling (REFERENCE.md section 1).
        random_actions = "swimmer" in resolved.lower()

        def amateur(e: int, low: np.ndarray, high: np.ndarray, limit: int | None) -> Noise:
            if quality != "amateur":
                return None
            rng = np.random.default_rng(_episode_seed(seed, _NOISE, e))
            return _AmateurNoise(rng, low, high, random_actions, limit or _NOISE_BLOCK)

        records = rollouts(
            env,
            policies,
            chosen,
            amateur,
            seed,
            desc=f"collect {resolved} ({quality})",
            progress=progress,
            max_steps=max_steps,
            preferences=preferences,
        )
    finally:
        env.close()

    metadata: dict[str, Any] = {
        "env_id": resolved,
        "source_format": "tora",
        "behavior": BEHAVIOR_NAME,
        "quality": quality,
        "prefs": prefs,
        "seed": int(seed),
        "policy_index": chosen.tolist(),
        "policy_weights": [p.weights.tolist() for p in policies],
        "policy_returns": returns.tolist(),
        "policy_normalized_returns": normalized.tolist(),
    }
    return Trajectories.from_episodes(records, objectives, metadata)


Noise = Callable[[np.ndarray], np.ndarray] | None
"""Perturbs one step's action (None: the policy's action as it is)."""
NoiseFactory = Callable[[int, np.ndarray, np.ndarray, int | None], Noise]
"""``(episode, action low, action high, episode limit) -> that episode's noise``."""


def _split_bias(p: LinearPolicy) -> tuple[np.ndarray, np.ndarray | None]:
    """(weights on the normalized observation, bias or None) of a policy."""
    if not p.bias:
        return p.M, None
    return p.M[:, : p.obs_dim], p.M[:, p.obs_dim]


def rollouts(
    env: gym.Env,
    policies: Sequence[LinearPolicy | MLPPolicy],
    chosen: np.ndarray,
    noise_for: NoiseFactory,
    seed: int,
    *,
    desc: str,
    progress: bool = True,
    max_steps: int | None = None,
    preferences: np.ndarray | None = None,
) -> list[dict[str, np.ndarray]]:
    """One episode per entry of ``chosen`` (a policy index), as record dicts for
    :meth:`Trajectories.from_episodes`.

    Episode ``e`` resets with a seed derived from ``(seed, 1, e)`` and perturbs its actions
    with ``noise_for(e, low, high, limit)``; it ends at a termination, a truncation or
    ``max_steps``. ``preferences`` (one row per episode) are stored with the episodes.
    """
    spec_limit = env.spec.max_episode_steps if env.spec is not None else None
    limits = [x for x in (spec_limit, max_steps) if x is not None]
    limit = min(limits) if limits else None
    act_space = env.action_space
    assert isinstance(act_space, gym.spaces.Box)  # checked by check_policies
    low = np.asarray(act_space.low, dtype=np.float64).reshape(-1)
    high = np.asarray(act_space.high, dtype=np.float64).reshape(-1)
    # The normalization is fixed during collection: read it once per linear policy, not per
    # step. Other policies (PPO's MLPs) act through their own ``act``.
    params = [
        (*_split_bias(p), p.mean, p.std, p.low, p.high) if isinstance(p, LinearPolicy) else None
        for p in policies
    ]

    records: list[dict[str, np.ndarray]] = []
    bar = tqdm(range(len(chosen)), desc=desc, unit="ep", disable=not progress)
    for e in bar:
        linear = params[int(chosen[e])]
        other = policies[int(chosen[e])]
        reset_seed = int(_episode_seed(seed, _RESETS, e).generate_state(1)[0])
        noise = noise_for(e, low, high, limit)
        obs, _ = env.reset(seed=reset_seed)
        obs_rows, act_rows, rew_rows, next_rows = [], [], [], []
        terminals: list[bool] = []
        timeouts: list[bool] = []
        while True:
            s = np.asarray(obs, dtype=np.float64).reshape(-1)
            if linear is None:
                action = np.asarray(other.act(s), dtype=np.float64)
            else:
                # The same operations, in the same order, as LinearPolicy.act: identical.
                M, b, mean, std, p_low, p_high = linear
                if b is None:
                    action = np.clip(M @ ((s - mean) / std), p_low, p_high)
                else:
                    action = np.clip(M @ ((s - mean) / std) + b, p_low, p_high)
            if noise is not None:
                action = noise(action)
            next_obs, reward, terminated, truncated, info = env.step(action)
            # Copies (astype / np.array), so an env that reuses its observation buffer
            # cannot rewrite the rows already recorded.
            obs_rows.append(s.astype(np.float32))
            act_rows.append(action)
            rew_rows.append(reward_vector(reward, info))
            next_rows.append(np.array(next_obs, dtype=np.float32))
            cut = limit is not None and len(act_rows) >= limit
            # A terminal takes precedence: a step that ends the MDP is not a mere time-out.
            terminals.append(bool(terminated))
            timeouts.append(bool((truncated or cut) and not terminated))
            if terminated or truncated or cut:
                break
            obs = next_obs
        record = {
            # float32 right away: the container stores float32, and 50,000 episodes of
            # float64 rows would double the peak memory.
            "observations": np.asarray(obs_rows, dtype=np.float32),
            "actions": np.asarray(act_rows, dtype=np.float32),
            "rewards": np.asarray(rew_rows, dtype=np.float32),
            "next_observations": np.asarray(next_rows, dtype=np.float32).reshape(
                len(next_rows), -1
            ),
            "terminals": np.asarray(terminals, dtype=bool),
            "timeouts": np.asarray(timeouts, dtype=bool),
        }
        if preferences is not None:
            record["preference"] = preferences[e].astype(np.float32)
        records.append(record)
    bar.close()
    return records
