"""Reading and writing planner, objective and inverse-dynamics directories.

A run directory holds one directory per trained piece, each a ``config.json`` plus
``model.safetensors``::

    run/
      reference/            the pretrained planner (the frozen DPO reference)
      inverse_dynamics/     a_t = f(s_t, s_{t+m})
      objectives/<name>/    one DPO-fine-tuned planner per objective
      critics/<name>/       optional: a value critic per objective (preference-weighted
                            selection among sampled plans, ``tora critic``)

Every ``config.json`` records the SHA-256 of its own weights, checked at load, and objective
directories also record the SHA-256 of the reference weights they started from, so a corrupt
file is refused as corrupt and a set of objective models trained from different references is
refused rather than mixed. Adding an objective adds a directory and touches nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tora.data.coding import WindowCoding
from tora.data.normalize import Normalizer
from tora.diffusion.schedule import NoiseSchedule
from tora.errors import CheckpointError, UnknownObjectiveError
from tora.nn.critics import ValueCritic, ValueCriticConfig
from tora.nn.denoisers import DenoiserConfig, build_denoiser
from tora.nn.inverse_dynamics import InverseDynamics, InverseDynamicsConfig
from tora.train.checkpoint import load_state_into, read_config, verify_weights

REFERENCE_DIR = "reference"
INVERSE_DIR = "inverse_dynamics"
OBJECTIVES_DIR = "objectives"
CRITICS_DIR = "critics"
CRITIC_KIND = "value_critic"
"""The ``kind`` recorded in a value critic's config.json."""
WEIGHTS_FILE = "model.safetensors"


@dataclass
class PlannerSpec:
    """Everything needed to rebuild a planner network and interpret its output."""

    horizon: int
    stride: int
    obs_dim: int
    denoiser: DenoiserConfig
    schedule: NoiseSchedule
    normalizer: Normalizer
    coding: WindowCoding = field(default_factory=WindowCoding)
    """How normalized windows are coded for the denoiser (:mod:`tora.data.coding`)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "horizon": self.horizon,
            "stride": self.stride,
            "obs_dim": self.obs_dim,
            "denoiser": vars(self.denoiser).copy(),
            "schedule": self.schedule.to_dict(),
            "normalizer": self.normalizer.to_dict(),
        }
        if self.coding.kind != "absolute":  # absolute planners' configs stay as they were
            out["coding"] = self.coding.to_dict()
        return out

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """Normalized windows (B, H, D) -> the denoiser's space."""
        return self.coding.encode(windows)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Sampled windows in the denoiser's space -> normalized windows."""
        return self.coding.decode(x)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannerSpec:
        try:
            return cls(
                horizon=int(d["horizon"]),
                stride=int(d["stride"]),
                obs_dim=int(d["obs_dim"]),
                denoiser=DenoiserConfig(**d["denoiser"]),
                schedule=NoiseSchedule(**d["schedule"]),
                normalizer=Normalizer.from_dict(d["normalizer"]),
                coding=WindowCoding.from_dict(d.get("coding")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"planner config is incomplete or malformed: {exc!r}") from exc

    def build(self) -> nn.Module:
        return build_denoiser(self.horizon, self.obs_dim, self.denoiser)


def remedy(directory: Path, config: dict[str, Any] | None = None) -> str:
    """What to do about a damaged model directory of a run, by the kind of model it holds."""
    directory = Path(directory)
    kind = (config or {}).get("kind")
    if kind == "objective_planner" or directory.parent.name == OBJECTIVES_DIR:
        run = directory.parent.parent
        return (
            f"fine-tune it again: `tora finetune --data DATA --run {run} "
            f"--objective {directory.name} --restart`"
        )
    if kind == CRITIC_KIND or directory.parent.name == CRITICS_DIR:
        return (
            f"train it again: `tora critic --data DATA --run {directory.parent.parent} "
            f"--objective {directory.name} --restart`"
        )
    if kind == "inverse_dynamics" or directory.name == INVERSE_DIR:
        return (
            f"move {directory} away and re-run `tora pretrain --data DATA --run "
            f"{directory.parent}` (the reference planner is kept)"
        )
    if kind == "reference_planner" or directory.name == REFERENCE_DIR:
        return (
            f"pretrain it again: `tora pretrain --data DATA --run {directory.parent} --restart`, "
            "then fine-tune every objective again with --restart"
        )
    return "retrain it or restore the directory from a copy"


def load_planner(
    directory: Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, PlannerSpec, dict]:
    """(denoiser in eval mode, its spec, the whole config.json) from a planner directory;
    its weights are checked against the hash recorded when they were saved."""
    config = read_config(directory)
    spec = PlannerSpec.from_dict(config.get("planner", {}))
    model = spec.build()
    load_state_into(directory, model, remedy(directory, config))
    return model.to(device).eval().requires_grad_(False), spec, config


def load_inverse_dynamics(
    directory: Path, spec: PlannerSpec, device: torch.device | str = "cpu"
) -> InverseDynamics:
    """The inverse dynamics model in ``directory``, checked against the planner it serves:
    it must map states of the planner's size, ``spec.stride`` steps apart."""
    config = read_config(directory)
    if config.get("obs_dim") != spec.obs_dim or config.get("stride") != spec.stride:
        raise CheckpointError(
            f"inverse dynamics in {directory} (obs_dim {config.get('obs_dim')}, stride "
            f"{config.get('stride')}) does not match the planner (obs_dim {spec.obs_dim}, "
            f"stride {spec.stride})"
        )
    try:
        model = InverseDynamics(
            int(config["obs_dim"]),
            int(config["act_dim"]),
            torch.tensor(config["action_low"]),
            torch.tensor(config["action_high"]),
            InverseDynamicsConfig(**config["network"]),
        )
    except (KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{directory}/config.json is not an inverse dynamics config: {exc!r}"
        ) from exc
    load_state_into(directory, model, remedy(directory, config))
    return model.to(device).eval().requires_grad_(False)


def reference_hash(run_dir: Path) -> str:
    """SHA-256 of the run's reference weights, after checking them against the hash recorded
    when they were saved: a damaged reference is reported as damaged, not as a reference the
    objective models were not fine-tuned from."""
    directory = Path(run_dir) / REFERENCE_DIR
    if not (directory / WEIGHTS_FILE).exists() or not (directory / "config.json").exists():
        raise CheckpointError(f"no reference planner at {directory}; run `tora pretrain` first")
    config = read_config(directory)
    return verify_weights(directory, config, remedy(directory, config))


def available_objectives(run_dir: Path) -> list[str]:
    """Names of the objective models present in ``run_dir`` (sorted)."""
    root = Path(run_dir) / OBJECTIVES_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").exists())


def default_objective_order(run_dir: Path) -> list[str]:
    """Available objective models in the dataset's column order (then any others, sorted),
    so weight vectors line up with the reward columns unless the user says otherwise."""
    have = available_objectives(run_dir)
    try:
        dataset_order = [
            o["name"] for o in read_config(Path(run_dir) / REFERENCE_DIR)["objectives"]
        ]
    except (CheckpointError, KeyError, TypeError):
        dataset_order = []
    first = [n for n in dataset_order if n in have]
    return first + [n for n in have if n not in first]


def composed_objectives(run_dir: Path, objectives: Sequence[str] | None = None) -> list[str]:
    """The objective models an agent of ``run_dir`` composes: ``objectives`` as given, or
    every model the run has (:func:`default_objective_order`); a CheckpointError when the
    run has none yet."""
    names = list(objectives) if objectives is not None else default_objective_order(run_dir)
    if not names:
        raise CheckpointError(
            f"no objective models in {run_dir}/objectives; run `tora finetune` first"
        )
    return names


def objective_dir(run_dir: Path, name: str) -> Path:
    path = Path(run_dir) / OBJECTIVES_DIR / name
    if not (path / "config.json").exists():
        have = available_objectives(run_dir)
        raise UnknownObjectiveError(
            f"no objective model {name!r} in {run_dir}; available: {have or 'none'} "
            f"(train one with `tora finetune --objective {name}`)"
        )
    return path


def critic_dir(run_dir: Path, name: str) -> Path:
    """``run_dir/critics/<name>``, or a CheckpointError naming the command that trains it."""
    path = Path(run_dir) / CRITICS_DIR / name
    if not (path / "config.json").exists():
        raise CheckpointError(
            f"no value critic for objective {name!r} in {Path(run_dir) / CRITICS_DIR}; "
            "selection among several candidate plans (candidates > 1) scores them with one "
            f"critic per composed objective: train it with `tora critic --data DATA --run "
            f"{run_dir} --objective {name}`"
        )
    return path


def load_value_critic(
    directory: Path, spec: PlannerSpec, reference_sha256: str, device: torch.device | str = "cpu"
) -> tuple[ValueCritic, dict[str, Any]]:
    """(critic in eval mode, its config.json) from a critic directory, checked against the
    planner it scores: the same state size, and the normalizer of the same reference planner
    (its states are the planner's normalized states)."""
    directory = Path(directory)
    config = read_config(directory)
    fix = remedy(directory, config)
    if config.get("kind") != CRITIC_KIND:
        raise CheckpointError(f"{directory} holds {config.get('kind')!r}, not a value critic")
    if config.get("obs_dim") != spec.obs_dim:
        raise CheckpointError(
            f"value critic in {directory} reads {config.get('obs_dim')}-dim states but the "
            f"planner plans {spec.obs_dim}; {fix}"
        )
    if config.get("reference_sha256") != reference_sha256:
        raise CheckpointError(
            f"value critic in {directory} was trained on the states of another reference "
            f"planner (its normalizer) than this run's, which has changed since; {fix}"
        )
    try:
        model = ValueCritic(
            spec.obs_dim,
            float(config["target_mean"]),
            float(config["target_std"]),
            ValueCriticConfig(**config["network"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{directory}/config.json is not a value critic config: {exc!r}"
        ) from exc
    load_state_into(directory, model, fix)
    return model.to(device).eval().requires_grad_(False), config
