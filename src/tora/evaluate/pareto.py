"""Multi-objective evaluation metrics on a set of return vectors.

Each function takes ``points``, an ``(N, K)`` array of return vectors (one row per evaluated
preference or policy), and ``maximize``, one flag per objective (default: every objective is
maximized; pass ``False`` for a cost). All are pure: they copy nothing back and keep no state.

Definitions followed:

* Pareto dominance: ``a`` dominates ``b`` when ``a`` is at least as good on every objective and
  strictly better on one.
* Hypervolume (Zitzler & Thiele, "Multiobjective Optimization Using Evolutionary Algorithms -
  A Comparative Case Study", PPSN 1998; the "S metric"): the Lebesgue measure of the region
  dominated by the points and bounded by a reference point. Computed exactly by ``moocore``.
* Sparsity (Xu et al., "Prediction-Guided Multi-Objective Reinforcement Learning for
  Continuous Robot Control" (PGMORL), ICML 2020, as used by D4MORL, Zhu et al., ICLR 2023):
  the mean squared gap between neighbouring non-dominated points, taken per objective.
* Expected utility (Zintgraf et al., "Quality Assessment of MORL Algorithms: A Utility-Based
  Approach", 2015, in the form of morl-baselines, Felten et al., NeurIPS 2023): the mean over
  a set of weight vectors of the best linear utility ``w . v`` any point achieves.
* Steering correlation (ours): Spearman's rank correlation between the weight on each
  objective and the return on it, averaged over objectives: whether the preference given at
  inference actually moves the behaviour, which the front metrics cannot see.

The D4MORL protocol evaluates 501 preferences for two objectives (325 for three), averages the
raw return vector per preference and reports the hypervolume with reference point 0 and the
sparsity of those vectors; :func:`front_metrics` gathers these numbers for one run. A reference
point of 0 suits D4MORL's positive objectives only: for costs or negative rewards, name one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import moocore
import numpy as np
from numpy.typing import ArrayLike

from tora.errors import DataError, ShapeMismatchError
from tora.preferences import lattice_size, simplex_grid, validate_weights

__all__ = [
    "expected_utility",
    "front_metrics",
    "hypervolume",
    "pareto_front",
    "pareto_mask",
    "sparsity",
    "steering_correlation",
]

Maximize = bool | Sequence[bool] | None

# front_metrics' default weight set when the caller gives none: at least this many weights.
_DEFAULT_EU_WEIGHTS = 100


def _as_points(points: ArrayLike, num_objectives: int | None = None) -> np.ndarray:
    """``points`` as a finite float64 ``(N, K)`` array; an empty input becomes ``(0, K)``."""
    try:
        arr = np.array(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"points must be a numeric (N, K) array: {exc}") from exc
    if arr.size == 0:
        k = arr.shape[-1] if arr.ndim == 2 else (num_objectives or 0)
        return np.zeros((0, k), dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(
            f"points must be a 2-D array (one return vector per row), got shape {arr.shape}"
        )
    if num_objectives is not None and arr.shape[1] != num_objectives:
        raise ShapeMismatchError(
            f"points have {arr.shape[1]} objectives but {num_objectives} were expected"
        )
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(f"points must be finite; row {row} is {arr[row].tolist()}")
    return arr


def _signs(maximize: Maximize, num_objectives: int) -> np.ndarray:
    """+1 per maximized objective, -1 per minimized one: ``signs * v`` is "more is better"."""
    if maximize is None:
        return np.ones(num_objectives, dtype=np.float64)
    if isinstance(maximize, (bool, np.bool_)):
        return np.full(num_objectives, 1.0 if maximize else -1.0)
    flags = np.asarray(maximize, dtype=bool).reshape(-1)
    if flags.shape[0] != num_objectives:
        raise ShapeMismatchError(
            f"maximize has {flags.shape[0]} flags but the points have {num_objectives} objectives"
        )
    return np.where(flags, 1.0, -1.0)


def _mask_max(gains: np.ndarray) -> np.ndarray:
    """Non-dominated mask of rows of ``gains``, all objectives maximized; first copy kept.

    Rows are compared one against all, vectorized over the others: O(N^2 K) time but O(N K)
    memory, which stays cheap for the few hundred to few thousand points an evaluation has,
    where an all-pairs tensor would need O(N^2 K) memory.
    """
    n = gains.shape[0]
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            # Anything i dominates is also dominated by whatever dominates i (transitivity),
            # so a discarded row never needs to be scanned.
            continue
        p = gains[i]
        at_least = np.all(gains >= p, axis=1)
        at_most = np.all(gains <= p, axis=1)
        equal = at_least & at_most
        if np.any(at_least & ~equal):
            keep[i] = False
        worse = at_most & ~equal
        # Later copies of a point go, earlier copies have already been kept or dropped.
        equal[: i + 1] = False
        keep[worse | equal] = False
    return keep


def pareto_mask(points: ArrayLike, maximize: Maximize = None) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points``.

    A row is kept when no other row dominates it (at least as good on every objective and
    strictly better on one). Of several identical non-dominated rows only the first is kept,
    so ``points[mask]`` has unique rows.

    Args:
        points: ``(N, K)`` return vectors.
        maximize: per objective, whether larger is better (default all ``True``).

    Returns:
        A bool array of shape ``(N,)``.
    """
    arr = _as_points(points)
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return _mask_max(arr * _signs(maximize, arr.shape[1]))


def pareto_front(points: ArrayLike, maximize: Maximize = None) -> np.ndarray:
    """The non-dominated rows of ``points`` (unique), sorted by the first objective ascending.

    Ties on the first objective are broken by the second, then the third, and so on, so the
    order does not depend on the input order.
    """
    arr = _as_points(points)
    if arr.shape[0] == 0:
        return arr
    front = arr[pareto_mask(arr, maximize)]
    # np.lexsort sorts by its last key first, hence the reversed columns.
    return front[np.lexsort(front.T[::-1])]


def hypervolume(points: ArrayLike, ref_point: ArrayLike, maximize: Maximize = None) -> float:
    """Exact hypervolume of ``points`` with respect to ``ref_point`` (Zitzler & Thiele 1998).

    The volume of the union of the boxes spanned between the reference point and each point.
    Points that do not strictly dominate the reference point (for instance a return below 0
    with the D4MORL reference point 0) are dropped: they enclose no volume. Dominated points
    add nothing. An empty set, or one with no point beyond the reference, gives 0.0.

    ``moocore.hypervolume`` assumes minimization, so maximized objectives and their reference
    coordinates are negated before the call.

    Args:
        points: ``(N, K)`` return vectors.
        ref_point: ``(K,)`` reference point, or a scalar used for every objective.
        maximize: per objective, whether larger is better (default all ``True``).
    """
    ref = np.array(ref_point, dtype=np.float64).reshape(-1)
    arr = _as_points(points)
    # An empty 1-D input (``[]``) has no width of its own; the reference point gives it.
    k = arr.shape[1] or ref.shape[0]
    if ref.shape[0] == 1 and k > 1:
        ref = np.full(k, ref[0])
    if ref.shape[0] != k:
        raise ShapeMismatchError(f"ref_point has {ref.shape[0]} entries, points have {k}")
    if not np.isfinite(ref).all():
        raise DataError(f"ref_point must be finite, got {ref.tolist()}")
    if arr.shape[0] == 0:
        return 0.0
    signs = _signs(maximize, k)
    # Minimization space: smaller is better on every axis.
    costs = -signs * arr
    ref_cost = -signs * ref
    beyond = np.all(costs < ref_cost, axis=1)
    if not beyond.any():
        return 0.0
    return float(moocore.hypervolume(costs[beyond], ref=ref_cost))


def sparsity(points: ArrayLike, maximize: Maximize = None) -> float:
    """Sparsity of the Pareto front of ``points`` (PGMORL, Xu et al. 2020; D4MORL 2023).

    With ``F`` the ``N`` non-dominated points: for each objective ``j`` sort ``F[:, j]``, sum
    the squared differences between neighbours, add the sums over objectives and divide by
    ``N - 1``. Lower is denser. Fewer than 2 front points give 0.0.

    Unlike PGMORL's code, which keeps repeated points, the front here has unique points
    (:func:`pareto_mask`), so evaluating one policy twice does not make a front look denser.
    """
    front = pareto_front(points, maximize)
    n = front.shape[0]
    if n < 2:
        return 0.0
    gaps = np.diff(np.sort(front, axis=0), axis=0)
    return float(np.sum(gaps**2) / (n - 1))


def expected_utility(points: ArrayLike, weights: ArrayLike, maximize: Maximize = None) -> float:
    """Expected linear utility (Zintgraf et al. 2015; morl-baselines' ``expected_utility``).

    ``mean over weight rows w of max over points v of w . v``, where a minimized objective
    enters as ``-v`` so that larger utility is always better. Taking the max over all points
    equals taking it over the Pareto front, since the weights are non-negative.

    Args:
        points: ``(N, K)`` return vectors, ``N >= 1``.
        weights: ``(K,)`` or ``(B, K)`` preference vectors (checked by
            :func:`~tora.preferences.validate_weights`).
        maximize: per objective, whether larger is better (default all ``True``).

    Raises:
        DataError: no points.
        InvalidWeightsError: invalid weights.
    """
    arr = _as_points(points)
    if arr.shape[0] == 0:
        raise DataError("expected_utility needs at least one point")
    k = arr.shape[1]
    w = validate_weights(weights, k)
    gains = arr * _signs(maximize, k)
    utilities = w @ gains.T  # (B, N)
    return float(np.mean(np.max(utilities, axis=1)))


def _default_weights(num_objectives: int) -> np.ndarray:
    """Evaluation weights for front_metrics: 100 for K = 2, else the coarsest lattice >= 100."""
    if num_objectives <= 2:
        return simplex_grid(num_objectives, _DEFAULT_EU_WEIGHTS)
    divisions = 1
    while lattice_size(num_objectives, divisions) < _DEFAULT_EU_WEIGHTS:
        divisions += 1
    return simplex_grid(num_objectives, lattice_size(num_objectives, divisions))


def front_metrics(
    points: ArrayLike,
    ref_point: ArrayLike,
    weights: ArrayLike | None = None,
    maximize: Maximize = None,
) -> dict[str, Any]:
    """All the front metrics of one evaluation, as a JSON-ready dict.

    Keys:
        ``hypervolume`` (float, :func:`hypervolume` w.r.t. ``ref_point``),
        ``sparsity`` (float, :func:`sparsity`),
        ``expected_utility`` (float, :func:`expected_utility` over ``weights``; by default
        over ``simplex_grid(2, 100)`` for two objectives, and for ``K >= 3`` the coarsest
        simplex lattice with at least 100 points),
        ``num_front_points`` (int) and ``front`` (the unique non-dominated points sorted by
        the first objective, as a list of lists of floats).
    """
    arr = _as_points(points)
    if arr.shape[0] == 0:
        raise DataError("front_metrics needs at least one point")
    k = arr.shape[1]
    front = pareto_front(arr, maximize)
    eu_weights = _default_weights(k) if weights is None else weights
    return {
        "hypervolume": hypervolume(arr, ref_point, maximize),
        "sparsity": sparsity(arr, maximize),
        "expected_utility": expected_utility(arr, eu_weights, maximize),
        "num_front_points": int(front.shape[0]),
        "front": front.tolist(),
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their mean rank (what Spearman's coefficient needs)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def steering_correlation(weights: ArrayLike, points: ArrayLike, maximize: Maximize = None) -> float:
    """How well the preference steers the returns: Spearman's rank correlation between the
    weight on objective k and the (signed) return on objective k, averaged over objectives.

    1 when more weight on an objective always gives more of it, about 0 when the weights do
    not matter, negative when they steer the wrong way. Hypervolume cannot tell these apart:
    an agent whose returns ignore the preference can still scatter points along the front.
    An objective whose weight or return never varies contributes 0 (nothing is steered).
    """
    w = np.asarray(weights, dtype=np.float64)
    arr = _as_points(points)
    if w.shape != arr.shape:
        raise ShapeMismatchError(f"weights {w.shape} and points {arr.shape} must match")
    signed = arr * _signs(maximize, arr.shape[1])
    values = []
    for k in range(arr.shape[1]):
        a, b = _ranks(w[:, k]), _ranks(signed[:, k])
        a, b = a - a.mean(), b - b.mean()
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        values.append(float((a * b).sum()) / denom if denom > 0 else 0.0)
    return float(np.mean(values))
