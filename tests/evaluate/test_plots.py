"""The plotting functions write real PNG files and reject what they cannot draw."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tora.evaluate import plot_pareto_front, plot_training_curves, plot_weight_sweep, simplex_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def test_plot_pareto_front_two_objectives(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    series = {"tora": rng.random((40, 2)), "bc": rng.random((40, 2)) * 0.8}
    out = plot_pareto_front(
        series, tmp_path / "sub" / "front.png", ["speed", "energy"], title="t", ref_point=[0, 0]
    )
    assert out == tmp_path / "sub" / "front.png"
    assert _is_png(out)


def test_plot_pareto_front_three_objectives(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    out = plot_pareto_front({"a": rng.random((30, 3))}, tmp_path / "f3.png", ["x", "y", "z"])
    assert _is_png(out)


def test_plot_pareto_front_rejects_four_objectives(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 or 3 objectives"):
        plot_pareto_front({"a": np.ones((3, 4))}, tmp_path / "f4.png", ["a", "b", "c", "d"])
    assert not (tmp_path / "f4.png").exists()


def test_plot_pareto_front_rejects_wrong_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="objective names"):
        plot_pareto_front({"a": np.ones((3, 2))}, tmp_path / "f.png", ["only-one"])


def test_plot_weight_sweep_two_objectives_with_std(tmp_path: Path) -> None:
    weights = simplex_grid(2, 11)
    returns = np.stack([weights[:, 0] * 10, weights[:, 1] * 5], axis=1)
    out = plot_weight_sweep(
        weights, returns, tmp_path / "sweep.png", ["speed", "energy"], returns_std=returns * 0.1
    )
    assert _is_png(out)


def test_plot_weight_sweep_three_objectives(tmp_path: Path) -> None:
    weights = simplex_grid(3, 10)
    out = plot_weight_sweep(weights, weights * 3.0, tmp_path / "sweep3.png", ["a", "b", "c"])
    assert _is_png(out)


def test_plot_weight_sweep_rejects_row_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weight rows"):
        plot_weight_sweep(simplex_grid(2, 5), np.ones((4, 2)), tmp_path / "s.png", ["a", "b"])


def test_plot_training_curves(tmp_path: Path) -> None:
    history = {
        "loss": [1.0, 0.5, 0.3, 0.2],
        "implicit_accuracy": [0.5, 0.6, 0.8, 0.9],
        "reward_margin": [0.0, 0.1, 0.2, 0.4],
        "lr": [1e-4, 1e-4, 5e-5, 1e-5],
    }
    out = plot_training_curves(history, tmp_path / "curves.png", title="dpo")
    assert _is_png(out)


def test_plotting_leaves_pyplot_alone(tmp_path: Path) -> None:
    # A fresh interpreter: importing the package must not import matplotlib, and plotting must
    # not go through pyplot (which would pick and lock in a global backend).
    code = (
        "import sys, numpy as np\n"
        "import tora.evaluate as e\n"
        "assert 'matplotlib' not in sys.modules\n"
        f"e.plot_training_curves({{'loss': [1.0, 0.5]}}, {str(tmp_path / 'c.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
