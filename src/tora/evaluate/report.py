"""Turning a preference sweep into the numbers and files people compare methods by.

``summarize_sweep`` is pure (returns a dict); ``write_sweep_report`` writes results.json,
returns.csv and the two plots next to each other.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tora.evaluate.pareto import front_metrics, steering_correlation
from tora.evaluate.plots import plot_pareto_front, plot_weight_sweep
from tora.evaluate.rollout import SweepResult
from tora.train.checkpoint import atomic_write_bytes, atomic_write_json


def summarize_sweep(
    result: SweepResult, ref_point: Sequence[float], maximize: Sequence[bool] | None = None
) -> dict[str, Any]:
    """Front metrics of the mean return per preference (the D4MORL protocol), plus the
    returns of the two extreme preferences, which show whether the weights steer."""
    means = result.mean_returns
    metrics = front_metrics(means, ref_point, maximize=maximize)
    return {
        "env_id": result.env_id,
        "objectives": result.objective_names,
        "ref_point": list(map(float, ref_point)),
        "num_preferences": int(result.weights.shape[0]),
        "episodes_per_preference": int(result.returns.shape[1]),
        **metrics,
        # Only defined when weight k is the weight of reward objective k.
        "steering_correlation": (
            steering_correlation(result.weights, means, maximize)
            if result.weights.shape == means.shape
            else None
        ),
        "first_weight": result.weights[0].tolist(),
        "first_weight_return": means[0].tolist(),
        "last_weight": result.weights[-1].tolist(),
        "last_weight_return": means[-1].tolist(),
        "weights": result.weights.tolist(),
        "mean_returns": means.tolist(),
    }


def write_sweep_report(
    result: SweepResult,
    summary: dict[str, Any],
    out_dir: Path,
    title: str = "",
    extra: dict[str, Any] | None = None,
    overlay: dict[str, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Write results.json, returns.csv, pareto_front.png and weight_sweep.png to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out_dir / "results.json",
        "csv": out_dir / "returns.csv",
        "pareto_plot": out_dir / "pareto_front.png",
        "weight_plot": out_dir / "weight_sweep.png",
    }
    atomic_write_json(
        paths["results"], {"summary": summary, "sweep": result.to_dict(), **(extra or {})}
    )
    atomic_write_bytes(paths["csv"], _csv_bytes(result))
    names = result.objective_names
    if len(names) in (2, 3):
        plot_pareto_front(
            {"TORA": result.mean_returns, **(overlay or {})},
            paths["pareto_plot"],
            names,
            title,
            summary["ref_point"],
        )
    plot_weight_sweep(
        result.weights,
        result.mean_returns,
        paths["weight_plot"],
        names,
        title,
        returns_std=result.returns.std(axis=1),
    )
    return paths


def _csv_bytes(result: SweepResult) -> bytes:
    """One row per (preference, episode): weights, then the return of each objective."""
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    k = result.weights.shape[1]
    writer.writerow(
        ["preference", "episode"]
        + [f"w_{i}" for i in range(k)]
        + [f"return_{n}" for n in result.objective_names]
        + ["length"]
    )
    for i, w in enumerate(result.weights):
        for e in range(result.returns.shape[1]):
            writer.writerow(
                [
                    i,
                    e,
                    *np.round(w, 6).tolist(),
                    *result.returns[i, e].tolist(),
                    int(result.lengths[i, e]),
                ]
            )
    return buf.getvalue().encode()
