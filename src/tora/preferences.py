"""Preference (weight) vectors: the evaluation grids and the checks on user-given weights.

A preference over ``K`` objectives is a point of the probability simplex: ``K`` finite,
non-negative weights summing to 1. TORA composes its per-objective planners as
``sum_i w_i eps_i``, so every weight that reaches a planner goes through
:func:`validate_weights` first.

The evaluation protocol of D4MORL (Zhu, Dang & Grover, "Scaling Pareto-Efficient Decision
Making via Offline Multi-Objective RL", ICLR 2023) sweeps a uniform grid of preferences:
501 points ``(w, 1 - w)`` for two objectives and the 325-point simplex lattice with 24
divisions for three. :func:`simplex_grid` builds those grids (and the lattice for any ``K``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from tora.errors import InvalidWeightsError, ShapeMismatchError

__all__ = ["Preferences", "lattice_size", "simplex_grid", "spread_rows", "validate_weights"]

# Tolerance on the row sums of user weights: loose enough for weights typed by hand with a few
# decimals or computed in float32, tight enough to catch a forgotten normalization.
_SUM_ATOL = 1e-6


def lattice_size(num_objectives: int, divisions: int) -> int:
    """Number of points of the simplex lattice ``{c / d : c in N^K, sum(c) = d}``.

    By stars and bars this is ``C(d + K - 1, K - 1)``.
    """
    return math.comb(divisions + num_objectives - 1, num_objectives - 1)


def _divisions_for(num_objectives: int, num_points: int) -> int:
    """The ``d`` whose lattice has exactly ``num_points`` points, or raise with the neighbours."""
    divisions = 1
    while lattice_size(num_objectives, divisions) < num_points:
        divisions += 1
    if lattice_size(num_objectives, divisions) == num_points:
        return divisions
    below = lattice_size(num_objectives, divisions - 1) if divisions > 1 else None
    above = lattice_size(num_objectives, divisions)
    nearest = (
        f"{below} (d={divisions - 1}) or {above} (d={divisions})"
        if below is not None
        else f"{above} (d={divisions})"
    )
    raise InvalidWeightsError(
        f"no uniform simplex lattice over {num_objectives} objectives has {num_points} points; "
        f"the nearest valid counts are {nearest}"
    )


def _nudge_to_one(row: np.ndarray) -> bool:
    """Move one non-zero entry of ``row`` by a few ulps so that ``row.sum() == 1.0``.

    Float addition is monotone, so stepping an entry one ulp at a time walks the sum towards
    1.0; it can still step over 1.0 when the entry's ulp is coarser than the sum's near 1
    (e.g. an entry of exactly 0.5), in which case the next entry is tried. Zeros are left
    alone: they are faces of the simplex ("ignore this objective") and must stay exact.
    """
    for col in np.argsort(-row, kind="stable"):
        if row[col] == 0.0:
            break
        original = row[col]
        direction = -np.inf if row.sum() > 1.0 else np.inf
        for _ in range(16):
            row[col] = np.nextafter(row[col], direction)
            total = row.sum()
            if total == 1.0:
                return True
            if (total > 1.0) != (direction == -np.inf):  # stepped over 1.0
                break
        row[col] = original
    return False


def _fix_row_sums(grid: np.ndarray) -> np.ndarray:
    """Make every row of ``grid`` sum to exactly 1.0 in floating point, in place.

    ``c / d`` is correctly rounded per entry, but the rounded entries need not add up to 1.
    A few ulps of change on one entry fix that without moving the point off its lattice
    site by more than rounding already did.
    """
    for row in np.flatnonzero(grid.sum(axis=1) != 1.0):
        if not _nudge_to_one(grid[row]):  # pragma: no cover - not seen for any K, d tried
            raise AssertionError(f"could not make row {grid[row].tolist()} sum to 1")
    return grid


def simplex_grid(num_objectives: int, num_points: int) -> np.ndarray:
    """Uniform grid of preference vectors on the simplex, shape ``(num_points, K)``.

    For ``K = 2`` the rows are ``(w, 1 - w)`` with ``num_points`` evenly spaced ``w`` from 1
    down to 0, so the first row is ``(1, 0)`` and the last ``(0, 1)`` (D4MORL uses 501).
    For ``K >= 3`` the rows are the simplex lattice ``c / d`` (``c`` non-negative integers
    summing to ``d``), with ``d`` chosen so that there are exactly ``num_points`` rows
    (D4MORL: ``K = 3``, 325 points, ``d = 24``); the rows are ordered by decreasing weight on
    objective 0, then on objective 1, and so on, which for ``K = 2`` is the order above.
    A single objective has a single preference: ``K = 1`` gives ``[[1.0]]``.

    Every row sums to exactly 1.0.

    Raises:
        InvalidWeightsError: ``num_objectives < 1``, ``num_points`` too small, or no lattice
            over ``K >= 3`` objectives has ``num_points`` points (the message names the
            nearest valid counts).
    """
    if isinstance(num_objectives, bool) or not isinstance(num_objectives, (int, np.integer)):
        raise InvalidWeightsError(f"num_objectives must be an integer, got {num_objectives!r}")
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)):
        raise InvalidWeightsError(f"num_points must be an integer, got {num_points!r}")
    k, n = int(num_objectives), int(num_points)
    if k < 1:
        raise InvalidWeightsError(f"num_objectives must be at least 1, got {k}")
    if k == 1:
        if n < 1:
            raise InvalidWeightsError(f"num_points must be at least 1, got {n}")
        return np.ones((1, 1), dtype=np.float64)
    if n < k:
        # d = 1 (the K vertices) is the coarsest lattice that still covers every objective.
        raise InvalidWeightsError(
            f"a grid over {k} objectives needs at least {k} points (its vertices), got {n}"
        )
    divisions = n - 1 if k == 2 else _divisions_for(k, n)

    # Stars and bars: choosing K-1 bar positions among d+K-1 slots gives one composition of d.
    # itertools.combinations yields bar positions in lexicographic order, i.e. by increasing
    # count on objective 0; reversing gives decreasing counts, the order documented above.
    bars = np.array(list(itertools.combinations(range(divisions + k - 1), k - 1)), dtype=np.int64)
    bars = bars[::-1]
    edges = np.concatenate(
        [
            np.full((bars.shape[0], 1), -1, dtype=np.int64),
            bars,
            np.full((bars.shape[0], 1), divisions + k - 1, dtype=np.int64),
        ],
        axis=1,
    )
    counts = np.diff(edges, axis=1) - 1
    grid = counts.astype(np.float64) / divisions
    return _fix_row_sums(grid)


def _objective_label(index: int, names: Sequence[str] | None) -> str:
    if names is not None and index < len(names):
        return f"objective {index} ({names[index]!r})"
    return f"objective {index}"


def validate_weights(
    weights: ArrayLike, num_objectives: int, names: Sequence[str] | None = None
) -> np.ndarray:
    """Check preference weights and return them as a float64 array of shape ``(B, K)``.

    Args:
        weights: one preference ``(K,)`` or a batch ``(B, K)``, as an array or nested lists.
        num_objectives: ``K``, the number of objectives the weights must cover.
        names: optional objective names, used only to make error messages say which
            objective is which.

    Returns:
        A new float64 array of shape ``(B, K)`` (``B = 1`` for a single preference).

    Raises:
        InvalidWeightsError: the weights are not numeric, have the wrong length, are empty,
            contain NaN or inf, contain a negative entry, or a row does not sum to 1 within
            ``1e-6``; or ``weights`` is a :class:`Preferences` made for another number or
            order of objectives.

    A :class:`Preferences` was checked when it was made, so it is only matched against
    ``num_objectives`` and ``names`` (where both name the objectives) and returned as a copy.
    """
    if isinstance(weights, Preferences):
        return weights.checked_for(num_objectives, names)
    return _check_values(weights, int(num_objectives), names)


def _check_values(weights: ArrayLike, k: int, names: Sequence[str] | None) -> np.ndarray:
    """:func:`validate_weights` on anything but a :class:`Preferences`: every check, every row."""
    named = f" ({', '.join(map(str, names))})" if names else ""
    try:
        arr = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidWeightsError(
            f"weights must be numbers, one per objective{named}; got {weights!r}"
        ) from exc
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidWeightsError(
            f"weights must have shape (K,) or (B, K) with K = {k}; got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise InvalidWeightsError("weights are empty: give at least one preference vector")
    if arr.shape[1] != k:
        raise InvalidWeightsError(
            f"expected {k} weights per preference, one per objective{named}, "
            f"got {arr.shape[1]}: {arr[0].tolist()}"
        )

    # Report the first offending row so the user can find it in a long batch.
    def where(row: int) -> str:
        return f"weights {arr[row].tolist()}" + (f" (row {row})" if arr.shape[0] > 1 else "")

    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InvalidWeightsError(
            f"weights must be finite: {where(row)} has {arr[row, col]} for "
            f"{_objective_label(col, names)}"
        )
    negative = arr < 0
    if negative.any():
        row, col = np.argwhere(negative)[0]
        raise InvalidWeightsError(
            f"weights must be non-negative: {where(row)} has {arr[row, col]:g} for "
            f"{_objective_label(col, names)}"
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > _SUM_ATOL
    if off.any():
        row = int(np.argmax(off))
        raise InvalidWeightsError(f"weights must sum to 1: {where(row)} sum to {sums[row]:.10g}")
    return arr


class Preferences:
    """Preference rows checked once by :func:`validate_weights`: (B, K) float64, read-only,
    with the objective names they were checked against (if given).

    Made at the edge (a command's options, a sweep's grid), a ``Preferences`` travels through
    rollouts and ``act`` calls without being checked again: :func:`validate_weights` and
    every ``act(obs, weights)`` accept one and only match its objective count (and names)
    against the models', instead of re-checking every row on every step of every episode.
    """

    __slots__ = ("names", "rows")

    def __init__(
        self, weights: ArrayLike, num_objectives: int, names: Sequence[str] | None = None
    ) -> None:
        self.rows = validate_weights(weights, num_objectives, names)
        self.rows.setflags(write=False)
        self.names = tuple(str(n) for n in names) if names else None

    @classmethod
    def _trusted(cls, rows: np.ndarray, names: tuple[str, ...] | None) -> Preferences:
        """Rows taken from an existing ``Preferences``: already checked."""
        out = object.__new__(cls)
        out.rows = rows
        out.rows.setflags(write=False)
        out.names = names
        return out

    @property
    def num_objectives(self) -> int:
        return int(self.rows.shape[1])

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __repr__(self) -> str:
        return f"Preferences({len(self)} rows over {self.names or self.num_objectives})"

    def take(self, index: ArrayLike) -> Preferences:
        """The rows at ``index`` (an integer array or slice), still checked."""
        return Preferences._trusted(np.atleast_2d(self.rows[index]), self.names)

    def repeat(self, times: int) -> Preferences:
        """Each row ``times`` times in a row (row i's copies at i*times .. i*times+times-1)."""
        return Preferences._trusted(np.repeat(self.rows, times, axis=0), self.names)

    def checked_for(self, num_objectives: int, names: Sequence[str] | None = None) -> np.ndarray:
        """A writable copy of the rows, after matching them against a consumer's objectives."""
        if self.num_objectives != int(num_objectives):
            raise InvalidWeightsError(
                f"these preferences have {self.num_objectives} weights per row "
                f"({', '.join(self.names or ())}); expected {int(num_objectives)}"
            )
        if names and self.names and tuple(str(n) for n in names) != self.names:
            raise InvalidWeightsError(
                f"these preferences weigh the objectives in the order {', '.join(self.names)}, "
                f"but the models' order is {', '.join(map(str, names))}"
            )
        return np.array(self.rows)


def spread_rows(rows: np.ndarray, batch: int, item: str = "observation") -> np.ndarray:
    """(batch, K) weights for a batch: a single row is shared by every item, ``batch`` rows
    pass through, any other count is a ShapeMismatchError."""
    if rows.shape[0] == batch:
        return rows
    if rows.shape[0] == 1:
        return np.repeat(rows, batch, axis=0)
    raise ShapeMismatchError(
        f"{rows.shape[0]} weight rows for {batch} {item}s; give one row per {item} or a "
        "single (K,) preference for the whole batch"
    )
