"""Diffusion-DPO fine-tuning of one planner per objective (TORA, stage 2).

Each objective model starts from the frozen reference planner and learns, from pairs of
windows labelled by that objective alone, to make preferred windows more likely than the
reference does (Wallace et al. 2024). Each objective is its own run writing its own directory,
so adding an objective later trains one more model and touches no existing file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from tora.data.pairs import draw_pairs, window_labels
from tora.data.trajectories import Direction, Trajectories
from tora.data.windows import WindowSpec
from tora.diffusion.samplers import SamplerConfig, sample
from tora.errors import ConfigError, ShapeMismatchError
from tora.io import atomic_write_json
from tora.train.loop import OptimConfig, prepare_out_dir, run_identity, train_and_save
from tora.train.losses import diffusion_dpo_loss, window_errors
from tora.train.planner_io import (
    OBJECTIVES_DIR,
    REFERENCE_DIR,
    PlannerSpec,
    load_planner,
    reference_hash,
)
from tora.train.pretrain import noisy_windows, window_tensors


@dataclass
class DPOConfig:
    """Settings of Diffusion-DPO fine-tuning for one objective.

    Defaults (BENCHMARKS.md section 5, "Sampler and DPO settings"): advantage labels with
    0.3 per element took MO-HalfCheetah's validation hypervolume from 5.15e6 / 1.26e6 /
    1.30e6 (three seeds, return labels, beta 100) to 5.36e6 / 5.32e6 / 5.28e6."""

    LEGACY: ClassVar[dict[str, Any]] = {"pair_label": "return", "beta_per_element": 0.0}
    """The values of runs saved before these fields existed."""

    steps: int = 2000
    """Gradient steps."""
    batch_size: int = 128
    """Preference pairs per gradient step."""
    beta: float = 2000.0
    """KL strength. Errors are means over window elements, so beta is large (image models used
    2500-5000 with per-pixel means); larger keeps the model closer to the reference. Ignored
    when beta_per_element is set."""
    beta_per_element: float = 0.3
    """When > 0, the KL strength per planned element: beta = this x (H - 1) x obs_dim, the
    number of elements the planner generates (the official Diffusion-DPO recipe runs ~0.3 per
    latent element). One value then suits any state size and horizon, where a fixed beta
    means a stronger pull the fewer elements a window has."""
    sft_weight: float = 0.0
    """Weight of a supervised denoising term on the winners added to the DPO loss (0: plain
    Diffusion-DPO). It keeps DPO from lowering the winners' likelihood along with the losers'."""
    pair_matching: Literal["random", "nearest"] = "random"
    """How a pair's two windows are drawn: "random" (independently) or "nearest" (the partner
    of each window is, among 256 random windows of other episodes, the one whose first state
    is closest), so the label compares continuations rather than start states."""
    pair_label: Literal["return", "advantage", "td_advantage"] = "advantage"
    """What a window's label is: its segment "return", or the "advantage" (segment return
    minus a value of its first state fitted on the data, see tora.data.pairs): the planner
    cannot choose its first state, so a return label mostly teaches which start was better;
    or "td_advantage", the same over the planned window alone: its steps' reward plus its last
    state's value, minus its first state's (:func:`tora.data.pairs.window_labels`)."""
    through_terminals: bool = False
    """Also draw windows whose segment is cut by a terminal (a fall), labelled with the
    rewards up to it, so that windows just before a fall are compared too."""
    num_pairs: int = 20000
    """Preference pairs drawn from the data (ties on this objective are dropped)."""
    held_out_pairs: int = 512
    """Pairs drawn apart from the training pairs (another seed; none shares a window with a
    training pair) to measure, every evaluate_every steps, held-out implicit accuracy and the
    winners' and losers' denoising errors relative to the reference (history.json, val_*).
    Drawing them apart leaves the training pairs as they were without this check (0: none)."""
    evaluate_every: int = 250
    """Steps between held-out measurements (0: only at the start and the end)."""
    max_winner_error: float = 0.0
    """Drift guard (0: off): when the held-out winners' denoising error exceeds this multiple
    of the reference's, training stops and keeps the weights of the last measurement within
    it. DPO can raise its margin by ruining losers and winners alike; past a point the model
    stops being a model of the dynamics. Off by default because the right multiple depends on
    the data: on MO-Hopper 3 kept every seed's models usable (27-49x without it, one seed of
    three then scoring hypervolume 0), while on Cruise the best models reach 40-48x and 3
    stops DPO before it steers (BENCHMARKS.md section 5)."""
    max_state_error: float = 0.0
    """Drift guard on the plans themselves (0: off): when the model's planned next state
    (sampled with the default sampler from held-out windows' first states) misses the data's
    by more than this multiple of the reference planner's miss, training stops and keeps the
    weights of the last measurement within it. Unlike the winner error, which counts noise
    the sampler never sees, this measures what the inverse dynamics will be handed."""
    segment_length: int = 20
    """Steps of reward summed into a window's label, from the window's first state (>= H*m)."""
    discount: float = 0.99
    """Discount of the label's reward sum."""
    seed: int = 0
    """Seed of pairs, batches and noise."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-5, ema_decay=0.0, checkpoint_every=500)
    )
    """Optimizer and checkpointing."""


def finetune_objective(
    run_dir: Path,
    traj: Trajectories,
    objective: str,
    config: DPOConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> Path:
    """Fine-tune a copy of ``run_dir/reference`` for ``objective``; writes
    ``run_dir/objectives/<objective>/`` and resumes there if interrupted.

    Earlier training there from another reference planner, other data or other settings is
    refused (:class:`~tora.errors.StaleRunError`) before any file is written; ``restart``
    moves it aside and starts over."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    k = traj.objective_index(objective)  # clear error listing the dataset's objectives
    reference, spec, ref_config = load_planner(run_dir / REFERENCE_DIR, device)
    if spec.obs_dim != traj.obs_dim:
        raise ShapeMismatchError(
            f"dataset observations have {traj.obs_dim} dims but the reference planner in "
            f"{run_dir} was trained on {spec.obs_dim}: use the dataset it was pretrained on"
        )
    window_span = (spec.horizon - 1) * spec.stride + 1
    if config.segment_length < window_span:
        raise ConfigError(
            f"segment_length {config.segment_length} is shorter than a window "
            f"({window_span} steps); labels must cover at least the planned span"
        )
    # Settings are checked before the directory is touched: with --restart a bad setting
    # must not move the earlier run aside.
    if config.held_out_pairs < 0:
        raise ConfigError(f"held_out_pairs must be >= 0, got {config.held_out_pairs}")
    for name in ("max_winner_error", "max_state_error"):
        limit = getattr(config, name)
        if not limit >= 0 or (limit > 0 and not config.held_out_pairs):
            raise ConfigError(f"{name} must be >= 0 (0: off) and needs held_out_pairs > 0")
    beta = effective_beta(config, spec.horizon, spec.obs_dim)
    out_dir = run_dir / OBJECTIVES_DIR / objective
    ref_sha256 = reference_hash(run_dir)
    # Checked before pairs.json is written: a refused call must leave the directory as it was.
    identity = prepare_out_dir(
        out_dir,
        run_identity(
            config,
            objective=objective,
            data_sha256=traj.fingerprint(),
            reference_sha256=ref_sha256,
        ),
        restart,
    )
    minimize = traj.objectives[k].direction is Direction.MINIMIZE
    window = WindowSpec(spec.horizon, spec.stride)
    # Labelled once (the advantage labels' value fit is the costly part), drawn twice.
    labels = window_labels(
        traj,
        config.segment_length,
        config.discount,
        config.pair_label,
        window.span,
        config.through_terminals,
    )

    def draw(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        pairs = draw_pairs(traj, labels, count, seed, matching=config.pair_matching)
        return pairs.labelled(k, minimize=minimize)

    winners, losers, pair_stats = draw(config.num_pairs, config.seed)
    states, rows = window_tensors(traj, window, spec.normalizer, device)
    winners_t = torch.as_tensor(winners, device=device)
    losers_t = torch.as_tensor(losers, device=device)

    model = copy.deepcopy(reference).requires_grad_(True)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    evaluate = None
    if config.held_out_pairs > 0:
        # Drawn twice as many as needed, then every pair that shares a window with a
        # training pair is dropped: the measurement is on windows DPO never compared.
        val_win, val_lose, _ = draw(2 * config.held_out_pairs, config.seed + _HELD_OUT_SEED)
        seen = np.union1d(winners, losers)
        unseen = ~(np.isin(val_win, seen) | np.isin(val_lose, seen))
        val_win = val_win[unseen][: config.held_out_pairs]
        val_lose = val_lose[unseen][: config.held_out_pairs]
        pair_stats["held_out"] = int(val_win.size)
        if val_win.size > 0:
            evaluate = _held_out_evaluation(
                model, reference, spec, states, rows, val_win, val_lose, beta, config.seed, device
            )

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        pick = torch.randint(
            winners_t.numel(), (config.batch_size,), generator=generator, device=device
        )
        x_win = spec.encode(states[rows[winners_t[pick]]])
        x_lose = spec.encode(states[rows[losers_t[pick]]])
        # Winner and loser share t and noise: the loss compares how much better each is
        # denoised than under the reference, and shared noise cancels the noise's own variance.
        xt_win, t, noise = noisy_windows(x_win, spec.schedule, generator)
        xt_lose = spec.schedule.add_noise(x_lose, noise, t)
        xt_lose[:, 0] = x_lose[:, 0]
        xt = torch.cat([xt_win, xt_lose])
        tt = torch.cat([t, t])
        noise2 = torch.cat([noise, noise])
        err_theta = window_errors(model(xt, tt), noise2)
        with torch.no_grad():
            err_ref = window_errors(reference(xt, tt), noise2)
        b = config.batch_size
        return diffusion_dpo_loss(
            err_theta[:b], err_ref[:b], err_theta[b:], err_ref[b:], beta, config.sft_weight
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "pairs.json", pair_stats)
    train_and_save(
        desc=f"DPO fine-tune '{objective}'",
        model=model,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": "objective_planner",
            "objective": objective,
            "direction": traj.objectives[k].direction.value,
            "reference_sha256": ref_sha256,
            "planner": ref_config["planner"],
            "env_id": ref_config.get("env_id"),
            "pairs": pair_stats,
            "beta": beta,
            "train": asdict(config),
        },
        progress=progress,
        identity=identity,
        evaluate=evaluate,
        evaluate_every=config.evaluate_every,
        guard=_drift_guard(config),
    )
    return out_dir


def _drift_guard(config: DPOConfig) -> Callable[[dict[str, float]], str | None] | None:
    """The guard of the limits that are on, or None when both are off."""
    limits = {
        "val_winner_error": ("held-out winner error", config.max_winner_error),
        "val_state_error": ("planned next-state error", config.max_state_error),
    }
    limits = {key: v for key, v in limits.items() if v[1] > 0}
    if not limits:
        return None

    def guard(values: dict[str, float]) -> str | None:
        for key, (what, limit) in limits.items():
            value = values.get(key, 0.0)
            if value > limit:
                return f"{what} {value:.2f}x the reference's, above {limit:g}x"
        return None

    return guard


_HELD_OUT_SEED = 104_729  # offset of the held-out draw's seed from the training draw's
_STATE_ERROR_WINDOWS = 256  # held-out windows whose next state is planned at each measurement


def effective_beta(config: DPOConfig, horizon: int, obs_dim: int) -> float:
    """The beta the loss uses: ``beta_per_element`` x the (H - 1) x obs_dim elements a window
    generates (its first state is given), or ``beta`` when beta_per_element is 0."""
    if config.beta_per_element < 0 or config.beta <= 0:
        raise ConfigError("beta must be positive and beta_per_element non-negative")
    if config.beta_per_element > 0:
        return config.beta_per_element * (horizon - 1) * obs_dim
    return config.beta


def _held_out_evaluation(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    spec: PlannerSpec,
    states: torch.Tensor,
    rows: torch.Tensor,
    winners: np.ndarray,
    losers: np.ndarray,
    beta: float,
    seed: int,
    device: torch.device,
) -> Callable[[], dict[str, float]]:
    """A function measuring ``model`` on held-out pairs at fixed steps and noise (its own
    generator, so measuring never changes the training run's random stream).

    Returns implicit_accuracy (the DPO loss's ranking of held-out pairs), dpo_loss, and
    winner_error / loser_error: the model's mean denoising error on winners and losers over
    the reference's on the same inputs (1 at the start; DPO may lower both, but a winner
    error well above 1 means the model is drifting away from a model of the data);
    state_error: the mean absolute error of the planned next state (normalized units) over
    the reference planner's, and state_error_abs the model's own."""
    gen = torch.Generator(device=device).manual_seed(seed + _HELD_OUT_SEED)
    windows_win = states[rows[torch.as_tensor(winners, device=device)]]
    x_win = spec.encode(windows_win)
    x_lose = spec.encode(states[rows[torch.as_tensor(losers, device=device)]])
    xt_win, t, noise = noisy_windows(x_win, spec.schedule, gen)
    xt_lose = spec.schedule.add_noise(x_lose, noise, t)
    xt_lose[:, 0] = x_lose[:, 0]
    # Planned next states from the first states of (at most) _STATE_ERROR_WINDOWS held-out
    # winners, with the same sampling noise at every measurement, so that the ratio to the
    # reference moves with the model and not with the draw.
    first = windows_win[:_STATE_ERROR_WINDOWS, 0]
    target = windows_win[:_STATE_ERROR_WINDOWS, 1]

    def state_error(net: torch.nn.Module) -> float:
        noise_gen = torch.Generator(device=device).manual_seed(seed + _HELD_OUT_SEED + 1)
        plans = sample(
            net, spec.schedule, (len(first), *x_win.shape[1:]), first, SamplerConfig(), noise_gen
        )
        return float((spec.decode(plans)[:, 1] - target).abs().mean())

    with torch.no_grad():
        ref_win = window_errors(reference(xt_win, t), noise)
        ref_lose = window_errors(reference(xt_lose, t), noise)
        ref_state = state_error(reference)

    def evaluate() -> dict[str, float]:
        err_win = window_errors(model(xt_win, t), noise)
        err_lose = window_errors(model(xt_lose, t), noise)
        _, stats = diffusion_dpo_loss(err_win, ref_win, err_lose, ref_lose, beta)
        own_state = state_error(model)
        return {
            "implicit_accuracy": stats["implicit_accuracy"],
            "dpo_loss": stats["dpo_loss"],
            "winner_error": float(err_win.mean() / ref_win.mean()),
            "loser_error": float(err_lose.mean() / ref_lose.mean()),
            "state_error": own_state / max(ref_state, 1e-12),
            "state_error_abs": own_state,
        }

    return evaluate
