"""PNG figures of an evaluation: Pareto fronts, preference sweeps and training curves.

Every function draws on its own ``matplotlib.figure.Figure`` attached to an Agg canvas, writes
a PNG and returns the path. They never touch ``pyplot`` or the global backend, so they work on
headless machines and do not disturb a caller's interactive session; matplotlib itself is
imported inside the functions so that ``import tora.evaluate`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from tora.errors import DataError, ShapeMismatchError
from tora.evaluate.pareto import Maximize, _as_points, pareto_front
from tora.io import atomic_write
from tora.preferences import validate_weights

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_pareto_front", "plot_training_curves", "plot_weight_sweep"]

_DPI = 120


def new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, for this figure only
    return fig


def save_figure(fig: Figure, path: str | PathLike[str]) -> Path:
    out = Path(path)
    # The format is fixed so that a path without (or with another) suffix still gets a PNG,
    # and so that matplotlib does not read it from the temporary file's suffix.
    with atomic_write(out) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return out


def _check_names(objective_names: Sequence[str], num_objectives: int) -> list[str]:
    names = [str(n) for n in objective_names]
    if len(names) != num_objectives:
        raise ShapeMismatchError(
            f"got {len(names)} objective names for {num_objectives} objectives: {names}"
        )
    return names


def plot_pareto_front(
    series: Mapping[str, ArrayLike],
    path: str | PathLike[str],
    objective_names: Sequence[str],
    title: str = "",
    ref_point: ArrayLike | None = None,
    maximize: Maximize = None,
) -> Path:
    """Scatter every evaluated return vector of each series and draw its Pareto front.

    Two objectives: a faint scatter of all points per series (labelled with the series name)
    and the series' non-dominated front as a line with markers. Three objectives: a 3-D
    scatter, front points drawn larger. ``ref_point``, if given, is marked with a cross.

    Args:
        series: name -> ``(N, K)`` return vectors (e.g. one series per method).
        path: where to write the PNG (parent directories are created).
        objective_names: ``K`` axis labels.
        title: figure title.
        ref_point: optional hypervolume reference point ``(K,)``.
        maximize: per objective, whether larger is better, for the front (default all True).

    Returns:
        The path written.

    Raises:
        DataError: no series, or non-finite / non-2-D points.
        ShapeMismatchError: series with different numbers of objectives, names or reference
            point of the wrong length, or ``K`` not 2 or 3 (a ``ValueError``).
    """
    if not series:
        raise DataError("plot_pareto_front needs at least one series of points")
    arrays = {str(name): _as_points(pts) for name, pts in series.items()}
    widths = {a.shape[1] for a in arrays.values() if a.shape[0] > 0}
    if len(widths) > 1:
        raise ShapeMismatchError(f"series have different numbers of objectives: {sorted(widths)}")
    k = widths.pop() if widths else len(objective_names)
    if k not in (2, 3):
        raise ShapeMismatchError(
            f"plot_pareto_front draws 2 or 3 objectives, got {k}; "
            "plot pairs of objectives or use plot_weight_sweep instead"
        )
    names = _check_names(objective_names, k)
    ref = None
    if ref_point is not None:
        ref = np.broadcast_to(np.asarray(ref_point, dtype=np.float64), (k,))

    fig = new_figure((6.4, 4.8) if k == 2 else (7.0, 6.0))
    colors = [c["color"] for c in color_cycle(len(arrays))]
    if k == 2:
        ax = fig.add_subplot()
        for color, (name, pts) in zip(colors, arrays.items(), strict=True):
            if pts.shape[0] == 0:
                continue
            ax.scatter(pts[:, 0], pts[:, 1], s=12, alpha=0.25, color=color, label=name)
            front = pareto_front(pts, maximize)
            ax.plot(
                front[:, 0],
                front[:, 1],
                marker="o",
                ms=4,
                lw=1.5,
                color=color,
                label=f"{name} front",
            )
        if ref is not None:
            ax.scatter([ref[0]], [ref[1]], marker="x", s=60, color="black", label="reference")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.grid(True, alpha=0.3)
    else:
        ax = fig.add_subplot(projection="3d")
        for color, (name, pts) in zip(colors, arrays.items(), strict=True):
            if pts.shape[0] == 0:
                continue
            ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=8, alpha=0.2, color=color, label=name)
            front = pareto_front(pts, maximize)
            ax.scatter(
                front[:, 0],
                front[:, 1],
                front[:, 2],
                s=24,
                alpha=0.9,
                color=color,
                edgecolors="black",
                linewidths=0.3,
                label=f"{name} front",
            )
        if ref is not None:
            ax.scatter(
                [ref[0]], [ref[1]], [ref[2]], marker="x", s=60, color="black", label="reference"
            )
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_zlabel(names[2])
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def color_cycle(n: int) -> list[dict[str, str]]:
    """``n`` colours from matplotlib's default property cycle (wrapping around)."""
    import matplotlib as mpl

    cycle = list(mpl.rcParams["axes.prop_cycle"])
    return [cycle[i % len(cycle)] for i in range(n)]


def plot_weight_sweep(
    weights: ArrayLike,
    returns: ArrayLike,
    path: str | PathLike[str],
    objective_names: Sequence[str],
    title: str = "",
    returns_std: ArrayLike | None = None,
    weight_names: Sequence[str] | None = None,
) -> Path:
    """Return of each objective across a sweep of preferences.

    One line per return column. With two weight columns the x-axis is the weight on the
    first, so a controllable policy shows one rising and one falling line; with one or more
    than two there is no single weight to sort by and the x-axis is the preference's row index.

    Args:
        weights: ``(n, K)`` preferences (each row on the simplex).
        returns: ``(n, R)`` mean return vector obtained for each preference.
        path: where to write the PNG.
        objective_names: ``R`` names of the return columns, used as line labels.
        title: figure title.
        returns_std: optional ``(n, R)`` standard deviations, drawn as a +-1 std band.
        weight_names: ``K`` names of the objectives the weight columns weigh, when they are
            not the return columns in their order (a subset of objective models, or models
            given in another order); default ``objective_names``.

    Returns:
        The path written.
    """
    names = [str(n) for n in objective_names]
    w_names = names if weight_names is None else [str(n) for n in weight_names]
    w = validate_weights(weights, len(w_names), w_names)
    ret = _as_points(returns, len(names))
    if ret.shape[0] != w.shape[0]:
        raise ShapeMismatchError(
            f"{w.shape[0]} weight rows but {ret.shape[0]} return rows; give one return per weight"
        )
    std = None
    if returns_std is not None:
        std = _as_points(returns_std, len(names))
        if std.shape != ret.shape:
            raise ShapeMismatchError(
                f"returns_std has shape {std.shape}, returns have shape {ret.shape}"
            )

    if len(w_names) == 2:
        x = w[:, 0]
        xlabel = f"weight on {w_names[0]}"
    else:
        x = np.arange(w.shape[0], dtype=np.float64)
        xlabel = "preference index"
    # Lines need increasing x; a stable sort keeps the given order of equal weights.
    order = np.argsort(x, kind="stable")

    fig = new_figure((6.4, 4.4))
    ax = fig.add_subplot()
    for j, name in enumerate(names):
        (line,) = ax.plot(x[order], ret[order, j], marker=".", ms=3, lw=1.5, label=name)
        if std is not None:
            ax.fill_between(
                x[order],
                ret[order, j] - std[order, j],
                ret[order, j] + std[order, j],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("return")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_training_curves(
    history: Mapping[str, Sequence[float]],
    path: str | PathLike[str],
    title: str = "",
    steps: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """One subplot per logged quantity (e.g. ``loss``, ``implicit_accuracy``) against step.

    Args:
        history: name -> values, one per logged step.
        steps: optional name -> training step of each value (the x axis); curves without
            one are drawn against their position 0, 1, 2, ...
            Non-finite values are left as gaps rather than rejected, since a diverging run
            is exactly what the curves are for.
        path: where to write the PNG.
        title: figure title.

    Returns:
        The path written.
    """
    if not history:
        raise DataError("plot_training_curves needs at least one curve")
    curves: dict[str, np.ndarray] = {}
    for name, values in history.items():
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"history[{name!r}] must be a sequence of numbers: {exc}") from exc
        if arr.ndim != 1:
            raise DataError(f"history[{name!r}] must be 1-D, got shape {arr.shape}")
        curves[str(name)] = arr

    ncols = min(3, len(curves))
    nrows = math.ceil(len(curves) / ncols)
    fig = new_figure((4.0 * ncols, 3.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (name, arr) in zip(axes.flat, curves.items(), strict=False):
        x = np.asarray(steps[name]) if steps and name in steps else np.arange(arr.shape[0])
        ax.plot(x, arr, lw=1.2)
        ax.set_title(name)
        ax.set_xlabel("step" if steps and name in steps else "log entry")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(curves) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
