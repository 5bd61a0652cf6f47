"""What every method compared in a benchmark provides: train on Trajectories, load, act.

A method is trained once on an offline dataset and saved as a directory (safetensors weights
plus a ``config.json``); loaded, it maps a batch of observations and a batch of preference
rows to actions. The preference travels with every call, so one loaded policy serves a whole
preference sweep as one batch, exactly like the TORA agent. Methods that ignore preferences
(plain BC) accept and ignore them, so every method runs through the same evaluation code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tora.data.trajectories import Trajectories


class PreferencePolicy(Protocol):
    """A loaded policy: ``act(obs, weights)``.

    obs: (obs_dim,) or (B, obs_dim); weights: (K,) shared by the batch or (B, K), one row per
    observation. Returns (act_dim,) or (B, act_dim) actions in environment units.
    """

    objective_names: list[str]

    def act(self, obs: np.ndarray, weights: np.ndarray) -> np.ndarray: ...

    def seed(self, seed: int) -> None: ...


TrainFn = Callable[[Trajectories, Path, Any, "torch.device | str", bool], Path]
"""(dataset, out_dir, method config, device, progress) -> out_dir; resumes if killed."""

LoadFn = Callable[[Path, "torch.device | str", int], PreferencePolicy]
"""(out_dir, device, seed) -> a loaded policy."""

StagesFn = Callable[[Any], dict[str, Any]]
"""method config -> {path of a stage's directory under out_dir: the settings that determine
what that stage trains}. Two runs on the same data and seed whose settings for a stage are
equal train the same weights there, so one may take the other's finished stage."""


@dataclass(frozen=True)
class Method:
    """A method the benchmark suite can train and evaluate."""

    name: str
    """Short id used in configs and tables (e.g. "bc_p")."""
    label: str
    """Name shown in tables and plot legends (e.g. "BC(P)")."""
    config_cls: type
    """Dataclass of the method's training settings (docstring per field)."""
    train: TrainFn
    load: LoadFn
    sees_preferences: bool
    """Whether the method is given the preference during training."""
    stages: StagesFn | None = None
    """The stages a suite cell may take over from a finished cell of the same method (a
    variant differing elsewhere, e.g. only in how it samples); None: the cell trains all."""
