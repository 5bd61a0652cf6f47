"""Batched evaluation rollouts: every (preference, episode) pair advances in lockstep.

One policy call per environment step serves the whole sweep: row b of the observation batch
comes with row b of the weight batch. Environments that finish drop out of the batch; the
loop ends when all have finished. The environments live in an
:class:`~tora.evaluate.vector.EnvPool`, which can step them in worker processes; the results
are the same for any number of workers.

A stochastic policy that should give each row the same actions whether the row is evaluated
in a sweep or alone needs one random stream per row, which it can key on the row index
(``pass_rows=True`` passes ``rows=``): e.g. ``agent.seed_rows(row_seeds(seed, n, episodes))``
with :meth:`tora.planning.agent.Agent.act`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from tora.errors import ShapeMismatchError
from tora.evaluate.vector import EnvPool, reward_vector
from tora.preferences import Preferences

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(observations (B, obs_dim), weights (B, K)) -> actions (B, act_dim)."""


class RowPolicy(Protocol):
    """A policy told which sweep rows its batch holds (``rows``: (B,) indices into the sweep's
    rows, preference-major), so it can keep per-row state such as a random stream."""

    def __call__(self, obs: np.ndarray, weights: np.ndarray, *, rows: np.ndarray) -> np.ndarray: ...


def row_seeds(seed: int, preferences: int | Sequence[int], episodes: int) -> list[int]:
    """One random-stream seed per sweep row, preference-major (row ``i * episodes + e``).

    The seed of a row depends only on (``seed``, preference index, episode), so evaluating
    preference ``i`` alone with ``row_seeds(seed, [i], episodes)`` gives its rows the streams
    they have in the full sweep ``row_seeds(seed, n, episodes)``. ``preferences``: a count n
    (indices 0..n-1) or explicit indices. Seeds come from NumPy's ``SeedSequence``, so streams
    of nearby rows are unrelated.
    """
    prefs = range(preferences) if isinstance(preferences, (int, np.integer)) else preferences
    return [
        int(np.random.SeedSequence([int(seed), int(i), e]).generate_state(1, np.uint64)[0])
        for i in prefs
        for e in range(episodes)
    ]


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


ActFn = Callable[[np.ndarray, np.ndarray, int, "np.ndarray | None"], np.ndarray]
"""(indices of the active episodes, their observations, the step, each episode's summed reward
vectors so far (None before the first step)) -> actions for those episodes."""


def drive_episodes(
    pool: EnvPool,
    obs: np.ndarray,
    act: ActFn,
    limit: int,
    bar: Any,
    clock: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Step every episode of ``pool`` (already reset to ``obs``) in lockstep until each has
    ended or ``limit`` steps have passed; finished episodes drop out of the batch. Returns
    each episode's summed reward vectors (N, K), its length and the steps taken. ``clock``,
    if given, receives the seconds spent in ``act`` ("policy") and in stepping ("env")."""
    n = obs.shape[0]
    active = np.ones(n, dtype=bool)
    totals: np.ndarray | None = None
    lengths = np.zeros(n, dtype=np.int64)
    policy_seconds = env_seconds = 0.0
    step = 0
    while active.any() and step < limit:
        idx = np.flatnonzero(active)
        t0 = time.perf_counter()
        actions = np.asarray(act(idx, obs[idx], step, None if totals is None else totals[idx]))
        t1 = time.perf_counter()
        if actions.shape[0] != idx.size:
            raise ShapeMismatchError(
                f"policy returned {actions.shape[0]} actions for {idx.size} observations"
            )
        next_obs, rewards, terminated, truncated = pool.step(idx, actions)
        env_seconds += time.perf_counter() - t1
        policy_seconds += t1 - t0
        if totals is None:
            totals = np.zeros((n, rewards.shape[1]))
        totals[idx] += rewards
        lengths[idx] += 1
        obs[idx] = next_obs
        active[idx[terminated | truncated]] = False
        step += 1
        bar.update(1)
    if clock is not None:
        clock.update(policy=policy_seconds, env=env_seconds)
    return (np.zeros((n, 0)) if totals is None else totals), lengths, step


def rollout_sweep(
    policy: Policy | RowPolicy,
    make_env: Callable[[], gym.Env],
    weights: Preferences | np.ndarray,
    episodes: int,
    seed: int,
    env_id: str = "",
    objective_names: Sequence[str] | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    workers: int | None = 0,
    pass_rows: bool = False,
) -> SweepResult:
    """Run ``episodes`` episodes for every weight row; env j is reset with seed ``seed + j``.

    Episode e of every preference uses the same start seed, so preferences are compared on
    the same starting states. Row ``i * episodes + e`` of the sweep is preference i's episode e.

    ``workers``: processes stepping the environments, this one included (0 or 1: all in this
    process; None: :func:`~tora.evaluate.vector.default_workers`); with more than one,
    ``make_env`` must be picklable (``functools.partial(tora.make_env, env_id)``). The
    returns do not depend on it. ``pass_rows``: call ``policy(obs, weights, rows=idx)`` with
    the sweep-row indices of the batch (see :class:`RowPolicy`).

    ``meta["timing"]`` holds the wall time and its split (seconds): ``startup`` (building and
    resetting the environments), ``policy`` (policy calls), ``env`` (stepping, including the
    wait for workers), and ``env_steps`` and ``env_steps_per_second`` over the whole sweep.
    """
    start = time.perf_counter()
    # A Preferences (checked once, where the sweep was asked for) reaches every act() call as
    # one, so the policies only match it against their objectives instead of re-checking it.
    if isinstance(weights, Preferences):
        n = len(weights)
        w_all: Preferences | np.ndarray = weights.repeat(episodes)
    else:
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        n = weights.shape[0]
        w_all = np.repeat(weights, episodes, axis=0)
    total = n * episodes

    def w_rows(idx: np.ndarray) -> Preferences | np.ndarray:
        return w_all.take(idx) if isinstance(w_all, Preferences) else w_all[idx]

    with EnvPool(make_env, total, workers) as pool:
        obs = pool.reset([seed + (j % episodes) for j in range(total)]).astype(np.float32)
        startup_seconds = time.perf_counter() - start
        limit = max_steps or pool.max_episode_steps or 10**9
        bar = tqdm(
            desc=f"evaluate {n} preferences x {episodes} episodes",
            total=None if limit == 10**9 else limit,
            disable=not progress,
        )

        def act(idx: np.ndarray, obs_batch: np.ndarray, step: int, sums: np.ndarray | None):
            if pass_rows:
                return policy(obs_batch, w_rows(idx), rows=idx)  # type: ignore[call-arg]
            return policy(obs_batch, w_rows(idx))  # type: ignore[call-arg]

        clock: dict[str, float] = {}
        totals, lengths, step = drive_episodes(pool, obs, act, limit, bar, clock)
        policy_seconds, env_seconds = clock["policy"], clock["env"]
        bar.close()
        used_workers = pool.workers
    wall = time.perf_counter() - start
    k = totals.shape[1]
    names = list(objective_names) if objective_names else [f"objective_{i}" for i in range(k)]
    env_steps = int(lengths.sum())
    timing = {
        "wall_seconds": wall,
        "startup_seconds": startup_seconds,
        "policy_seconds": policy_seconds,
        "env_seconds": env_seconds,
        "env_steps": env_steps,
        "env_steps_per_second": env_steps / wall if wall > 0 else float("inf"),
        "sweep_steps": step,
        "workers": used_workers,
    }
    return SweepResult(
        weights=np.array(weights.rows) if isinstance(weights, Preferences) else weights,
        returns=totals.reshape(n, episodes, k),
        lengths=lengths.reshape(n, episodes),
        objective_names=names,
        env_id=env_id,
        seed=seed,
        meta={"timing": timing},
    )


__all__ = [
    "ActFn",
    "Policy",
    "RowPolicy",
    "SweepResult",
    "drive_episodes",
    "reward_vector",
    "rollout_sweep",
    "row_seeds",
]
