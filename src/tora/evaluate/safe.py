"""DSRL's scores for safe policies: normalized reward, normalized cost, safety, and the
aggregation over cost thresholds and seeds that its tables report.

DSRL (Liu et al., "Datasets and Benchmarks for Offline Safe Reinforcement Learning", 2023)
scores an episode of return R (sum of rewards) and cost C (sum of per-step costs) against a
cost threshold kappa, the episode cost the user can afford:

* normalized reward = (R - R_min) / (R_max - R_min), with the task's reference returns
  (:data:`DSRL_CONSTANTS`);
* normalized cost = (C + e) / (kappa + e), with e = 1 when kappa = 0 and e = 0 otherwise (the
  1 keeps the ratio defined at kappa = 0; there a cost-free episode scores exactly 1);
* safe: normalized cost < 1, i.e. C < kappa for kappa > 0 (the strict rule this project
  reports with). Some papers count normalized cost = 1 as safe: ``is_safe(..., inclusive=True)``.
  Under the strict rule nothing is safe at kappa = 0, since even C = 0 scores 1.

Tables (DSRL, FISOR, the safe-RL seed) evaluate 20 episodes for each of 3 seeds at each of the
thresholds 10, 20 and 40 (:data:`DSRL_THRESHOLDS`), and report per threshold and averaged over
thresholds the mean and spread over seeds. :func:`score_threshold` and :func:`score_thresholds`
compute those numbers; both normalizations are affine in R and C, so averaging episodes before
or after normalizing gives the same value. Every function is pure and returns values; writing
tables is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tora.envs.safety import SAFETY_TASKS, safety_task
from tora.errors import DataError, ShapeMismatchError, ToraError

__all__ = [
    "DSRL_CONSTANTS",
    "DSRL_THRESHOLDS",
    "DSRLReference",
    "SafeScore",
    "SafeSummary",
    "dsrl_reference",
    "is_safe",
    "normalized_cost",
    "normalized_reward",
    "score_threshold",
    "score_thresholds",
]

DSRL_THRESHOLDS: tuple[float, ...] = (10.0, 20.0, 40.0)
"""The cost thresholds DSRL's tables report and average over."""


@dataclass(frozen=True)
class DSRLReference:
    """DSRL's reference numbers for one task."""

    reward_max: float
    """R_max: the highest episode return in DSRL's dataset (normalized reward 1)."""
    reward_min: float
    """R_min: the lowest episode return in DSRL's dataset (normalized reward 0)."""
    max_cost: float
    """The highest episode cost in DSRL's dataset (the number in its file name,
    ``SafetyCarRun-v0-40-651.hdf5``): a dataset made for the task should reach it."""
    episode_steps: int
    """Steps per episode; tora's env for the task uses the same time limit."""


def _reference(name: str, reward_max: float, reward_min: float, max_cost: float) -> DSRLReference:
    steps = SAFETY_TASKS[name].episode_steps  # one number, kept where the env's limit is set
    return DSRLReference(reward_max, reward_min, max_cost, steps)


DSRL_CONSTANTS: Mapping[str, DSRLReference] = MappingProxyType(
    {
        # Source: DSRL's dsrl/infos.py (MAX_EPISODE_REWARD, MIN_EPISODE_REWARD,
        # MAX_EPISODE_COST, DEFAULT_MAX_EPISODE_STEPS), as tabled in REFERENCE.md's DSRL
        # section: the returns there are float32 values rounded to 4 decimals, which moves a
        # normalized reward by less than 1e-7.
        "BallRun": _reference("BallRun", 1327.4456, 26.3398, 80.0),
        "CarRun": _reference("CarRun", 574.6533, 204.2873, 40.0),
        "DroneRun": _reference("DroneRun", 682.8330, 10.5570, 140.0),
        "BallCircle": _reference("BallCircle", 881.4634, 0.3831, 80.0),
        "CarCircle": _reference("CarCircle", 534.3061, 3.4844, 100.0),
        "DroneCircle": _reference("DroneCircle", 996.3892, 207.7942, 100.0),
    }
)
"""DSRL's reference constants of the six Bullet-Safety-Gym tasks, by short task name."""


def dsrl_reference(task: str) -> DSRLReference:
    """The reference constants of ``task``: a short name (``"CarRun"``) or any env id naming
    the task (``"tora/SafetyCarRun-v0"``, ``"SafetyCarRun-v0"``, ``"OfflineCarRun-v0"``)."""
    return DSRL_CONSTANTS[safety_task(task).name]


def _finite(values: ArrayLike, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers: {exc}") from exc
    if not np.isfinite(arr).all():
        raise DataError(f"{what} must be finite, got {arr.tolist()}")
    return arr


def _costs(values: ArrayLike) -> np.ndarray:
    arr = _finite(values, "episode costs")
    if (arr < 0).any():
        # A negative episode cost usually means a cost negated into a reward to maximize.
        raise DataError(
            f"episode costs must be non-negative (sums of per-step costs), got {arr.tolist()}; "
            "was the cost negated?"
        )
    return arr


def _threshold(threshold: float) -> float:
    if isinstance(threshold, (str, bytes, bool)):
        raise ToraError(f"cost threshold must be a number, got {threshold!r}")
    try:
        kappa = float(threshold)
    except (TypeError, ValueError) as exc:
        raise ToraError(f"cost threshold must be a number, got {threshold!r}") from exc
    if not (np.isfinite(kappa) and kappa >= 0):
        raise ToraError(f"cost threshold must be finite and non-negative, got {threshold!r}")
    return kappa


def normalized_reward(
    returns: ArrayLike, task: str, reference: DSRLReference | None = None
) -> np.ndarray:
    """(R - R_min) / (R_max - R_min) for each episode return in ``returns`` (any shape).
    ``reference`` replaces the task's DSRL constants (e.g. for a toy task DSRL lacks)."""
    ref = reference or dsrl_reference(task)
    r = _finite(returns, "episode returns")
    return (r - ref.reward_min) / (ref.reward_max - ref.reward_min)


def normalized_cost(costs: ArrayLike, threshold: float) -> np.ndarray:
    """(C + e) / (kappa + e), e = 1 iff kappa = 0, for each episode cost in ``costs``."""
    kappa = _threshold(threshold)
    e = 1.0 if kappa == 0 else 0.0
    return (_costs(costs) + e) / (kappa + e)


def is_safe(normalized: float, inclusive: bool = False) -> bool:
    """Whether a normalized cost counts as safe: below 1 (DSRL's rule), or at most 1 with
    ``inclusive=True`` (the rule of papers that allow C = kappa)."""
    value = _finite(normalized, "normalized cost")
    if value.ndim != 0:
        raise ToraError(f"is_safe takes one normalized cost, got shape {value.shape}")
    return bool(value <= 1.0) if inclusive else bool(value < 1.0)


@dataclass(frozen=True)
class SafeScore:
    """Normalized reward and cost at one threshold (or averaged over thresholds), as the mean
    and the standard deviation (ddof 0) over seeds of each seed's mean over its episodes."""

    threshold: float | None
    """kappa; None for the average over thresholds."""
    reward_mean: float
    reward_std: float
    cost_mean: float
    cost_std: float
    seeds: int
    episodes: int
    """Episodes per seed behind the score (for the average: summed over thresholds)."""

    @property
    def safe(self) -> bool:
        """Whether the mean normalized cost is below 1 (:func:`is_safe`)."""
        return is_safe(self.cost_mean)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "reward_mean": self.reward_mean,
            "reward_std": self.reward_std,
            "cost_mean": self.cost_mean,
            "cost_std": self.cost_std,
            "seeds": self.seeds,
            "episodes": self.episodes,
            "safe": self.safe,
        }


@dataclass(frozen=True)
class SafeSummary:
    """One task's row of a DSRL-style table: one score per threshold and their average."""

    task: str
    per_threshold: tuple[SafeScore, ...]
    """In increasing threshold order."""
    average: SafeScore

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "per_threshold": [s.to_dict() for s in self.per_threshold],
            "average": self.average.to_dict(),
        }


def _per_seed(
    task: str,
    returns: ArrayLike,
    costs: ArrayLike,
    threshold: float,
    reference: DSRLReference | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Each seed's mean normalized reward and cost, and the episodes per seed."""
    r = normalized_reward(returns, task, reference)
    c = normalized_cost(costs, threshold)
    if r.shape != c.shape:
        raise ShapeMismatchError(
            f"returns {r.shape} and costs {c.shape} must have the same shape (seeds, episodes)"
        )
    if r.ndim == 1:
        r, c = r[None], c[None]
    if r.ndim != 2 or r.size == 0:
        raise DataError(
            "returns and costs must be (episodes,) or (seeds, episodes) with at least one "
            f"episode, got shape {r.shape}"
        )
    return r.mean(axis=1), c.mean(axis=1), r.shape[1]


def _score(
    threshold: float | None, reward: np.ndarray, cost: np.ndarray, episodes: int
) -> SafeScore:
    return SafeScore(
        threshold=threshold,
        reward_mean=float(reward.mean()),
        reward_std=float(reward.std()),
        cost_mean=float(cost.mean()),
        cost_std=float(cost.std()),
        seeds=int(reward.size),
        episodes=episodes,
    )


def score_threshold(
    task: str,
    returns: ArrayLike,
    costs: ArrayLike,
    threshold: float,
    reference: DSRLReference | None = None,
) -> SafeScore:
    """Score the episodes evaluated for cost threshold ``threshold``.

    ``returns`` and ``costs``: episode returns and episode costs, shape (seeds, episodes), or
    (episodes,) for one seed. Each seed's episodes are averaged first; the score holds the
    mean and standard deviation of those per-seed values. ``reference``: see
    :func:`normalized_reward`.
    """
    kappa = _threshold(threshold)
    reward, cost, episodes = _per_seed(task, returns, costs, kappa, reference)
    return _score(kappa, reward, cost, episodes)


def score_thresholds(
    task: str,
    results: Mapping[float, tuple[ArrayLike, ArrayLike]],
    reference: DSRLReference | None = None,
) -> SafeSummary:
    """Score every threshold in ``results`` (threshold -> (returns, costs), each shaped as in
    :func:`score_threshold`) and their average, as DSRL's tables report them (thresholds
    :data:`DSRL_THRESHOLDS`).

    The average is taken per seed (seed s's mean over thresholds) before the mean and spread
    over seeds, so its spread is that of a seed's overall score; every threshold must
    therefore have the same number of seeds. ``reference``: see :func:`normalized_reward`
    (with it, ``task`` is only the row's name and need not be a DSRL task).
    """
    if not results:
        raise ToraError("score_thresholds needs the episodes of at least one threshold")
    per_seed: dict[float, tuple[np.ndarray, np.ndarray, int]] = {}
    for threshold, (returns, costs) in results.items():
        kappa = _threshold(threshold)
        if kappa in per_seed:
            raise ToraError(f"threshold {kappa:g} is given twice")
        per_seed[kappa] = _per_seed(task, returns, costs, kappa, reference)
    seeds = {kappa: r.size for kappa, (r, _, _) in per_seed.items()}
    if len(set(seeds.values())) != 1:
        raise ShapeMismatchError(
            f"every threshold needs the same number of seeds to average over; got {seeds}"
        )
    ordered = sorted(per_seed)
    scores = tuple(_score(k, *per_seed[k]) for k in ordered)
    reward = np.mean([per_seed[k][0] for k in ordered], axis=0)
    cost = np.mean([per_seed[k][1] for k in ordered], axis=0)
    episodes = sum(per_seed[k][2] for k in ordered)
    average = _score(None, reward, cost, episodes)
    name = task if reference is not None else safety_task(task).name
    return SafeSummary(task=name, per_threshold=scores, average=average)
