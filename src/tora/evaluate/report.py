"""Turning a preference sweep into the numbers and files people compare methods by.

``summarize_sweep`` is pure (returns a dict); ``write_sweep_report`` writes results.json,
returns.csv and the two plots next to each other, as one unit.

A sweep has two sets of columns: its weights, one per composed objective model in the order
the models were given (``result.meta["models"]``), and its returns, one per reward objective
of the environment in the environment's order (``result.objective_names``). The two may differ
in order and in number (a subset of the models), so every pairing of a weight with a return
goes by objective name, never by position.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tora.errors import ShapeMismatchError, ToraError
from tora.evaluate.pareto import front_metrics, steering_correlation
from tora.evaluate.plots import plot_pareto_front, plot_weight_sweep
from tora.evaluate.rollout import SweepResult
from tora.io import atomic_write_bytes, atomic_write_json, publish_files

REPORT_FILES = {
    "results": "results.json",
    "csv": "returns.csv",
    "pareto_plot": "pareto_front.png",
    "weight_plot": "weight_sweep.png",
}
"""Key in :func:`write_sweep_report`'s answer -> file name in the output directory."""


def weight_names(result: SweepResult) -> list[str]:
    """The objective each weight column of ``result`` weighs.

    :func:`tora.pipeline.evaluate_run` records the composed models in ``meta["models"]``.
    Sweeps without that record (the bench suite's, a user's ``rollout_sweep``) weigh the
    reward objectives in their order when there is one weight per reward; otherwise the
    columns are only numbered (``"0"``, ``"1"``, ...) and pair with no return.
    """
    k = int(result.weights.shape[1])
    models = result.meta.get("models")
    if models is not None:
        names = [str(m) for m in models]
        if len(names) != k:
            raise ShapeMismatchError(
                f"the sweep names {len(names)} objective models {names} for {k} weight columns"
            )
        return names
    if k == len(result.objective_names):
        return [str(n) for n in result.objective_names]
    return [str(j) for j in range(k)]


def steering_pairs(weight_cols: Sequence[str], reward_cols: Sequence[str]) -> list[tuple[int, int]]:
    """``(weight column, return column)`` index pairs of the objectives that have both, in
    weight-column order."""
    rewards = list(reward_cols)
    return [(j, rewards.index(name)) for j, name in enumerate(weight_cols) if name in rewards]


def summarize_sweep(
    result: SweepResult, ref_point: Sequence[float], maximize: Sequence[bool] | None = None
) -> dict[str, Any]:
    """Front metrics of the mean return per preference (the D4MORL protocol), plus the
    returns of the two extreme preferences, which show whether the weights steer.

    ``maximize``: one flag per reward objective (default: all maximized).
    ``steering_correlation`` pairs the weight on each objective with the return of the
    reward objective of the same name, over the objectives that have both (listed in
    ``steering_objectives``); it is None when none has both.
    """
    means = result.mean_returns
    metrics = front_metrics(means, ref_point, maximize=maximize)
    weight_cols = weight_names(result)
    pairs = steering_pairs(weight_cols, result.objective_names)
    steering = None
    if pairs:
        w_idx, r_idx = [j for j, _ in pairs], [i for _, i in pairs]
        flags = None if maximize is None else [bool(maximize[i]) for i in r_idx]
        steering = steering_correlation(result.weights[:, w_idx], means[:, r_idx], flags)
    return {
        "env_id": result.env_id,
        "objectives": result.objective_names,
        "weight_objectives": weight_cols,
        "ref_point": list(map(float, ref_point)),
        "num_preferences": int(result.weights.shape[0]),
        "episodes_per_preference": int(result.returns.shape[1]),
        **metrics,
        "steering_correlation": steering,
        "steering_objectives": [weight_cols[j] for j, _ in pairs],
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
    json_files: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write results.json, returns.csv, pareto_front.png (2 or 3 reward objectives) and
    weight_sweep.png to ``out_dir``; returns the paths written, by :data:`REPORT_FILES` key.

    ``json_files``: more files to publish with the report, file name -> JSON object (e.g. the
    ``config.json`` of the command that made it).

    The files are written into a temporary sibling of ``out_dir`` and moved in together by
    :func:`~tora.train.checkpoint.publish_files`, which also removes report files of an
    earlier report that this one does not have: two reports written into one directory at
    once leave the files of one of them, never a mix.
    """
    out_dir = Path(out_dir)
    extra_files = dict(json_files or {})
    clash = sorted(set(extra_files) & set(REPORT_FILES.values()))
    if clash:
        raise ToraError(f"json_files would overwrite the report's own files: {clash}")
    staging = _staging_dir(out_dir)
    try:
        written = _write_report_files(result, summary, staging, title, extra, overlay)
        for name, obj in extra_files.items():
            atomic_write_json(staging / name, obj)
        publish_files(staging, out_dir, [*REPORT_FILES.values(), *extra_files])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {key: out_dir / REPORT_FILES[key] for key in written}


def _staging_dir(out_dir: Path) -> Path:
    """A new hidden directory on ``out_dir``'s filesystem, so that files move in by rename.

    A sibling of ``out_dir`` (of its target, when it is a symlink), since the output directory
    itself should only ever hold finished files; inside ``out_dir`` when its parent cannot be
    written to.
    """
    real = out_dir.resolve()
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent))
    except PermissionError:
        real.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".report.", suffix=".tmp", dir=real))


def _write_report_files(
    result: SweepResult,
    summary: dict[str, Any],
    directory: Path,
    title: str,
    extra: dict[str, Any] | None,
    overlay: dict[str, np.ndarray] | None,
) -> list[str]:
    """Write the report into ``directory``; returns the :data:`REPORT_FILES` keys written."""
    atomic_write_json(
        directory / REPORT_FILES["results"],
        {"summary": summary, "sweep": result.to_dict(), **(extra or {})},
    )
    atomic_write_bytes(directory / REPORT_FILES["csv"], _csv_bytes(result))
    written = ["results", "csv"]
    names = result.objective_names
    if len(names) in (2, 3):
        plot_pareto_front(
            {"TORA": result.mean_returns, **(overlay or {})},
            directory / REPORT_FILES["pareto_plot"],
            names,
            title,
            summary["ref_point"],
        )
        written.append("pareto_plot")
    plot_weight_sweep(
        result.weights,
        result.mean_returns,
        directory / REPORT_FILES["weight_plot"],
        names,
        title,
        returns_std=result.returns.std(axis=1),
        weight_names=weight_names(result),
    )
    written.append("weight_plot")
    return written


def _csv_bytes(result: SweepResult) -> bytes:
    """One row per (preference, episode): the weight on each objective model (``w_<model>``),
    the return of each reward objective (``return_<reward>``), then the episode length."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        ["preference", "episode"]
        + [f"w_{n}" for n in weight_names(result)]
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
