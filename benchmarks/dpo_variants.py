"""DPO variants on a reference planner of the reduced suite (BENCHMARKS.md, section 5).

Re-runs TORA's stage 2 (one Diffusion-DPO run per objective) from an already trained
reference planner and inverse dynamics of `tora bench run benchmarks/suites/reduced.toml`,
with other DPO settings, then measures two things:

- the suite's evaluation (51 preferences x 1 episode, the same start states and noise as the
  suite's cells): hypervolume, steering and the returns at the two ends;
- the plans themselves: the mean planned x velocity (MO-HalfCheetah's observation 8) one and
  three steps ahead from 400 dataset states, with all weight on each objective. This asks
  whether DPO moved the planner the right way before inverse dynamics and the environment
  have a say.

    python benchmarks/dpo_variants.py TAG --seed 1 --beta 300 --pairs nearest [--sft 1.0]

TAG names the output directory runs/dpo_variants/TAG. Needs the suite's cells for the env
and seed (the reference planner and inverse dynamics are copied from there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tora.bench.suite import (
    cell_dir,
    evaluate_sweep,
    load_suite,
    method_config,
    suite_dataset,
    suite_method,
)
from tora.envs import objective_names, resolve_env_id
from tora.planning.agent import Agent
from tora.policies.tora_planner import load_tora, train_tora

VELOCITY_DIM = 8  # MO-HalfCheetah: qpos[1:] (8 values), then qvel whose first entry is v_x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tag")
    parser.add_argument("--suite", default="benchmarks/suites/reduced.toml")
    parser.add_argument("--env", default="MO-HalfCheetah-v2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--beta", type=float, default=100.0)
    parser.add_argument("--sft", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pairs", choices=("random", "nearest"), default="random")
    args = parser.parse_args()
    torch.set_num_threads(1)

    suite = load_suite(args.suite)
    entry = next(e for e in suite.envs if resolve_env_id(e.id) == resolve_env_id(args.env))
    env_id = resolve_env_id(args.env)
    config = method_config(suite, entry, suite_method(suite, "tora"), args.seed)
    dpo = replace(
        config.dpo,
        beta=args.beta,
        sft_weight=args.sft,
        steps=args.steps,
        pair_matching=args.pairs,
        optim=replace(config.dpo.optim, lr=args.lr),
    )
    config = replace(config, dpo=dpo)
    source = cell_dir(suite, env_id, "tora", args.seed) / "model"
    out = Path("runs/dpo_variants") / args.tag / "model"
    if not out.exists():
        for part in ("reference", "inverse_dynamics"):
            shutil.copytree(source / part, out / part)
    traj, _ = suite_dataset(suite, entry, progress=False)
    start = time.perf_counter()
    train_tora(traj, out, config, "cpu", progress=False)
    train_s = time.perf_counter() - start

    policy = load_tora(out, "cpu", suite.eval.seed)
    _, summary, _ = evaluate_sweep(suite, entry, policy, progress=False)
    names = list(objective_names(env_id))
    means = np.asarray(summary["mean_returns"])

    agent = Agent.load(out, device="cpu", seed=0)
    rng = np.random.default_rng(0)
    states = traj.observations[rng.choice(traj.observations.shape[0], 400, replace=False)]
    planned = {}
    for k, name in enumerate(names):
        w = np.eye(len(names))[k]
        plan = agent.plan(states, w)
        planned[name] = [
            float(plan[:, 1, VELOCITY_DIM].mean()),
            float(plan[:, 3, VELOCITY_DIM].mean()),
        ]
    report = {
        "args": vars(args),
        "train_s": train_s,
        "hypervolume": summary["hypervolume"],
        "steering_correlation": summary.get("steering_correlation"),
        "returns_at_ends": {names[0]: means[0].tolist(), names[-1]: means[-1].tolist()},
        "data_velocity": float(states[:, VELOCITY_DIM].mean()),
        "planned_velocity_t1_t3": planned,
    }
    (out.parent / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
