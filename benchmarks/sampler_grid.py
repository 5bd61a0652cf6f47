"""Which sampler settings plan well: a grid measured on validation data, never on the table's
evaluation episodes.

For one trained TORA cell of a suite (reference planner, objective models, inverse
dynamics), and each sampler setting of the grid (start step's signal fraction, DDIM eta,
DDPM), it measures

- next-state error (:func:`tora.evaluate.next_state_error`) of the reference planner and of
  each objective model alone, on a validation dataset made with another data seed;
- the suite's preference sweep with another evaluation seed (other start states and noise):
  hypervolume, steering and the returns at the two ends.

    python benchmarks/sampler_grid.py --env MO-HalfCheetah-v2 --seed 0 \\
        --val-data runs/validation/MO-HalfCheetah-v0_100_seed1.h5

Results go to runs/sampler_grid/<env>/seed<k>/<setting>.json (a finished setting is skipped
when rerun); the last line prints a table of every setting measured so far.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tora.bench.config import cell_dir, env_dirname, load_suite
from tora.bench.suite import evaluate_sweep
from tora.data.formats import load_dataset
from tora.diffusion.samplers import SamplerConfig
from tora.envs import objective_names, resolve_env_id
from tora.evaluate.planning import next_state_error
from tora.planning.agent import Agent
from tora.tables import aligned_table
from tora.train.planner_io import REFERENCE_DIR, load_planner

GRID: dict[str, SamplerConfig] = {
    "ddim20_eta0_start0": SamplerConfig(steps=20, eta=0.0, start_abar=0.0),
    "ddim20_eta0_start1e-4": SamplerConfig(steps=20, eta=0.0, start_abar=1e-4),
    "ddim20_eta0_start1e-3": SamplerConfig(steps=20, eta=0.0, start_abar=1e-3),
    "ddim20_eta0_start1e-2": SamplerConfig(steps=20, eta=0.0, start_abar=1e-2),
    "ddim20_eta1_start0": SamplerConfig(steps=20, eta=1.0, start_abar=0.0),
    "ddim20_eta1_start1e-3": SamplerConfig(steps=20, eta=1.0, start_abar=1e-3),
    "ddim20_eta0.5_start1e-3": SamplerConfig(steps=20, eta=0.5, start_abar=1e-3),
    "ddim10_eta0_start1e-3": SamplerConfig(steps=10, eta=0.0, start_abar=1e-3),
    "ddim10_eta1_start1e-3": SamplerConfig(steps=10, eta=1.0, start_abar=1e-3),
    "ddpm_start1e-3": SamplerConfig(method="ddpm", start_abar=1e-3),
    "ddim20_eta1_start1e-3_temp0.5": SamplerConfig(
        steps=20, eta=1.0, start_abar=1e-3, temperature=0.5
    ),
    "ddim20_eta1_start1e-3_temp0.75": SamplerConfig(
        steps=20, eta=1.0, start_abar=1e-3, temperature=0.75
    ),
}


def measure(
    model: Path, setting: SamplerConfig, val: Any, suite: Any, entry: Any, names: list[str]
) -> dict[str, Any]:
    agent = Agent.load(model, device="cpu", sampler=setting, seed=0)
    spec = agent.spec
    ref_agent = agent.planning_alone(load_planner(model / REFERENCE_DIR)[0], "reference")
    errors = {
        "reference": next_state_error(
            lambda s: ref_agent.plan(s, [1.0]), val, spec.normalizer, spec.stride, seed=0
        )
    }
    for k, name in enumerate(agent.objective_names):
        w = np.eye(len(agent.objective_names))[k]
        errors[name] = next_state_error(
            lambda s, w=w: agent.plan(s, w), val, spec.normalizer, spec.stride, seed=0
        )
    start = time.perf_counter()
    _, summary, _ = evaluate_sweep(suite, entry, agent, progress=False)
    means = np.asarray(summary["mean_returns"])
    return {
        "sampler": vars(setting),
        "next_state_error": {k: v["planned"] for k, v in errors.items()},
        "still": errors["reference"]["still"],
        "hypervolume": summary["hypervolume"],
        "steering": summary["steering_correlation"],
        "ends": {names[0]: means[0].tolist(), names[-1]: means[-1].tolist()},
        "sweep_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="benchmarks/suites/reduced.toml")
    parser.add_argument("--env", default="MO-HalfCheetah-v2")
    parser.add_argument("--method", default="tora", help="the cell's method (or variant) name")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the cell")
    parser.add_argument("--val-data", required=True, help="dataset of another data seed")
    parser.add_argument("--val-eval-seed", type=int, default=20000)
    parser.add_argument("--only", nargs="*", default=None, help="settings of GRID to run")
    parser.add_argument(
        "--model",
        default=None,
        help="a run directory to measure instead of the cell's (e.g. a dpo_variants model); "
        "results then go under runs/sampler_grid/<env>/<TAG>/, TAG given by --method",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    suite = load_suite(args.suite)
    env_id = resolve_env_id(args.env)
    entry = next(e for e in suite.envs if resolve_env_id(e.id) == env_id)
    # Validation episodes: the suite's protocol with other start states and noise streams.
    val_suite = replace(suite, eval=replace(suite.eval, seed=args.val_eval_seed))
    model = (
        Path(args.model)
        if args.model
        else cell_dir(suite, env_id, args.method, args.seed) / "model"
    )
    val = load_dataset(args.val_data)
    names = list(objective_names(env_id))
    out = Path("runs/sampler_grid") / env_dirname(env_id) / args.method / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    for tag, setting in GRID.items():
        if args.only and tag not in args.only:
            continue
        path = out / f"{tag}.json"
        if path.is_file():
            continue
        result = measure(model, setting, val, val_suite, entry, names)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(tag, json.dumps({k: result[k] for k in ("hypervolume", "steering")}), flush=True)
    rows = []
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        nse = r["next_state_error"]
        rows.append(
            [path.stem, f"{r['hypervolume']:.3g}", f"{r['steering']:.2f}"]
            + [f"{nse[k]:.3f}" for k in ("reference", *names)]
            + [f"{r['still']:.3f}"]
        )
    head = ["setting", "HV (val)", "steering", "NSE ref", *[f"NSE {n}" for n in names], "still"]
    print(aligned_table(head, rows))


if __name__ == "__main__":
    main()
