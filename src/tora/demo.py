"""The embedded demo: the whole TORA pipeline on the built-in Cruise task, in minutes on CPU.

1. Collect scripted episodes whose cruising speeds span the speed/energy trade-off.
2. Pretrain the reference planner and the inverse dynamics model.
3. Fine-tune one planner per objective with Diffusion-DPO.
4. Sweep preference weights (w_speed, w_energy), composing the planners per weight vector, and
   report the Pareto front, its hypervolume, and plots.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tora.data.formats import save_dataset
from tora.device import resolve_device
from tora.diffusion.samplers import SamplerConfig
from tora.envs import CRUISE_ID
from tora.envs.cruise import ideal_front
from tora.envs.scripted import collect_cruise
from tora.evaluate.pareto import hypervolume
from tora.evaluate.plots import plot_training_curves
from tora.io import atomic_write_json
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import evaluate_run, finetune_run, pretrain_run, report_run
from tora.preferences import simplex_grid
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig, read_history
from tora.train.planner_io import OBJECTIVES_DIR, REFERENCE_DIR, default_objective_order
from tora.train.pretrain import PretrainConfig

REF_POINT = (0.0, 0.0)
"""Hypervolume reference point of the Cruise suite: both objectives are non-negative."""


@dataclass
class DemoConfig:
    """Settings of ``tora demo``; the defaults finish in a few minutes on 2 CPU cores."""

    out: str = "runs/demo"
    """Output directory (dataset, models, results, plots). Re-running resumes/reuses it."""
    episodes: int = 300
    """Scripted episodes collected for the offline dataset (100 steps each)."""
    seed: int = 0
    """Seed of data collection, training and evaluation."""
    preferences: int = 21
    """Preference vectors (w, 1 - w) in the evaluation sweep."""
    eval_episodes: int = 5
    """Episodes per preference."""
    device: str = "auto"
    """Torch device: auto, cpu or cuda."""
    progress: bool = True
    """Show progress bars."""
    pretrain: PretrainConfig = field(
        default_factory=lambda: PretrainConfig(
            horizon=8,
            stride=1,
            steps=4000,
            batch_size=256,
            denoiser=DenoiserConfig(kind="mlp", hidden_dim=256, depth=3),
            optim=OptimConfig(lr=1e-3, ema_decay=0.995, checkpoint_every=1000),
        )
    )
    """Reference planner training."""
    inverse: InverseDynamicsTrainConfig = field(
        default_factory=lambda: InverseDynamicsTrainConfig(steps=3000)
    )
    """Inverse dynamics training."""
    dpo: DPOConfig = field(
        default_factory=lambda: DPOConfig(
            steps=2000,
            batch_size=64,
            optim=OptimConfig(lr=1e-5, ema_decay=0.0, checkpoint_every=500),
        )
    )
    """Diffusion-DPO fine-tuning, run once per objective."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=20))
    """Plan sampling at evaluation."""


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run every stage; returns the summary that is also written to ``out/results.json``."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    atomic_write_json(out / "config.json", asdict(config))
    timings: dict[str, float] = {}
    start = time.perf_counter()

    data_path = out / "cruise.h5"
    traj = collect_cruise(config.episodes, config.seed, config.progress)
    save_dataset(traj, data_path)
    timings["data_s"] = time.perf_counter() - start

    run_dir = out / "run"
    pretrain_run(traj, run_dir, config.pretrain, config.inverse, device, config.progress)
    timings["pretrain_s"] = time.perf_counter() - start - sum(timings.values())
    finetune_run(traj, run_dir, config.dpo, device=device, progress=config.progress)
    timings["dpo_s"] = time.perf_counter() - start - sum(timings.values())

    weights = simplex_grid(2, config.preferences)
    result = evaluate_run(
        run_dir,
        weights,
        config.eval_episodes,
        config.seed + 10_000,
        CRUISE_ID,
        sampler=config.sampler,
        device=str(device),
        progress=config.progress,
    )
    timings["evaluate_s"] = time.perf_counter() - start - sum(timings.values())
    timings["total_s"] = time.perf_counter() - start
    dataset_returns = traj.episode_returns()
    summary = report_run(
        result,
        out / "results",
        ref_point=REF_POINT,
        title="TORA on Cruise (demo)",
        extra={"timings": timings, "device": str(device)},
        overlay={"dataset episodes": dataset_returns, "constant throttle": ideal_front()},
    )
    summary["files"]["training_plot"] = str(plot_histories(run_dir, out / "results"))
    summary["timings"] = timings
    summary["dataset_hypervolume"] = hypervolume(dataset_returns, REF_POINT)
    summary["constant_throttle_hypervolume"] = hypervolume(ideal_front(), REF_POINT)
    atomic_write_json(out / "summary.json", summary)
    return summary


def plot_histories(run_dir: Path, out_dir: Path) -> Path:
    """Training curves of every stage of a run in one figure: pretraining loss, then each
    objective's DPO loss and implicit accuracy (the share of pairs ranked right)."""
    sources = {"pretrain": run_dir / REFERENCE_DIR / "history.json"}
    for name in default_objective_order(run_dir):
        sources[f"DPO {name}"] = run_dir / OBJECTIVES_DIR / name / "history.json"
    curves: dict[str, list[float]] = {}
    steps: dict[str, list[float]] = {}
    for label, path in sources.items():
        history = read_history(path)
        for key in ("loss", "implicit_accuracy"):
            if history and key in history[0]:
                curves[f"{label} {key}"] = [h[key] for h in history]
                steps[f"{label} {key}"] = [h["step"] for h in history]
    return plot_training_curves(curves, out_dir / "training_curves.png", steps=steps)


def format_demo_report(summary: dict[str, Any], config: DemoConfig) -> str:
    """The text the demo prints: the front, its hypervolume, and where the files are."""
    names = summary["objectives"]
    weights = np.asarray(summary["weights"])
    returns = np.asarray(summary["mean_returns"])
    lines = [
        "",
        f"TORA on {summary['env_id']}: {len(weights)} preferences x "
        f"{summary['episodes_per_preference']} episodes, one composed batch per step",
        "",
        f"{'w_' + names[0]:>10} {'w_' + names[1]:>10} {names[0]:>10} {names[1]:>10}  front",
    ]
    front = {tuple(np.round(p, 6)) for p in summary["front"]}
    for w, r in zip(weights, returns, strict=True):
        mark = "*" if tuple(np.round(r, 6)) in front else ""
        lines.append(f"{w[0]:10.2f} {w[1]:10.2f} {r[0]:10.2f} {r[1]:10.2f}  {mark}")
    first, last = summary["first_weight_return"], summary["last_weight_return"]
    lines += [
        "",
        f"all weight on {names[0]}: {names[0]} {first[0]:.1f}, {names[1]} {first[1]:.1f}",
        f"all weight on {names[1]}: {names[0]} {last[0]:.1f}, {names[1]} {last[1]:.1f}",
        f"hypervolume (ref point {summary['ref_point']}): {summary['hypervolume']:.1f}   "
        f"[dataset episodes: {summary['dataset_hypervolume']:.1f}; constant-throttle "
        f"curve: {summary['constant_throttle_hypervolume']:.1f}]",
        f"sparsity: {summary['sparsity']:.2f}   expected utility: "
        f"{summary['expected_utility']:.2f}   front points: {summary['num_front_points']}",
        "timings: " + ", ".join(f"{k[:-2]} {v:.0f}s" for k, v in summary["timings"].items()),
        f"files: {Path(config.out) / 'results'} (results.json, returns.csv, pareto_front.png, "
        "weight_sweep.png, training_curves.png)",
    ]
    return "\n".join(lines)
