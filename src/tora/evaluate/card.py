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
- episode lengths (min / mean / max) and how many episodes end in a terminal state: on the
  MuJoCo tasks that terminate (Hopper, Walker2d) a terminal is a fall, so this says whether
  the behaviour policies stay up in the data, not only in their own evaluation;
- if the data records per-episode preferences: their per-objective min and max, a 10-bin
  histogram of the first component over [0, 1] (for two objectives that component fixes the
  preference) and the data's own steering: Spearman's correlation between an episode's
  preference and its return, averaged over objectives, the same measure the benchmark
  tables give an agent (:func:`tora.evaluate.pareto.steering_correlation`). An agent learns
  the trade-off from this data, so a low value warns that the data itself does not show
  more weight buying more return (e.g. when the policies at one end of the preference range
  are the set's weak ones);
- the quality and preference distribution the data was made with, when its metadata says so
  (``quality`` and ``prefs`` from ``tora data make``, ``preference_dist`` from a D4MORL file
  name).

Objective directions are respected: a minimized objective (a cost) counts as better when
smaller, for the front and for the reference point.

Data of a safe-RL task (a ``reward`` and a ``cost`` to minimize, with an env id naming one of
the six Bullet-Safety-Gym tasks) also gets a ``safe`` section in DSRL's terms (Liu et al.
2023; :mod:`tora.evaluate.safe`): the range of the episodes' normalized reward
``(R - R_min) / (R_max - R_min)`` and cost, the normalized cost ``C / kappa`` at DSRL's
thresholds 10, 20 and 40 with the share of safe episodes (``C < kappa``) at each, and whether
the costs reach the task's maximum in DSRL's dataset. Its plot is a reward/cost scatter of the
episodes (:func:`plot_card`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tora.data.trajectories import Direction, Trajectories
from tora.envs.safety import safety_task
from tora.errors import ShapeMismatchError, ToraError
from tora.evaluate.pareto import hypervolume, pareto_front, sparsity, steering_correlation
from tora.evaluate.plots import plot_pareto_front
from tora.evaluate.safe import (
    DSRL_THRESHOLDS,
    dsrl_reference,
    is_safe,
    normalized_cost,
    normalized_reward,
)
from tora.io import atomic_write

__all__ = ["HISTOGRAM_BINS", "dataset_card", "format_card", "plot_card", "safe_card"]

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


def _preference_coverage(
    prefs: np.ndarray, returns: np.ndarray, maximize: list[bool]
) -> dict[str, Any]:
    p = prefs.astype(np.float64)
    counts, edges = np.histogram(p[:, 0], bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "min": p.min(axis=0).tolist(),
        "max": p.max(axis=0).tolist(),
        "first_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "steering": steering_correlation(p, returns, maximize),
    }


def dataset_card(traj: Trajectories, ref_point: ArrayLike | None = None) -> dict[str, Any]:
    """The card of ``traj`` as a JSON-ready dict (module docstring lists what it holds).

    Keys: ``quality``, ``prefs`` (None when unknown), ``ref_point``, ``hypervolume``,
    ``sparsity``, ``front_episodes`` (unique non-dominated episode returns),
    ``episodes_beyond_ref`` (episodes that count towards the hypervolume), ``returns``
    (objective name -> min / mean / max), ``lengths`` (episode length min / mean / max),
    ``terminated_episodes`` (episodes whose last step is a terminal), ``preferences`` (None,
    or min / max per objective and ``first_histogram`` with 11 ``edges`` and 10 ``counts``)
    and ``safe`` (:func:`safe_card`; None unless the data is a safe-RL task's). The default
    reference point is 0, except for a safe-RL task's data: (R_min, the task's max cost) in
    DSRL's constants, since no cost is below 0.
    """
    returns = traj.episode_returns()
    maximize = [o.direction is Direction.MAXIMIZE for o in traj.objectives]
    ref = _ref_point(traj, _safe_ref_point(traj) if ref_point is None else ref_point)
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
        "lengths": _range(traj.episode_lengths.astype(np.float64)),
        "terminated_episodes": int(traj.terminals[traj.episode_bounds[1:] - 1].sum()),
        "preferences": (
            None
            if traj.preferences is None
            else _preference_coverage(traj.preferences, returns, maximize)
        ),
        "safe": safe_card(traj),
    }


def _safe_task(traj: Trajectories) -> tuple[str, int, int] | None:
    """(task name, reward column, cost column) of a safe-RL task's data, else None."""

    names = traj.objective_names
    if traj.num_objectives != 2 or not {"reward", "cost"} <= set(names):
        return None
    cost = names.index("cost")
    if traj.objectives[cost].direction is not Direction.MINIMIZE:
        return None
    try:
        task = safety_task(str(traj.metadata.get("env_id") or ""))
    except ToraError:
        return None
    return task.name, names.index("reward"), cost


def _safe_ref_point(traj: Trajectories) -> np.ndarray | None:

    found = _safe_task(traj)
    if found is None:
        return None
    task, r, c = found
    ref = dsrl_reference(task)
    point = np.zeros(2)
    point[r], point[c] = ref.reward_min, ref.max_cost
    return point


def _range(values: np.ndarray) -> dict[str, float]:
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


def safe_card(traj: Trajectories) -> dict[str, Any] | None:
    """The DSRL section of the card (module docstring), or None if ``traj`` is not data of a
    safe-RL task.

    Keys: ``task``, ``reference`` (reward_max, reward_min, max_cost), ``normalized_reward``
    and ``cost`` (min / mean / max over episodes), ``reaches_max_cost``, and ``thresholds``:
    one entry per DSRL threshold with ``normalized_cost`` (min / mean / max) and
    ``safe_fraction``.
    """

    found = _safe_task(traj)
    if found is None:
        return None
    task, r, c = found
    ref = dsrl_reference(task)
    returns = traj.episode_returns().astype(np.float64)
    rewards, costs = returns[:, r], returns[:, c]
    return {
        "task": task,
        "reference": {
            "reward_max": ref.reward_max,
            "reward_min": ref.reward_min,
            "max_cost": ref.max_cost,
        },
        "normalized_reward": _range(normalized_reward(rewards, task)),
        "cost": _range(costs),
        "reaches_max_cost": bool(costs.max() >= ref.max_cost),
        "thresholds": {f"{kappa:g}": _threshold_entry(costs, kappa) for kappa in DSRL_THRESHOLDS},
    }


def _threshold_entry(costs: np.ndarray, kappa: float) -> dict[str, Any]:
    normalized = normalized_cost(costs, kappa)
    safe = [is_safe(x) for x in normalized]  # DSRL's rule, applied where it is defined
    return {"normalized_cost": _range(normalized), "safe_fraction": float(np.mean(safe))}


def _g(x: float) -> str:
    return f"{x:.4g}"


def format_card(
    card: dict[str, Any], episodes: int | None = None, with_returns: bool = True
) -> str:
    """The card as indented text lines under a ``card`` heading.

    Lines use ``key: value`` (no aligned `` : `` column), so they can follow
    :func:`tora.evaluate.inspect.format_summary`'s block without disturbing its alignment.
    ``with_returns=False`` leaves out the per-objective returns and the episode lengths, for
    that summary, which computes them from the file itself.
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
    returns: dict[str, dict[str, float]] = (card.get("returns") or {}) if with_returns else {}
    width = max((len(n) for n in returns), default=0)
    for name, r in returns.items():
        lines.append(
            f"  return {name:<{width}}  min {_g(r['min'])}  mean {_g(r['mean'])}  "
            f"max {_g(r['max'])}"
        )
    if with_returns and card.get("lengths"):  # cards saved before they were recorded have none
        n = card["lengths"]
        lines.append(
            f"  episode length  min {n['min']:.0f}  mean {n['mean']:.1f}  max {n['max']:.0f}; "
            f"{card['terminated_episodes']}{total} episodes end in a terminal state"
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
        if coverage.get("steering") is not None:  # cards saved before it have none
            lines.append(
                f"  steering in the data: {coverage['steering']:.3f} (Spearman, preference "
                "against return; 1: more weight, more return)"
            )
    if card.get("safe"):
        lines += _format_safe(card["safe"])
    return "\n".join(lines)


def _format_safe(safe: dict[str, Any]) -> list[str]:
    ref, nr, cost = safe["reference"], safe["normalized_reward"], safe["cost"]
    reached = "reaches" if safe["reaches_max_cost"] else "does not reach"
    lines = [
        f"  DSRL terms ({safe['task']}: R_min {_g(ref['reward_min'])}, R_max "
        f"{_g(ref['reward_max'])}, max cost {_g(ref['max_cost'])})",
        f"    normalized reward  min {nr['min']:.3f}  mean {nr['mean']:.3f}  max {nr['max']:.3f}",
        f"    cost  min {_g(cost['min'])}  mean {_g(cost['mean'])}  max {_g(cost['max'])} "
        f"({reached} the max cost)",
    ]
    for kappa, entry in safe["thresholds"].items():
        nc = entry["normalized_cost"]
        lines.append(
            f"    threshold {kappa}: normalized cost min {nc['min']:.3g}  mean {nc['mean']:.3g}  "
            f"max {nc['max']:.3g}; safe episodes {100 * entry['safe_fraction']:.1f}%"
        )
    return lines


def plot_card(
    traj: Trajectories,
    path: str | os.PathLike[str],
    ref_point: ArrayLike | None = None,
    title: str = "",
) -> Path | None:
    """Scatter of the episode returns with the behaviour front, as a PNG at ``path``.

    Uses :func:`tora.evaluate.plots.plot_pareto_front`, which draws 2 or 3 objectives; for
    other counts nothing is written and None is returned. Data of a safe-RL task gets
    :func:`plot_safe_card`'s reward/cost scatter instead.
    """
    if _safe_task(traj) is not None:
        return plot_safe_card(traj, path, title)
    if traj.num_objectives not in (2, 3):
        return None

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


def plot_safe_card(traj: Trajectories, path: str | os.PathLike[str], title: str = "") -> Path:
    """Reward/cost scatter of a safe-RL task's episodes as a PNG at ``path`` (matplotlib's Agg
    canvas; nothing global is touched).

    x: episode cost, with DSRL's thresholds and the task's max cost as vertical lines; y:
    normalized reward (R_min and R_max at 0 and 1). Episodes are coloured by the behaviour
    policy that made them when the metadata records it (``policy_index``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    found = _safe_task(traj)
    if found is None:
        raise ShapeMismatchError("plot_safe_card needs data of a safe-RL task (reward, cost)")
    task, r, c = found
    returns = traj.episode_returns().astype(np.float64)
    reward, cost = normalized_reward(returns[:, r], task), returns[:, c]
    index = traj.metadata.get("policy_index")
    colored = isinstance(index, list) and len(index) == len(cost)

    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = ax.scatter(
        cost,
        reward,
        s=8,
        alpha=0.6,
        c=np.asarray(index) if colored else None,
        cmap="viridis" if colored else None,
    )
    if colored:
        fig.colorbar(points, ax=ax, label="behaviour policy (cost penalty grows with index)")
    for kappa in DSRL_THRESHOLDS:
        ax.axvline(kappa, color="grey", lw=0.8, ls=":")
    ax.axvline(dsrl_reference(task).max_cost, color="red", lw=0.8, ls="--", label="max cost")
    for level in (0.0, 1.0):
        ax.axhline(level, color="black", lw=0.6, ls="--")
    ax.set_xlabel("episode cost (dotted: thresholds 10, 20, 40)")
    ax.set_ylabel("normalized reward (R - R_min) / (R_max - R_min)")
    env = traj.metadata.get("env_id") or task
    ax.set_title(title or f"{env}: {len(cost)} episodes")
    ax.legend(loc="lower right")
    out = Path(path)
    with atomic_write(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return out
