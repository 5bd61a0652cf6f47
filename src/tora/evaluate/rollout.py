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

A sweep can also be cut into shares of consecutive rows, rolled out apart (:func:`rollout_rows`,
e.g. one share per Ray actor) and merged back in row order (:func:`merge_rows`).
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
    on_end: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Step every episode of ``pool`` (already reset to ``obs``) in lockstep until each has
    ended or ``limit`` steps have passed; finished episodes drop out of the batch. Returns
    each episode's summed reward vectors (N, K), its length and the steps taken. ``clock``,
    if given, receives the seconds spent in ``act`` ("policy") and in stepping ("env");
    ``on_end``, if given, the number of episodes that ended at each step where some did (a
    progress report that counts episodes, not steps)."""
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
        ended = terminated | truncated
        active[idx[ended]] = False
        step += 1
        if on_end is not None and ended.any():
            on_end(int(ended.sum()))
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
    weights = _weight_rows(weights)
    part = rollout_rows(
        policy, make_env, weights, episodes, seed, None, max_steps, progress, workers, pass_rows
    )
    result = merge_rows([part], weights, episodes, seed, env_id, objective_names)
    result.meta["timing"] = part.timing
    return result


@dataclass
class RowReturns:
    """Returns of some rows of a sweep (:func:`rollout_rows`), in row order."""

    rows: range
    """The sweep rows these are (row ``i * episodes + e``: preference i's episode e)."""
    returns: np.ndarray
    """(N, R) each row's summed reward vector."""
    lengths: np.ndarray
    """(N,) each row's episode length."""
    timing: dict[str, Any]
    """Seconds and steps of this rollout, as in :func:`rollout_sweep`'s ``meta["timing"]``."""


def rollout_rows(
    policy: Policy | RowPolicy,
    make_env: Callable[[], gym.Env],
    weights: Preferences | np.ndarray,
    episodes: int,
    seed: int,
    rows: range | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    workers: int | None = 0,
    pass_rows: bool = False,
    on_end: Callable[[int], None] | None = None,
) -> RowReturns:
    """Roll out rows ``rows`` (default: all) of the sweep of ``weights`` x ``episodes``, each
    as :func:`rollout_sweep` does: row j is preference ``j // episodes``'s episode, its env
    reset with seed ``seed + j % episodes``.

    So a sweep can be cut into shares rolled out apart (e.g. on Ray actors) and put back
    together by :func:`merge_rows`: a row's returns depend on the other rows of its batch only
    through the policy, which with per-row noise streams draws each row's noise from the row's
    own stream. With ``pass_rows`` the policy's ``rows=`` index the rows asked for (0 for
    ``rows.start``): for the whole sweep these are the sweep-row indices, for a share the
    indices into its own streams. ``workers``: see :func:`rollout_sweep`; ``on_end``: see
    :func:`drive_episodes`.
    """
    start = time.perf_counter()
    weights = _weight_rows(weights)
    n = len(weights)
    total = n * episodes
    rows = range(total) if rows is None else rows
    if rows.step != 1 or not 0 <= rows.start < rows.stop <= total:
        raise ValueError(f"rows {rows} are not consecutive rows of a sweep of {total}")
    # Each row's preference, as the rows of a Preferences (checked once, where the sweep was
    # asked for, it reaches every act() call as one) or of an array.
    prefs_of_rows = np.arange(rows.start, rows.stop) // episodes
    w_all = (
        weights.take(prefs_of_rows) if isinstance(weights, Preferences) else weights[prefs_of_rows]
    )

    def w_rows(idx: np.ndarray) -> Preferences | np.ndarray:
        return w_all.take(idx) if isinstance(w_all, Preferences) else w_all[idx]

    desc = f"evaluate {n} preferences x {episodes} episodes"
    if len(rows) < total:
        desc += f", rows {rows.start}-{rows.stop - 1}"
    with EnvPool(make_env, len(rows), workers) as pool:
        obs = pool.reset([seed + (j % episodes) for j in rows]).astype(np.float32)
        startup_seconds = time.perf_counter() - start
        limit = max_steps or pool.max_episode_steps or 10**9
        bar = tqdm(desc=desc, total=None if limit == 10**9 else limit, disable=not progress)

        def act(idx: np.ndarray, obs_batch: np.ndarray, step: int, sums: np.ndarray | None):
            if pass_rows:
                return policy(obs_batch, w_rows(idx), rows=idx)  # type: ignore[call-arg]
            return policy(obs_batch, w_rows(idx))  # type: ignore[call-arg]

        clock: dict[str, float] = {}
        totals, lengths, step = drive_episodes(pool, obs, act, limit, bar, clock, on_end)
        bar.close()
        used_workers = pool.workers
    wall = time.perf_counter() - start
    env_steps = int(lengths.sum())
    timing = {
        "wall_seconds": wall,
        "startup_seconds": startup_seconds,
        "policy_seconds": clock["policy"],
        "env_seconds": clock["env"],
        "env_steps": env_steps,
        "env_steps_per_second": env_steps / wall if wall > 0 else float("inf"),
        "sweep_steps": step,
        "workers": used_workers,
    }
    return RowReturns(rows, totals, lengths, timing)


def merge_rows(
    parts: Sequence[RowReturns],
    weights: Preferences | np.ndarray,
    episodes: int,
    seed: int,
    env_id: str = "",
    objective_names: Sequence[str] | None = None,
) -> SweepResult:
    """The sweep of ``weights`` x ``episodes`` from the returns of its rows: ``parts`` hold
    every row once, in order (shares of consecutive rows from :func:`rollout_rows`). Its
    ``meta`` is empty: how the rows were run (and timed) is the caller's to say."""
    weights = _weight_rows(weights)
    n = len(weights)
    covered = [row for part in parts for row in part.rows]
    if covered != list(range(n * episodes)):
        raise ValueError(f"the parts do not hold the {n * episodes} rows of the sweep in order")
    totals = np.concatenate([part.returns for part in parts])
    lengths = np.concatenate([part.lengths for part in parts])
    k = totals.shape[1]
    names = list(objective_names) if objective_names else [f"objective_{i}" for i in range(k)]
    return SweepResult(
        weights=np.array(weights.rows) if isinstance(weights, Preferences) else weights,
        returns=totals.reshape(n, episodes, k),
        lengths=lengths.reshape(n, episodes),
        objective_names=names,
        env_id=env_id,
        seed=seed,
    )


def _weight_rows(weights: Preferences | np.ndarray) -> Preferences | np.ndarray:
    """A sweep's weights as they travel: a Preferences as it is, anything else as (n, K)
    float64 rows."""
    if isinstance(weights, Preferences):
        return weights
    return np.atleast_2d(np.asarray(weights, dtype=np.float64))


__all__ = [
    "ActFn",
    "Policy",
    "RowPolicy",
    "RowReturns",
    "SweepResult",
    "drive_episodes",
    "merge_rows",
    "reward_vector",
    "rollout_rows",
    "rollout_sweep",
    "row_seeds",
]
