"""The one optimization loop every trainer shares: resume, step, clip, EMA, log, checkpoint.

A trainer supplies ``step_fn() -> (loss, stats)``; this module owns everything around it, so
pretraining, inverse dynamics and DPO resume after a kill in exactly the same way. All
randomness of a run flows from one ``torch.Generator`` (plus torch's global RNG for
dropout), and both are saved with each checkpoint, so a resumed run continues the same
random stream it would have drawn without the interruption.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from tora.train.checkpoint import (
    atomic_write_json,
    has_training_state,
    load_training_state,
    save_module,
    save_training_state,
)
from tora.train.ema import EMA

StepFn = Callable[[], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class OptimConfig:
    """Optimizer and bookkeeping settings shared by every trainer."""

    lr: float = 3e-4
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    ema_decay: float = 0.995
    """EMA decay of the saved weights (0 saves the raw weights)."""
    checkpoint_every: int = 500
    """Steps between resumable checkpoints."""
    log_every: int = 50
    """Steps averaged into one history entry."""


@dataclass
class LoopResult:
    """What a finished loop hands back."""

    model: nn.Module
    """The weights to save: the EMA shadow if EMA is on, else the trained model."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One entry per ``log_every`` steps: the step and the mean of each stat."""
    resumed_from: int = 0
    """Step the run resumed from (0 for a fresh run)."""


def run_loop(
    *,
    desc: str,
    model: nn.Module,
    step_fn: StepFn,
    steps: int,
    config: OptimConfig,
    state_dir: Path,
    generator: torch.Generator,
    progress: bool = True,
) -> LoopResult:
    """Optimize ``model`` for ``steps`` steps of ``step_fn``, resuming from ``state_dir``."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    start, history = 0, []
    if has_training_state(state_dir):  # a complete earlier checkpoint: continue from it
        restored = load_training_state(state_dir, model, optimizer, ema.shadow if ema else None)
        start = int(restored["step"])
        generator.set_state(restored["extra_tensors"]["generator"])
        torch.set_rng_state(restored["extra_tensors"]["torch_rng"])
        history = list(restored["extra_json"].get("history", []))
    window: dict[str, list[float]] = {}

    def checkpoint(step: int) -> None:
        save_training_state(
            state_dir,
            step=step,
            model=model,
            optimizer=optimizer,
            ema=ema.shadow if ema else None,
            extra_tensors={"generator": generator.get_state(), "torch_rng": torch.get_rng_state()},
            extra_json={"history": history},
        )

    model.train()
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps, disable=not progress)
    for step in bar:
        loss, stats = step_fn()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{desc}: loss became {float(loss)} at step {step}; lower the learning rate "
                f"or check the data for extreme values (last checkpoint kept in {state_dir})"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
        optimizer.step()
        if ema is not None:
            ema.update(model)
        for key, value in stats.items():
            window.setdefault(key, []).append(value)
        done = step + 1
        if done % config.log_every == 0 or done == steps:
            entry = {"step": done, **{k: sum(v) / len(v) for k, v in window.items()}}
            history.append(entry)
            window.clear()
            bar.set_postfix({k: f"{v:.3g}" for k, v in entry.items() if k != "step"})
        if done % config.checkpoint_every == 0 or done == steps:
            checkpoint(done)
    model.eval()
    return LoopResult(ema.shadow if ema else model, history, start)


def train_and_save(
    *,
    desc: str,
    model: nn.Module,
    step_fn: StepFn,
    steps: int,
    config: OptimConfig,
    out_dir: Path,
    generator: torch.Generator,
    saved_config: dict[str, Any],
    progress: bool = True,
) -> LoopResult:
    """Run the loop with its resumable state in ``out_dir/train_state``, then write the
    history and the trained weights with ``saved_config`` as ``out_dir/config.json``."""
    out_dir = Path(out_dir)
    result = run_loop(
        desc=desc,
        model=model,
        step_fn=step_fn,
        steps=steps,
        config=config,
        state_dir=out_dir / "train_state",
        generator=generator,
        progress=progress,
    )
    write_history(out_dir / "history.json", result.history)
    save_module(out_dir, result.model, saved_config)
    return result


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Save a loop's history as JSON next to the model it describes."""
    atomic_write_json(path, {"history": history})


def read_history(path: Path) -> list[dict[str, float]]:
    return list(json.loads(Path(path).read_text())["history"])
