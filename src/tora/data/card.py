"""A dataset card: what trade-offs a multi-objective dataset covers, in a few numbers.

D4MORL (Zhu, Dang & Grover 2023) describes each of its datasets by the front its behaviour
policies reach and by how the collection preferences cover the simplex; the card computes
the same facts from the data itself, for any :class:`~tora.data.Trajectories`:

- the *behaviour front*: the non-dominated episode return vectors, its hypervolume with
  respect to a reference point (0 by default, D4MORL's choice, which suits positive
  objectives only; episodes whose return is not beyond the point on every objective enclose
  no volume and are dropped, and the card counts them) and its sparsity (PGMORL's mean squared
  gap between neighbouring front points, :func:`tora.evaluate.pareto.sparsity`);
- per-objective return min / mean / max;
- if the data records per-episode preferences: their per-objective min and max and a 10-bin
  histogram of the first component over [0, 1] (for two objectives that component fixes the
  preference);
- the quality and preference distribution the data was made with, when its metadata says so
  (``quality`` and ``prefs`` from ``tora data make``, ``preference_dist`` from a D4MORL file
  name).

Objective directions are respected: a minimized objective (a cost) counts as better when
smaller, for the front and for the reference point.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tora.data.trajectories import Direction, Trajectories
from tora.errors import ShapeMismatchError
from tora.evaluate.pareto import hypervolume, pareto_front, sparsity

__all__ = ["HISTOGRAM_BINS", "dataset_card", "format_card", "plot_card"]

HISTOGRAM_BINS = 10
"""Bins of the preference histogram over [0, 1]."""


def _ref_point(traj: Trajectories, ref_point: ArrayLike | None) -> np.ndarray:
    k = traj.num_objectives
    if ref_point is None:
        return np.zeros(k)
    ref = np.asarray(ref_point, dtype=np.float64).reshape(-1)
    if ref.size == 1:
        ref = np.full(k, ref[0])
    if ref.size != k:
        raise ShapeMismatchError(f"ref_point has {ref.size} entries, the data {k} objectives")
    return ref


def _preference_coverage(prefs: np.ndarray) -> dict[str, Any]:
    p = prefs.astype(np.float64)
    counts, edges = np.histogram(p[:, 0], bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "min": p.min(axis=0).tolist(),
        "max": p.max(axis=0).tolist(),
        "first_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def dataset_card(traj: Trajectories, ref_point: ArrayLike | None = None) -> dict[str, Any]:
    """The card of ``traj`` as a JSON-ready dict (module docstring lists what it holds).

    Keys: ``quality``, ``prefs`` (None when unknown), ``ref_point``, ``hypervolume``,
    ``sparsity``, ``front_episodes`` (unique non-dominated episode returns),
    ``episodes_beyond_ref`` (episodes that count towards the hypervolume), ``returns``
    (objective name -> min / mean / max) and ``preferences`` (None, or min / max per
    objective and ``first_histogram`` with 11 ``edges`` and 10 ``counts``).
    """
    returns = traj.episode_returns()
    maximize = [o.direction is Direction.MAXIMIZE for o in traj.objectives]
    ref = _ref_point(traj, ref_point)
    signs = np.where(maximize, 1.0, -1.0)
    beyond = np.all(signs * returns > signs * ref, axis=1)
    meta = traj.metadata
    return {
        "quality": meta.get("quality"),
        "prefs": meta.get("prefs") or meta.get("preference_dist"),
        "ref_point": ref.tolist(),
        "hypervolume": hypervolume(returns, ref, maximize),
        "sparsity": sparsity(returns, maximize),
        "front_episodes": int(pareto_front(returns, maximize).shape[0]),
        "episodes_beyond_ref": int(beyond.sum()),
        "returns": {
            name: {
                "min": float(returns[:, j].min()),
                "mean": float(returns[:, j].mean()),
                "max": float(returns[:, j].max()),
            }
            for j, name in enumerate(traj.objective_names)
        },
        "preferences": None if traj.preferences is None else _preference_coverage(traj.preferences),
    }


def _g(x: float) -> str:
    return f"{x:.4g}"


def format_card(card: dict[str, Any], episodes: int | None = None) -> str:
    """The card as indented text lines under a ``card`` heading.

    Lines use ``key: value`` (no aligned `` : `` column), so they can follow
    :func:`tora.data.inspect.format_summary`'s block without disturbing its alignment.
    """
    total = f" of {episodes}" if episodes is not None else ""
    lines = ["card"]
    if card.get("quality") or card.get("prefs"):
        quality, dist = card.get("quality") or "-", card.get("prefs") or "-"
        lines.append(f"  made with: quality {quality}, prefs {dist}")
    ref = ", ".join(_g(x) for x in card["ref_point"])
    lines.append(
        f"  behaviour front: hypervolume {_g(card['hypervolume'])} (ref point [{ref}], "
        f"{card['episodes_beyond_ref']}{total} episodes beyond it), sparsity "
        f"{_g(card['sparsity'])}, {card['front_episodes']} front episodes"
    )
    returns: dict[str, dict[str, float]] = card.get("returns") or {}
    width = max((len(n) for n in returns), default=0)
    for name, r in returns.items():
        lines.append(
            f"  return {name:<{width}}  min {_g(r['min'])}  mean {_g(r['mean'])}  "
            f"max {_g(r['max'])}"
        )
    coverage = card.get("preferences")
    if coverage is None:
        lines.append("  preferences: not recorded")
    else:
        lo = ", ".join(_g(x) for x in coverage["min"])
        hi = ", ".join(_g(x) for x in coverage["max"])
        lines.append(f"  preferences: min [{lo}]  max [{hi}]")
        counts = " ".join(str(c) for c in coverage["first_histogram"]["counts"])
        lines.append(f"  first preference component, 10 bins over [0, 1]: {counts}")
    return "\n".join(lines)


def plot_card(
    traj: Trajectories,
    path: str | os.PathLike[str],
    ref_point: ArrayLike | None = None,
    title: str = "",
) -> Path | None:
    """Scatter of the episode returns with the behaviour front, as a PNG at ``path``.

    Uses :func:`tora.evaluate.plots.plot_pareto_front`, which draws 2 or 3 objectives; for
    other counts nothing is written and None is returned.
    """
    if traj.num_objectives not in (2, 3):
        return None
    from tora.evaluate.plots import plot_pareto_front  # matplotlib only when plotting

    maximize = [o.direction is Direction.MAXIMIZE for o in traj.objectives]
    env = traj.metadata.get("env_id") or "dataset"
    return plot_pareto_front(
        {"episodes": traj.episode_returns()},
        path,
        traj.objective_names,
        title=title or f"{env}: episode returns and behaviour front",
        ref_point=_ref_point(traj, ref_point),
        maximize=maximize,
    )
