"""DPO and sampler variants on a reference planner of the reduced suite, measured on
validation data and validation episodes (never the table's evaluation episodes).

Re-runs TORA's stage 2 (one Diffusion-DPO run per objective) from an already trained
reference planner and inverse dynamics of `tora bench run benchmarks/suites/reduced.toml`,
with other DPO settings, then measures:

- the suite's protocol (51 preferences x 1 episode) with another evaluation seed, so other
  start states and noise than the table's: hypervolume, steering and the returns at the ends;
- next-state error of each objective model alone on a validation dataset (another data
  seed), next to the reference planner's: how far DPO moved each model from a model of the
  dynamics;
- the last held-out DPO measurements (winner / loser error relative to the reference,
  implicit accuracy) from each objective's history.

    python benchmarks/dpo_variants.py TAG --seed 0 --beta 100 --label advantage \\
        --val-data runs/validation/MO-HalfCheetah-v0_100_seed1.h5

TAG names the output directory runs/dpo_variants/<env>/TAG/seed<k>; a finished variant is
not retrained (its report is rewritten). Needs the suite's cell for the env and seed.
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

from tora.bench.config import cell_dir, env_dirname, load_suite, method_config, suite_method
from tora.bench.suite import evaluate_sweep, suite_dataset
from tora.data.formats import load_dataset
from tora.diffusion.samplers import SamplerConfig
from tora.envs import objective_names, resolve_env_id
from tora.evaluate.planning import next_state_error
from tora.planning.agent import Agent
from tora.policies.tora_planner import train_tora
from tora.train.planner_io import INVERSE_DIR, REFERENCE_DIR, load_planner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tag")
    parser.add_argument("--suite", default="benchmarks/suites/reduced.toml")
    parser.add_argument("--env", default="MO-HalfCheetah-v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-data", required=True, help="dataset of another data seed")
    parser.add_argument("--val-eval-seed", type=int, default=20000)
    parser.add_argument("--beta", type=float, default=100.0)
    parser.add_argument("--beta-per-element", type=float, default=0.0)
    parser.add_argument("--sft", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--pairs", choices=("random", "nearest"), default="random")
    parser.add_argument(
        "--label", choices=("return", "advantage", "td_advantage"), default="return"
    )
    parser.add_argument("--through-terminals", action="store_true")
    parser.add_argument("--max-winner-error", type=float, default=0.0, help="drift guard")
    parser.add_argument("--max-state-error", type=float, default=0.0, help="drift guard on plans")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta of the evaluation")
    parser.add_argument("--start-abar", type=float, default=0.0)
    parser.add_argument("--sampler-steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)

    suite = load_suite(args.suite)
    env_id = resolve_env_id(args.env)
    entry = next(e for e in suite.envs if resolve_env_id(e.id) == env_id)
    config = method_config(suite, entry, suite_method(suite, "tora"), args.seed)
    dpo = replace(
        config.dpo,
        beta=args.beta,
        beta_per_element=args.beta_per_element,
        sft_weight=args.sft,
        steps=args.steps,
        batch_size=args.batch,
        pair_matching=args.pairs,
        pair_label=args.label,
        through_terminals=args.through_terminals,
        max_winner_error=args.max_winner_error,
        max_state_error=args.max_state_error,
        optim=replace(config.dpo.optim, lr=args.lr, warmup_steps=args.warmup),
    )
    sampler = SamplerConfig(steps=args.sampler_steps, eta=args.eta, start_abar=args.start_abar)
    config = replace(config, dpo=dpo, sampler=sampler)
    source = cell_dir(suite, env_id, "tora", args.seed) / "model"
    out = Path("runs/dpo_variants") / env_dirname(env_id) / args.tag / f"seed{args.seed}"
    model = out / "model"
    if not model.exists():
        for part in (REFERENCE_DIR, INVERSE_DIR):
            shutil.copytree(source / part, model / part)
    traj, _ = suite_dataset(suite, entry, progress=False)
    start = time.perf_counter()
    train_tora(traj, model, config, "cpu", progress=False)
    train_s = time.perf_counter() - start

    val_suite = replace(suite, eval=replace(suite.eval, seed=args.val_eval_seed))
    agent = Agent.load(model, device="cpu", sampler=sampler, seed=0)
    _, summary, _ = evaluate_sweep(val_suite, entry, agent, progress=False)
    names = list(objective_names(env_id))
    means = np.asarray(summary["mean_returns"])

    agent.seed(0)  # back to one shared noise stream (the sweep gave it one per row)
    val = load_dataset(args.val_data)
    spec = agent.spec
    ref_agent = agent.planning_alone(load_planner(model / REFERENCE_DIR)[0], "reference")
    nse = {
        "reference": next_state_error(
            lambda s: ref_agent.plan(s, [1.0]), val, spec.normalizer, spec.stride
        )["planned"]
    }
    held_out = {}
    for k, name in enumerate(agent.objective_names):
        w = np.eye(len(agent.objective_names))[k]
        nse[name] = next_state_error(
            lambda s, w=w: agent.plan(s, w), val, spec.normalizer, spec.stride
        )["planned"]
        history = json.loads((model / "objectives" / name / "history.json").read_text())
        last = [h for h in history["history"] if "val_winner_error" in h][-1]
        held_out[name] = {k: v for k, v in last.items() if k.startswith("val_")}
    report = {
        "args": vars(args),
        "train_s": train_s,
        "hypervolume_val": summary["hypervolume"],
        "steering_val": summary.get("steering_correlation"),
        "returns_at_ends_val": {names[0]: means[0].tolist(), names[-1]: means[-1].tolist()},
        "next_state_error_val": nse,
        "held_out_dpo": held_out,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
