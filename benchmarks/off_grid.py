"""Do TORA's weights steer between the evaluation grid's preferences? (issue 17)

Evaluates a suite cell's agent on the 50 midpoints of the reduced protocol's 51-point grid,
w = ((k + 0.5) / 50, 1 - (k + 0.5) / 50), with another evaluation seed than the table's, and
reports hypervolume and steering next to the same agent on the grid itself (same seed).

    python benchmarks/off_grid.py --env MO-HalfCheetah-v2 --method tora --seed 0
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from tora.bench.config import cell_dir, load_suite, method_config, suite_method
from tora.bench.suite import evaluate_sweep
from tora.envs import resolve_env_id
from tora.policies.tora_planner import load_tora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="benchmarks/suites/reduced.toml")
    parser.add_argument("--env", default="MO-HalfCheetah-v2")
    parser.add_argument("--method", default="tora")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=30000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    suite = load_suite(args.suite)
    env_id = resolve_env_id(args.env)
    entry = next(e for e in suite.envs if resolve_env_id(e.id) == env_id)
    method_config(suite, entry, suite_method(suite, args.method), args.seed)  # checks the name
    model = cell_dir(suite, env_id, args.method, args.seed) / "model"
    run = replace(suite, eval=replace(suite.eval, seed=args.eval_seed))
    mid = (np.arange(50) + 0.5) / 50
    grids = {"grid": None, "midpoints": np.stack([mid, 1 - mid], axis=1)}
    out = {}
    for name, weights in grids.items():
        agent = load_tora(model, "cpu", args.eval_seed)
        _, summary, _ = evaluate_sweep(run, entry, agent, progress=False, weights=weights)
        out[name] = {
            "hypervolume": summary["hypervolume"],
            "steering": summary["steering_correlation"],
        }
    print(json.dumps({"env": env_id, "method": args.method, "seed": args.seed, **out}))


if __name__ == "__main__":
    main()
