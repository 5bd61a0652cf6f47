"""Objectives fine-tuned side by side as Ray tasks: ``tora finetune --objective a --objective b
--ray``.

Each objective's Diffusion-DPO model depends only on the reference planner, the data and the
settings, never on another objective's, so they can train at once. Each objective is one Ray
task (one CPU, torch on one thread) that calls :func:`tora.train.dpo.finetune_objective` as
the serial command does, so the weights are the serial run's byte for byte (with torch on one
thread there too), and a rerun resumes as a serial one does: an objective that finished has
nothing left to train, one that was interrupted continues from its last checkpoint.

The dataset is loaded once, on the driver, and shared through Ray's object store. An
objective that fails (a :class:`~tora.errors.ToraError` on its settings, or any error) does
not stop the others: :func:`finetune_run_ray` returns every objective's outcome and the
caller reports the failures. A task whose worker died is retried; an error is not (training
is deterministic: it would fail again).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tora.data.trajectories import Trajectories
from tora.device import resolve_device
from tora.errors import ToraError
from tora.pipeline import chosen_objectives
from tora.scale.session import Log, describe, describe_ray_error, ray_session
from tora.train.dpo import DPOConfig, finetune_objective

PURPOSE = "fine-tuning objectives on Ray"
"""What fine-tuning on Ray is, in the message given when Ray is not installed."""

RETRIES = 2
"""How many times an objective's task is retried after its worker died (it resumes from its
last checkpoint)."""


@dataclass(frozen=True)
class FinetuneOutcome:
    """How one objective's fine-tuning ended: its model's directory, or why it failed."""

    objective: str
    path: Path | None
    error: str | None
    seconds: float


def finetune_task(
    run_dir: str,
    traj: Trajectories,
    objective: str,
    config: DPOConfig,
    device: str,
    restart: bool,
    cwd: str,
) -> FinetuneOutcome:
    """One objective in a Ray worker, on one torch thread. A ToraError is returned, not
    raised, so Ray does not retry what a retry cannot mend."""
    import torch

    torch.set_num_threads(1)
    if os.path.isdir(cwd):  # relative paths, as in the suites' cells
        os.chdir(cwd)
    start = time.perf_counter()
    try:
        out = finetune_objective(Path(run_dir), traj, objective, config, device, False, restart)
    except ToraError as error:
        return FinetuneOutcome(objective, None, describe(error), time.perf_counter() - start)
    return FinetuneOutcome(objective, out, None, time.perf_counter() - start)


def finetune_run_ray(
    traj: Trajectories,
    run_dir: Path,
    dpo: DPOConfig,
    objectives: Sequence[str] | None = None,
    device: str = "auto",
    restart: bool = False,
    address: str | None = None,
    log: Log = print,
) -> list[FinetuneOutcome]:
    """:func:`tora.pipeline.finetune_run` with every objective a Ray task (see the module's
    docstring), on a local Ray started for the run or the cluster at ``address``; returns
    each objective's outcome, in ``objectives`` order, failed ones included. Every name is
    checked before Ray starts. ``device`` "cuda" (or "auto" where this machine has CUDA)
    gives each task a GPU."""
    names = chosen_objectives(traj, objectives)
    gpus = 1 if resolve_device(device).type == "cuda" else 0
    with ray_session(address, None, log, PURPOSE) as session:
        ray = session.ray
        session.check_fits("an objective", {"CPU": 1, "GPU": gpus}, log, "objectives wait")
        task = ray.remote(finetune_task).options(
            num_cpus=1, num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False
        )
        data = ray.put(traj)
        on = "cuda" if gpus else "cpu"
        pending = {
            task.remote(str(run_dir), data, name, dpo, on, restart, os.getcwd()): name
            for name in names
        }
        log(
            f"ray: fine-tuning {', '.join(names)}, one task each (1 CPU{', 1 GPU' if gpus else ''})"
        )
        outcomes: dict[str, FinetuneOutcome] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                name = pending.pop(ref)
                outcome = outcomes[name] = _outcome(ray, ref, name)
                if outcome.error is None:
                    log(f"ray: '{name}' finished in {outcome.seconds:.1f} s")
                else:
                    log(f"ray: '{name}' failed: {outcome.error}")
    return [outcomes[name] for name in names]


def _outcome(ray: Any, ref: Any, name: str) -> FinetuneOutcome:
    """A task's outcome; a task that raised, or whose worker died for good, as a failure."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        return FinetuneOutcome(name, None, describe_ray_error(error), 0.0)
