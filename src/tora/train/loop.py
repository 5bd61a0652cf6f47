"""The one optimization loop every trainer shares: resume, step, clip, EMA, log, checkpoint.

A trainer supplies ``step_fn() -> (loss, stats)``; this module owns everything around it, so
pretraining, inverse dynamics and DPO resume after a kill in exactly the same way. All
randomness of a run flows from one ``torch.Generator`` (plus torch's global RNG for
dropout), and both are saved with each checkpoint, so a resumed run continues the same
random stream it would have drawn without the interruption.

A trainer may also describe what its run is made from (an *identity*: data fingerprint,
reference hash, settings; see :func:`run_identity`). It is saved with every checkpoint and
with the finished model, and a call whose identity differs is refused before anything is
trained or written, naming what changed: resuming a state on other inputs would silently mix
two runs. ``restart=True`` moves the earlier contents aside and starts over.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from tora.configs import config_to_dict, fill_missing, legacy_defaults, settings_diff
from tora.errors import StaleRunError
from tora.io import atomic_write_json
from tora.train.checkpoint import (
    CONFIG_FILE,
    has_training_state,
    load_training_state,
    read_config,
    read_training_state_doc,
    save_module,
    save_training_state,
)
from tora.train.ema import EMA

StepFn = Callable[[], tuple[torch.Tensor, dict[str, float]]]
GuardFn = Callable[[dict[str, float]], str | None]
"""Held-out values (``val_*``) -> None while training may go on, else why it must stop."""
EvalFn = Callable[[], dict[str, float]]
"""Held-out measurements of the model being trained; must not draw from the run's generator
(a resumed run would then draw other batches than an uninterrupted one)."""

STATE_DIR = "train_state"
"""Subdirectory of a trainer's output directory holding its resumable state."""
IDENTITY_KEY = "trained_from"
"""Key under which the identity is saved, in the training state and in ``config.json``."""
STALE_PREFIX = "stale-"
"""Prefix of the subdirectory that ``restart`` moves earlier contents into."""
GUARD_STOP_KEY = "guard_stop"
"""Key of a training state's record that the guard ended the run (step, reason, kept_step)."""
RESTART_HINT = "--restart (restart=True in Python)"

# Settings that may change between a run and its resumption without making it another run:
# more steps continue the same training; how often it checkpoints or logs changes no weight.
_RESUMABLE_SETTINGS = ("steps", "optim.checkpoint_every", "optim.log_every")


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
    warmup_steps: int = 0
    """Steps over which the learning rate rises linearly from lr / warmup_steps to lr."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: keep lr ("constant") or decay it to 0 by the last step ("cosine")."""


def learning_rate(config: OptimConfig, step: int, steps: int) -> float:
    """The learning rate of 0-indexed ``step`` of ``steps``: a pure function of the step, so a
    resumed run needs no scheduler state to continue exactly where it stopped."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        done = (step - config.warmup_steps) / max(1, steps - config.warmup_steps)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
    return config.lr


@dataclass
class LoopResult:
    """What a finished loop hands back."""

    model: nn.Module
    """The weights to save: the EMA shadow if EMA is on, else the trained model."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One entry per ``log_every`` steps: the step and the mean of each stat."""
    resumed_from: int = 0
    """Step the run resumed from (0 for a fresh run)."""
    stopped: dict[str, Any] | None = None
    """Where and why the guard stopped the run (step, reason, kept_step), or None."""


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
    identity: RunIdentity | None = None,
    evaluate: EvalFn | None = None,
    evaluate_every: int = 0,
    guard: GuardFn | None = None,
) -> LoopResult:
    """Optimize ``model`` for ``steps`` steps of ``step_fn``, resuming from ``state_dir``.

    ``identity`` is saved with each checkpoint; checking it before a resume is the caller's
    job (:func:`check_resumable`), done before any other file is touched. ``evaluate`` runs
    (model in eval mode, no gradients) every ``evaluate_every`` steps, at step 0 and at the
    end; its values join that step's history entry prefixed with ``val_``.

    ``guard`` reads each held-out measurement; when it names a reason to stop, training ends
    there and the weights of the last measurement it accepted are kept (the starting weights
    at worst), so a run that drifts away is cut back to where it was still acceptable. The
    stop is saved with the state: a rerun does not train on past it. After a resume, the
    weights of the resumed checkpoint stand in for earlier accepted ones."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    start, history = 0, []
    stopped: dict[str, Any] | None = None
    if has_training_state(state_dir):  # a complete earlier checkpoint: continue from it
        restored = load_training_state(state_dir, model, optimizer, ema.shadow if ema else None)
        start = int(restored["step"])
        generator.set_state(restored["extra_tensors"]["generator"])
        torch.set_rng_state(restored["extra_tensors"]["torch_rng"])
        history = list(restored["extra_json"].get("history", []))
        stopped = restored["extra_json"].get(GUARD_STOP_KEY)
        if stopped is not None:  # the guard ended this run; the kept weights are final
            start = steps = int(start)
        if start > steps:
            raise StaleRunError(
                f"{state_dir}: already trained {start} steps, more than the {steps} asked for; "
                f"ask for at least {start} steps, or pass {RESTART_HINT} to start over"
            )
        # One line whether or not progress bars are on, so a log shows that a run continued.
        if stopped is not None:
            print(
                f"{desc}: ended by its guard at step {start} ({stopped.get('reason')}), keeping "
                f"the weights of step {stopped.get('kept_step')}; nothing left to train "
                f"({state_dir})",
                file=sys.stderr,
            )
        else:
            print(f"{desc}: resuming from step {start} of {steps} ({state_dir})", file=sys.stderr)
    window: dict[str, list[float]] = {}

    def checkpoint(step: int) -> None:
        save_training_state(
            state_dir,
            step=step,
            model=model,
            optimizer=optimizer,
            ema=ema.shadow if ema else None,
            extra_tensors={"generator": generator.get_state(), "torch_rng": torch.get_rng_state()},
            extra_json={
                "history": history,
                **({IDENTITY_KEY: identity.values} if identity is not None else {}),
                **({GUARD_STOP_KEY: stopped} if stopped is not None else {}),
            },
        )

    kept = ema.shadow if ema is not None else model  # the weights a run hands back

    def snapshot() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        shadow = None if ema is None else {k: v.clone() for k, v in kept.state_dict().items()}
        return own, shadow

    # The weights a guard stop falls back to, and their step: the start (or the resumed
    # checkpoint) until a measurement is accepted.
    accepted = snapshot() if guard is not None else None
    accepted_step = start

    def held_out() -> dict[str, float]:
        if evaluate is None:
            return {}
        model.eval()
        with torch.no_grad():
            values = {f"val_{k}": float(v) for k, v in evaluate().items()}
        model.train()
        return values

    def due(done: int) -> bool:
        return evaluate is not None and evaluate_every > 0 and done % evaluate_every == 0

    model.train()
    if start == 0 and evaluate is not None:
        history.append({"step": 0, **held_out()})  # where the model started (the reference)
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps, disable=not progress)
    for step in bar:
        lr = learning_rate(config, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
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
        if done % config.log_every == 0 or done == steps or due(done):
            entry = {"step": done, **{k: sum(v) / len(v) for k, v in window.items()}}
            reason = None
            if due(done) or done == steps:
                values = held_out()
                entry.update(values)
                reason = guard(values) if guard is not None and values else None
            history.append(entry)
            window.clear()
            bar.set_postfix({k: f"{v:.3g}" for k, v in entry.items() if k != "step"})
            if reason is not None and accepted is not None:
                model.load_state_dict(accepted[0])
                if ema is not None and accepted[1] is not None:
                    kept.load_state_dict(accepted[1])
                stopped = {"step": done, "reason": reason, "kept_step": accepted_step}
                print(
                    f"{desc}: stopped at step {done} ({reason}); keeping the weights of step "
                    f"{accepted_step}",
                    file=sys.stderr,
                )
                checkpoint(done)
                break
            if reason is None and accepted is not None and (due(done) or done == steps):
                accepted, accepted_step = snapshot(), done
        if done % config.checkpoint_every == 0 or done == steps:
            checkpoint(done)
    model.eval()
    return LoopResult(kept, history, start, stopped)


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
    identity: RunIdentity | Mapping[str, Any] | None = None,
    restart: bool = False,
    evaluate: EvalFn | None = None,
    evaluate_every: int = 0,
    guard: GuardFn | None = None,
) -> LoopResult:
    """Run the loop with its resumable state in ``out_dir/train_state``, then write the
    history and the trained weights with ``saved_config`` as ``out_dir/config.json``.

    With an ``identity``, earlier contents of ``out_dir`` made from other inputs are refused
    (:class:`StaleRunError`) before anything is written; ``restart`` moves them aside instead
    (:func:`move_aside`). Callers that write files of their own into ``out_dir`` before
    training should call :func:`prepare_out_dir` first themselves. ``evaluate``,
    ``evaluate_every`` and ``guard``: see :func:`run_loop`; a guard's stop is recorded in the
    saved config as ``guard_stop``."""
    out_dir = Path(out_dir)
    checked = prepare_out_dir(out_dir, identity, restart) if identity is not None else None
    result = run_loop(
        desc=desc,
        model=model,
        step_fn=step_fn,
        steps=steps,
        config=config,
        state_dir=out_dir / STATE_DIR,
        generator=generator,
        progress=progress,
        identity=checked,
        evaluate=evaluate,
        evaluate_every=evaluate_every,
        guard=guard,
    )
    write_history(out_dir / "history.json", result.history)
    if checked is not None:
        saved_config = {**saved_config, IDENTITY_KEY: checked.values}
    if result.stopped is not None:
        saved_config = {**saved_config, GUARD_STOP_KEY: result.stopped}
    save_module(out_dir, result.model, saved_config)
    return result


@dataclass(frozen=True)
class RunIdentity:
    """What a training run is made from (:func:`run_identity`).

    ``values`` (JSON) is saved with the run; ``defaults`` is not: the settings' values from
    before each field existed (:func:`tora.configs.legacy_defaults`), which fill in settings a
    run saved before they existed, so adding a config field does not make every earlier run
    look like another run, and changing a default does not make one look like the new one."""

    values: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)


def run_identity(settings: Any, **inputs: Any) -> RunIdentity:
    """What a training run is made from: ``settings`` (a config dataclass) without the
    fields that may change on resume (steps, checkpoint and log intervals), and ``inputs``
    such as ``data_sha256`` or ``reference_sha256``. Under a cosine learning-rate schedule
    the number of steps stays: it sets the learning rate of every step already taken."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        as_dict = _without_resumable(config_to_dict(settings))
        try:
            defaults = _without_resumable(legacy_defaults(type(settings)))
        except TypeError:  # a config without defaults for every field
            defaults = {}
    else:
        as_dict, defaults = _without_resumable(dict(settings)), {}
    return RunIdentity(_as_json({"settings": as_dict, **inputs}), _as_json(defaults))


def _without_resumable(settings: dict[str, Any]) -> dict[str, Any]:
    optim = settings.get("optim")
    decays = isinstance(optim, dict) and optim.get("lr_schedule") == "cosine"
    for dotted in _RESUMABLE_SETTINGS:
        if dotted == "steps" and decays:
            continue
        *parents, leaf = dotted.split(".")
        node: Any = settings
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return settings


def _as_json(obj: Any) -> Any:
    # A JSON round trip makes the identity compare equal to the one read back from disk.
    return json.loads(json.dumps(obj, sort_keys=True))


def _as_identity(identity: RunIdentity | Mapping[str, Any]) -> RunIdentity:
    if isinstance(identity, RunIdentity):
        return identity
    return RunIdentity(_as_json(dict(identity)))


def prepare_out_dir(
    out_dir: Path, identity: RunIdentity | Mapping[str, Any], restart: bool = False
) -> RunIdentity:
    """Make ``out_dir`` ready for a run with ``identity``: move earlier contents aside when
    ``restart``, else refuse them if they were made from other inputs."""
    out_dir = Path(out_dir)
    identity = _as_identity(identity)
    if restart:
        moved = move_aside(out_dir)
        if moved is not None:
            print(f"moved the earlier contents of {out_dir} to {moved}", file=sys.stderr)
    else:
        check_resumable(out_dir, identity)
    return identity


def check_resumable(out_dir: Path, identity: RunIdentity | Mapping[str, Any]) -> None:
    """Refuse (:class:`StaleRunError`) to continue ``out_dir`` if its training state, or
    its finished model when no state is left, was made from other inputs than ``identity``.

    Directories saved before identities were recorded cannot be checked; they pass with a
    one-line warning."""
    out_dir = Path(out_dir)
    identity = _as_identity(identity)
    state_dir = out_dir / STATE_DIR
    if has_training_state(state_dir):
        where, what = state_dir, "the saved training state"
        saved = read_training_state_doc(state_dir).get("extra_json", {}).get(IDENTITY_KEY)
    elif (out_dir / CONFIG_FILE).is_file():
        where, what = out_dir / CONFIG_FILE, "the finished model"
        saved = read_config(out_dir).get(IDENTITY_KEY)
    else:
        return
    if saved is None:
        print(
            f"warning: {where} was saved by an older tora that did not record its data and "
            f"settings; continuing without that check ({RESTART_HINT} starts over)",
            file=sys.stderr,
        )
        return
    if isinstance(saved, dict) and isinstance(saved.get("settings"), dict):
        saved = {**saved, "settings": fill_missing(saved["settings"], identity.defaults)}
    if saved != identity.values:
        changed = "; ".join(settings_diff(saved, identity.values))
        raise StaleRunError(
            f"{out_dir}: {what} was made from other inputs than this call's ({changed}); "
            f"continuing would mix the two. Pass {RESTART_HINT} to move it aside into "
            f"{out_dir}/{STALE_PREFIX}<time>/ and train from scratch, or give the inputs it "
            "was made from"
        )


def move_aside(out_dir: Path) -> Path | None:
    """Move everything in ``out_dir`` (but earlier stale copies) into a new
    ``out_dir/stale-<UTC time>/``, so starting over never deletes a model silently. Returns
    the new directory, or None when there was nothing to move."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    entries = [p for p in out_dir.iterdir() if not p.name.startswith(STALE_PREFIX)]
    if not entries:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest, n = out_dir / f"{STALE_PREFIX}{stamp}", 1
    while dest.exists():  # two restarts within a second
        n += 1
        dest = out_dir / f"{STALE_PREFIX}{stamp}-{n}"
    dest.mkdir()
    # config.json first: it vouches for the directory, so a kill half-way leaves no model
    # that claims to be complete next to weights that were already moved.
    entries.sort(key=lambda p: p.name != CONFIG_FILE)
    for entry in entries:
        os.replace(entry, dest / entry.name)
    return dest


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Save a loop's history as JSON next to the model it describes."""
    atomic_write_json(path, {"history": history})


def read_history(path: Path) -> list[dict[str, float]]:
    return list(json.loads(Path(path).read_text())["history"])
