"""``tora diagnose``: a planner's health before any rollout (next-state error against "no
change", and each objective model's shift of its planned objective)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tora.cli.common import (
    RuntimeOptions,
    add_command,
    required,
    runtime_options,
)
from tora.cli.config_args import add_dataclass_arguments, dataclass_from_args
from tora.data.formats import load_dataset
from tora.diffusion.samplers import SamplerConfig
from tora.errors import ToraError
from tora.evaluate.planning import InverseFn, PlannerDiagnosis, diagnose_planners
from tora.planning.agent import Agent
from tora.tables import aligned_table
from tora.train.planner_io import (
    REFERENCE_DIR,
    load_planner,
)


@dataclass
class DiagnoseOptions:
    """Inputs and outputs of ``tora diagnose``."""

    run: str = "runs/my-run"
    """Run directory with reference, inverse dynamics and objective models."""
    data: str = ""
    """Dataset whose transitions are planned from (best: data the run was not trained on,
    e.g. another seed of `tora data make`)."""
    samples: int = 2000
    """Transitions planned from (at most)."""
    seed: int = 0
    """Seed of the transitions drawn and of the sampling noise."""
    json: bool = False
    """Print one JSON object instead of the table."""


def diagnose(args: argparse.Namespace) -> int:
    opts = dataclass_from_args(DiagnoseOptions, args)
    runtime = runtime_options(args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    if opts.samples < 2:
        raise ToraError(f"--samples must be at least 2, got {opts.samples}")
    run = Path(opts.run)
    traj = load_dataset(required(opts.data, "--data"))
    agent = Agent.load(run, device=runtime.device, sampler=sampler, seed=opts.seed)
    spec = agent.spec
    if traj.obs_dim != spec.obs_dim:
        raise ToraError(
            f"{opts.data} has {traj.obs_dim}-dim observations; the run plans {spec.obs_dim}"
        )
    reference, _, _ = load_planner(run / REFERENCE_DIR, agent.device)
    ref_agent = agent.planning_alone(reference, "reference", opts.seed)
    planners = {"reference": lambda s: ref_agent.plan(s, [1.0])}
    for k, name in enumerate(agent.objective_names):
        one_hot = np.eye(len(agent.objective_names))[k]
        planners[name] = lambda s, w=one_hot: agent.plan(s, w)
    found = diagnose_planners(
        planners,
        traj,
        spec.normalizer,
        spec.stride,
        opts.samples,
        opts.seed,
        inverse=agent_inverse(agent),
    )
    if opts.json:
        from dataclasses import asdict

        print(json.dumps(asdict(found), indent=2))
    else:
        print(format_diagnosis(found))
    return 0


def agent_inverse(agent: Agent) -> InverseFn:
    """The agent's inverse dynamics on states in environment units (as plans come back)."""
    norm = agent.spec.normalizer

    def inverse(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        def z(x: np.ndarray) -> torch.Tensor:
            return norm.normalize(torch.as_tensor(x, dtype=torch.float32, device=agent.device))

        with torch.no_grad():
            return agent.inverse(z(s), z(s_next)).cpu().numpy()

    return inverse


def format_diagnosis(found: PlannerDiagnosis) -> str:
    """The diagnosis as an aligned table, then what the baselines and R^2 mean."""
    names = found.objectives
    ref = found.planned_reward.get("reference")
    acted = bool(found.action_error)
    head = ["planner", "next-state error"] + (["action error"] if acted else [])
    head += [f"planned {n}" for n in names]
    if ref is not None:
        head += [f"shift {n}" for n in names]
    rows = []
    for planner, err in found.next_state_error.items():
        planned = found.planned_reward[planner]
        row = [planner, f"{err:.3f}"] + ([f"{found.action_error[planner]:.3f}"] if acted else [])
        row += [f"{v:.3g}" for v in planned]
        if ref is not None:
            row += [f"{v - r:+.3g}" for v, r in zip(planned, ref, strict=True)]
        rows.append(row)
    rows.append(
        ["data", "-"]
        + (["-"] if acted else [])
        + [f"{v:.3g}" for v in found.data_reward]
        + ["-"] * (len(head) - 2 - int(acted) - len(names))
    )
    actions = (
        f"action error = the inverse dynamics' action on the first planned transition against "
        f"the data's (RMSE / the data's std, mean over action dims); baselines: fed the data's "
        f"next state {found.action_floor:.3f} (its floor), another transition's action "
        f"{found.action_shuffled:.3f}\n"
        if acted
        else ""
    )
    r2 = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, found.reward_model_r2, strict=True))
    return (
        aligned_table(head, rows)
        + f"\nnext-state error baselines: 'no change' {found.still:.3f}, another transition's "
        f"{found.shuffled:.3f} (normalized units; a planner should beat both)\n"
        + actions
        + f"planned = reward of the first planned transition by a model fitted on the data "
        f"(R^2: {r2}); shift = against the reference: an objective model should move its "
        "own objective the way it is optimized"
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``tora diagnose`` on the ``tora`` parser's subcommands."""
    diagnose_parser = add_command(
        sub,
        "diagnose",
        "Planner health before any rollout: next-state error and the planned objectives of\n"
        "the reference planner and of each objective model alone, on a dataset's transitions.",
        diagnose,
    )
    add_dataclass_arguments(diagnose_parser, DiagnoseOptions)
    add_dataclass_arguments(diagnose_parser, RuntimeOptions)
    add_dataclass_arguments(diagnose_parser, SamplerConfig, prefix="sampler", group_title="sampler")
