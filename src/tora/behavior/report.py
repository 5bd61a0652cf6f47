"""What a behaviour set reaches: each policy's returns and episode length, and the set's
hypervolume next to D4MORL's behaviour policies'.

A set's ``index.json`` records, per finished policy, the mean return vector of its
deterministic evaluation episodes and their total steps. :func:`set_report` turns that into
the figures BENCHMARKS.md section 4 compares: the hypervolume of the policies' return vectors
(reference point 0, as D4MORL's, whose objectives carry +1 alive bonuses) and its ratio to the
published behaviour hypervolume where D4MORL has one, and which policies end their episodes
early (a fall, on the tasks that terminate). Nothing is run: the figures are the ones training
measured.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from tora.behavior.train import INDEX_FILE, read_set_index
from tora.envs import resolve_env_id
from tora.evaluate.pareto import hypervolume

__all__ = ["D4MORL_BEHAVIOUR_HV", "PolicyRow", "SetReport", "format_report", "set_report"]

D4MORL_BEHAVIOUR_HV: dict[str, float] = {
    "tora/MO-Ant-v0": 6.32e6,
    "tora/MO-HalfCheetah-v0": 5.79e6,
    "tora/MO-Swimmer-v0": 3.25e4,
    "tora/MO-Walker2d-v0": 5.21e6,
    "tora/MO-Hopper-v0": 2.09e7,
}
"""Hypervolume of D4MORL's behaviour policies on its expert data (the "B" column of its
table; reference point 0). MO-Hopper-3obj has no published figure in our sources."""


@dataclass(frozen=True)
class PolicyRow:
    """One finished policy of a set."""

    index: int
    weights: list[float]
    returns: list[float]
    mean_length: float | None
    """Mean steps of its evaluation episodes (None where the index does not say)."""
    full: bool | None
    """Whether every evaluation episode ran to the time limit (None where unknown)."""


@dataclass(frozen=True)
class SetReport:
    env_id: str
    algorithm: str
    policies: list[PolicyRow]
    total: int
    """Policies the set's grid has (finished or not)."""
    episode_steps: int | None
    hypervolume: float
    d4morl: float | None
    """D4MORL's behaviour hypervolume for this env, where published."""
    env_steps: int
    """Environment steps the finished policies trained on (summed over policies)."""
    train_seconds: float
    """Training time of the finished policies, summed (CPU-bound single-process time; a
    set trained in several sittings, or several at once, took longer in wall time)."""

    @property
    def ratio(self) -> float | None:
        return None if self.d4morl is None else self.hypervolume / self.d4morl

    @property
    def early(self) -> list[int]:
        """Indices of the policies whose evaluation episodes ended before the time limit."""
        return [p.index for p in self.policies if p.full is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "algorithm": self.algorithm,
            "finished": len(self.policies),
            "total": self.total,
            "episode_steps": self.episode_steps,
            "hypervolume": self.hypervolume,
            "d4morl_hypervolume": self.d4morl,
            "ratio": self.ratio,
            "ended_early": self.early,
            "env_steps": self.env_steps,
            "train_seconds": self.train_seconds,
            "policies": [vars(p) for p in self.policies],
        }


def _episode_limit(index: dict[str, Any], env_id: str) -> int | None:
    steps = index.get("config", {}).get("episode_steps")
    if steps:
        return int(steps)
    try:
        spec = gym.spec(resolve_env_id(env_id))
    except gym.error.Error:
        return None
    return spec.max_episode_steps


def _eval_episodes(root: Path, config: dict[str, Any], algorithm: str) -> int:
    """Evaluation episodes per policy: the index's settings record them for ARS; a PPO set's
    index does not (they do not change the policies), its ``command.json`` does. 0: unknown."""
    if config.get("eval_episodes"):
        return int(config["eval_episodes"])
    command = root / "command.json"
    if command.is_file():
        try:
            section = json.loads(command.read_text()).get(algorithm, {})
        except (OSError, ValueError, AttributeError):
            return 0
        if isinstance(section, dict) and section.get("eval_episodes"):
            return int(section["eval_episodes"])
    return 0


def set_report(directory: str | os.PathLike[str]) -> SetReport:
    """The figures of the set in ``directory`` (finished policies only; an unfinished set
    reports what it has). Raises CheckpointError for a missing or corrupt index."""
    root = Path(directory)
    index = read_set_index(root / INDEX_FILE)
    env_id = str(index["env_id"])
    config = index.get("config", {})
    algorithm = str(config.get("algorithm", "ars"))
    limit = _episode_limit(index, env_id)
    episodes = _eval_episodes(root, config, algorithm)
    rows = []
    for entry in sorted(index["policies"], key=lambda e: int(e["index"])):
        steps = entry.get("eval_steps")
        length = float(steps) / episodes if steps is not None and episodes else None
        full = None if length is None or limit is None else length >= limit
        rows.append(
            PolicyRow(
                int(entry["index"]),
                [float(x) for x in entry["weights"]],
                [float(x) for x in entry.get("return_vector", [])],
                length,
                full,
            )
        )
    returns = [r.returns for r in rows if r.returns]
    hv = hypervolume(np.asarray(returns), 0.0) if returns else 0.0
    return SetReport(
        env_id,
        algorithm,
        rows,
        len(index["weights"]),
        limit,
        hv,
        D4MORL_BEHAVIOUR_HV.get(env_id),
        sum(int(e.get("env_steps", 0)) for e in index["policies"]),
        sum(float(e.get("seconds", 0.0)) for e in index["policies"]),
    )


def format_report(report: SetReport) -> str:
    """A plain-text table: one line per policy, then the hypervolume and its ratio."""
    lines = [
        f"{report.env_id} ({report.algorithm}): {len(report.policies)} of {report.total} "
        f"policies finished; evaluation episodes of {report.episode_steps or '?'} steps"
    ]
    for p in report.policies:
        w = ", ".join(f"{x:.2f}" for x in p.weights)
        r = ", ".join(f"{x:.1f}" for x in p.returns)
        length = "?" if p.mean_length is None else f"{p.mean_length:.0f}"
        flag = "  ENDS EARLY" if p.full is False else ""
        lines.append(f"  {p.index:3d}  w=({w})  returns ({r})  length {length}{flag}")
    line = f"hypervolume (ref 0): {report.hypervolume:.4g}"
    if report.d4morl is not None:
        line += f"; D4MORL's behaviour policies {report.d4morl:.4g}: ratio {report.ratio:.3f}"
    lines.append(line)
    lines.append(
        f"training: {report.env_steps / 1e6:.2f}M env steps, "
        f"{report.train_seconds / 60:.1f} min summed over policies"
    )
    return "\n".join(lines)
