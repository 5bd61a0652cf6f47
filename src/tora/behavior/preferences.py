"""D4MORL's per-episode preference sampling (Zhu, Dang & Grover 2023), as pure functions.

D4MORL collected each trajectory under its own preference ``w`` and rolled out the behaviour
policy whose *normalized return vector* lies closest to ``w``, not the policy whose training
weight does (``shared/REFERENCE.md`` section 1 describes the protocol; the PEDA code that
made the files is not public, so this module implements that description). Three steps:

1. :func:`normalize_returns`: each policy's return vector ``R`` becomes ``R / sum(R)``, a point
   of the simplex. The division needs positive returns; if some objective has a return
   ``<= 0`` for some policy, that objective is first shifted by ``-(min over policies) + eps``
   for every policy, so its worst policy gets ``eps`` and the order of policies along every
   objective is unchanged. Objectives whose returns are already all positive are not shifted
   (D4MORL's objectives carry +1 alive bonuses and are positive for useful policies, where
   this reduces to the plain ``R / sum(R)``).

2. :func:`sample_preferences` draws ``n`` preferences (rows on the simplex), using the
   policies' normalized returns only through their per-objective range ``[lo_k, hi_k]``
   (min and max over policies):

   - ``"uniform"``: ``x ~ Dirichlet(1, ..., 1)``;
   - ``"wide"``: per episode a concentration vector ``alpha_k ~ U(0, 1e7)`` per objective,
     then ``x ~ Dirichlet(alpha)``. With concentrations this large the Dirichlet is nearly a
     point mass at ``alpha / sum(alpha)``, so the spread comes from the uniform draw of
     ``alpha``: for two objectives ``x_1`` ranges over all of (0, 1);
   - ``"narrow"``: ``alpha_k ~ U(1e7 / 3, 2e7 / 3)`` (for two objectives ``x_1`` stays within
     [1/3, 2/3]), and the range is shrunk by a third on each side,
     ``[lo_k + (hi_k - lo_k) / 3, hi_k - (hi_k - lo_k) / 3]``.

   Then each component is rescaled into the range, ``lo_k + x_k (hi_k - lo_k)``, and the row
   is divided by its sum so that it lies on the simplex again. For two objectives whose
   normalized returns lie on the simplex the rescaled row already sums to 1 and stays in the
   range exactly; for three or more the final division can move a component slightly outside
   its range. Dirichlet samples with a concentration per row are drawn as normalized
   independent Gamma variables (the textbook construction), as NumPy's ``Generator.dirichlet``
   takes one concentration vector for all rows.

3. :func:`closest_policy`: the policy whose normalized return is nearest (Euclidean) to each
   preference; ties go to the lower policy index.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seeded generator
repeats the draws exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from tora.errors import DataError, ShapeMismatchError

__all__ = [
    "CONCENTRATION_SCALE",
    "PREFERENCE_KINDS",
    "PreferenceKind",
    "closest_policy",
    "normalize_returns",
    "preference_range",
    "sample_preferences",
]

PreferenceKind = Literal["uniform", "wide", "narrow"]
PREFERENCE_KINDS: tuple[str, ...] = ("uniform", "wide", "narrow")
"""The preference distributions of D4MORL's datasets (the last part of their file names)."""

CONCENTRATION_SCALE = 1e7
"""Upper end of the Dirichlet concentrations D4MORL draws for "wide" (and, scaled by 1/3 and
2/3, the bounds for "narrow")."""

_SHIFT_EPS = 1e-6
"""Return given to the worst policy of an objective that needed shifting (see module doc)."""


def _as_matrix(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeMismatchError(f"{name} must be a non-empty (N, K) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name} must be finite")
    return arr


def normalize_returns(returns: ArrayLike, eps: float = _SHIFT_EPS) -> np.ndarray:
    """Each policy's return vector divided by its sum: ``(P, K)`` rows on the simplex.

    Objectives with a return ``<= 0`` for some policy are first shifted by
    ``-(min over policies) + eps`` (for all policies), so that every entry is positive; the
    other objectives are left as they are. See the module docstring for why.

    Args:
        returns: ``(P, K)`` mean return vector of each behaviour policy.
        eps: the value the worst policy of a shifted objective ends up with.
    """
    arr = _as_matrix(returns, "returns")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    low = arr.min(axis=0)
    shift = np.where(low <= 0.0, eps - low, 0.0)
    positive = arr + shift
    return positive / positive.sum(axis=1, keepdims=True)


def preference_range(
    kind: PreferenceKind | str, normalized_returns: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-objective ``(lo, hi)`` range that preferences of ``kind`` are rescaled into.

    The min and max over policies of the normalized returns; ``"narrow"`` shrinks it by a
    third of its width on each side.
    """
    _check_kind(kind)
    nr = _as_matrix(normalized_returns, "normalized_returns")
    lo, hi = nr.min(axis=0), nr.max(axis=0)
    if kind == "narrow":
        third = (hi - lo) / 3.0
        lo, hi = lo + third, hi - third
    return lo, hi


def _check_kind(kind: str) -> None:
    if kind not in PREFERENCE_KINDS:
        raise ValueError(
            f"unknown preference distribution {kind!r}; choose from {PREFERENCE_KINDS}"
        )


def _dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Dirichlet sample per row of concentrations ``alpha`` (n, K), via Gamma draws."""
    # U(0, 1e7) can return exactly 0, and Gamma(0) is the point mass at 0; the smallest
    # positive concentration keeps the row a proper (if extreme) Dirichlet draw.
    g = rng.standard_gamma(np.maximum(alpha, np.finfo(np.float64).tiny))
    total = g.sum(axis=1, keepdims=True)
    k = alpha.shape[1]
    # A row of all-zero Gamma draws (possible only with vanishing concentrations) has no
    # direction: the simplex centre is the neutral choice.
    return np.where(total > 0, g / np.where(total > 0, total, 1.0), 1.0 / k)


def sample_preferences(
    kind: PreferenceKind | str,
    n: int,
    normalized_returns: ArrayLike,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n, K)`` preferences drawn as D4MORL drew one per trajectory (see module docstring).

    Args:
        kind: ``"uniform"``, ``"wide"`` or ``"narrow"``.
        n: number of preferences (episodes).
        normalized_returns: ``(P, K)`` output of :func:`normalize_returns` for the behaviour
            policies; only its per-objective min and max are used.
        rng: the source of all randomness.

    Returns:
        float64 rows, each non-negative and summing to 1.
    """
    _check_kind(kind)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    lo, hi = preference_range(kind, normalized_returns)
    k = lo.size
    if kind == "uniform":
        x = rng.dirichlet(np.ones(k), size=n) if n else np.zeros((0, k))
    else:
        low, high = (0.0, 1.0) if kind == "wide" else (1.0 / 3.0, 2.0 / 3.0)
        alpha = rng.uniform(low * CONCENTRATION_SCALE, high * CONCENTRATION_SCALE, size=(n, k))
        x = _dirichlet_rows(alpha, rng)
    scaled = lo + x * (hi - lo)
    total = scaled.sum(axis=1, keepdims=True)
    # The range's lower ends sum to at most 1 and its upper ends to at least 1, so a zero sum
    # needs a degenerate range (all normalized returns 0 on the drawn support); fall back to
    # the centre rather than divide by zero.
    return np.where(total > 0, scaled / np.where(total > 0, total, 1.0), 1.0 / k)


def closest_policy(preferences: ArrayLike, normalized_returns: ArrayLike) -> np.ndarray:
    """Index of the policy whose normalized return is nearest (Euclidean) to each preference.

    Args:
        preferences: ``(n, K)`` preferences (or one ``(K,)`` preference).
        normalized_returns: ``(P, K)`` normalized returns of the policies.

    Returns:
        ``(n,)`` int64 indices into the policies; ties go to the lower index.
    """
    nr = _as_matrix(normalized_returns, "normalized_returns")
    w = np.asarray(preferences, dtype=np.float64)
    w = w[None, :] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] != nr.shape[1]:
        raise ShapeMismatchError(
            f"preferences must be (n, {nr.shape[1]}) to match the policies' returns, "
            f"got shape {w.shape}"
        )
    dist = np.linalg.norm(w[:, None, :] - nr[None, :, :], axis=-1)
    return np.argmin(dist, axis=1).astype(np.int64)
