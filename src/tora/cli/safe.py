"""``tora safe select | bench | table``: the safe-RL commands (thin layers over tora.safe)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tora.cli.common import (
    add_command,
    add_group,
    add_suite_run_arguments,
    add_table_command,
    load_suite_file,
    run_and_show,
    suite_executor,
)
from tora.cli.config_args import add_dataclass_arguments, config_to_dict, dataclass_from_args
from tora.configs import config_from_dict
from tora.diffusion.samplers import SamplerConfig
from tora.errors import ToraError
from tora.io import atomic_write_json, read_json_object
from tora.planning.agent import Agent
from tora.policies.tora_planner import METHOD_FILE, ToraConfig
from tora.safe.bench import run_safe_suite
from tora.safe.protocol import episode_seeds
from tora.safe.select import SelectConfig, WeightSearch, format_selection
from tora.safe.suite import load_safe_suite, task_env, with_data_files
from tora.safe.table import write_safe_table
from tora.safe.tuning import choose_reserves, selection_evaluate

ADAPTIVE_RESERVES = (0.2, 0.4, 0.6, 0.8)
"""Reserves ``tora safe select --adaptive`` chooses among."""


@dataclass
class SafeSelectOptions:
    """Inputs and outputs of ``tora safe select``."""

    run: str = ""
    """TORA run directory with a "reward" and a "cost" objective model (from `tora pretrain`
    + `tora finetune` on a DSRL file, or a `tora safe bench` model directory)."""
    env: str = "SafetyBallRun-v0"
    """Safe-RL task to evaluate in (any id of the task, or tora/SafeDash-v0)."""
    threshold: tuple[float, ...] = (20.0,)
    """Cost threshold(s) kappa (> 0): one weight is chosen for each."""
    sampler_steps: int = 0
    """DDIM steps per plan (0: the run's saved sampler, else 20)."""
    adaptive: bool = False
    """Also choose, for each threshold, the reserve of the adaptive controller that starts at
    the chosen weight and moves to (0, 1) as the budget is spent (among 0.2, 0.4, 0.6 and 0.8,
    on the same selection episodes), as `tora safe bench` does."""
    out: str = ""
    """Evidence JSON (default: RUN/safe_select.json)."""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``tora safe select | bench | table`` on the ``tora`` parser's subcommands."""

    safe_sub = add_group(sub, "safe", "Safe offline RL: weights for a cost budget, benchmark.")
    select = add_command(
        safe_sub,
        "select",
        "Choose TORA's weights (w_r, w_c) for cost thresholds without retraining: evaluate a\n"
        "coarse grid of w_r, refine between the best safe weight and the next more\n"
        "reward-heavy one, and return the highest-reward weight whose mean episode cost stays\n"
        "below (1 - margin) * threshold. Episodes use the selection seed range, disjoint from\n"
        "the seeds `tora safe bench` reports. Prints the evidence table; writes it as JSON.",
        safe_select,
    )
    add_dataclass_arguments(select, SafeSelectOptions)
    add_dataclass_arguments(select, SelectConfig, group_title="search")
    select.add_argument("--no-progress", action="store_true", help="Hide progress bars.")

    bench = add_command(
        safe_sub,
        "bench",
        "Train and evaluate TORA-safe, its adaptive-weight option, TORA-safe with a cost\n"
        "critic, BC-all, BC-safe and the (return, cost)-conditioned diffusion planner on\n"
        "every task of a suite (TOML), 20 episodes x 3 seeds at thresholds 10/20/40 by\n"
        "default; write results.md and results.json (normalized reward / cost, safe entries\n"
        "in bold). Resumable per cell; tasks that cannot run are listed with the reason.\n"
        "Suite: benchmarks/suites/safe.toml. With --ray the cells run side by side as Ray\n"
        "tasks.",
        safe_bench,
    )
    bench.add_argument("suite", help="Suite file (.toml or .json).")
    bench.add_argument(
        "--task", action="append", default=None, help="Run only this task (repeatable)."
    )
    bench.add_argument(
        "--method",
        action="append",
        default=None,
        help="Run only this method (repeatable): tora, tora_adaptive, bc, bc_safe, cdt, "
        "tora_critic.",
    )
    bench.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="TASK=PATH",
        help="Train TASK on this DSRL-format HDF5 file instead of the suite's (repeatable; "
        "e.g. CarCircle=OfflineCarCircle.hdf5). Cells made from other data are refused.",
    )
    add_suite_run_arguments(bench, "Run only this table seed of the suite's (repeatable).")
    add_table_command(
        safe_sub,
        "Rewrite and print a safe suite's table from the cells on disk (no training).",
        safe_table,
    )


def _load_agent(run: Path, sampler_steps: int) -> Any:

    sampler = SamplerConfig(steps=20)
    if (run / METHOD_FILE).is_file():
        saved = read_json_object(run / METHOD_FILE)["config"]
        sampler = config_from_dict(ToraConfig, saved).sampler
    if sampler_steps > 0:
        sampler = SamplerConfig(steps=sampler_steps)
    return Agent.load(run, objectives=["reward", "cost"], device="cpu", sampler=sampler)


def safe_select(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(SafeSelectOptions, args)
    config = dataclass_from_args(SelectConfig, args)
    config.check()
    if not opts.run:
        raise ToraError("--run is required")
    if not opts.threshold:
        raise ToraError("give at least one --threshold")
    env_id = task_env(opts.env)
    run = Path(opts.run)
    agent = _load_agent(run, opts.sampler_steps)
    seeds = episode_seeds("select", config.seed, config.episodes)
    progress = not args.no_progress
    evaluate = selection_evaluate(agent, env_id, config.seed, config.episodes, progress)
    search = WeightSearch(evaluate, config)
    evidence: dict[str, Any] = {
        "run": str(run),
        "env_id": env_id,
        "select": config_to_dict(config),
        "episode_seeds": [seeds[0], seeds[-1]],
        "thresholds": {},
    }
    chosen_weights: dict[float, tuple[float, float]] = {}
    for kappa in opts.threshold:
        selection = search.select(kappa)
        chosen_weights[float(kappa)] = selection.weight
        evidence["thresholds"][str(float(kappa))] = selection.to_dict()
        state = "safe" if selection.found else "NO SAFE WEIGHT FOUND; least costly"
        bound = f"mean cost + {config.cost_z:g} se" if config.cost_z else "mean cost"
        print(f"\nthreshold {kappa:g} (safe: {bound} < {selection.limit:g}):")
        print(format_selection(selection))
        print(f"chosen ({state}): w = ({selection.weight[0]:.4f}, {selection.weight[1]:.4f})")
    if opts.adaptive:
        starts = {float(k): tuple(w) for k, w in chosen_weights.items()}
        chosen = choose_reserves(
            agent,
            env_id,
            config.seed,
            config.episodes,
            starts,
            ADAPTIVE_RESERVES,
            margin=config.margin,
            progress=progress,
            cost_z=config.cost_z,
        )
        for kappa, entry in chosen.items():
            evidence["thresholds"][str(kappa)]["adaptive"] = entry
            best = next(c for c in entry["candidates"] if c["reserve"] == entry["reserve"])
            print(
                f"adaptive, threshold {kappa:g}: reserve {entry['reserve']:g} (return "
                f"{best['reward']:.1f}, cost {best['cost']:.2f}; safe: {entry['found']})"
            )
    out = Path(opts.out) if opts.out else run / "safe_select.json"
    atomic_write_json(out, evidence)
    print(f"\nevidence: {out}")
    return 0


def _suite(args: argparse.Namespace) -> Any:

    return load_suite_file(load_safe_suite, args)


def safe_bench(args: argparse.Namespace) -> int:

    suite = with_data_files(_suite(args), args.data)
    executor = suite_executor(args)
    print(f"safe suite {suite.name} -> {suite.out_dir}")

    def show(results: dict[str, Any]) -> None:
        print(results["markdown"])
        print("results: " + ", ".join(results["files"]))

    return run_and_show(
        lambda: run_safe_suite(
            suite,
            progress=not args.no_progress,
            only_tasks=args.task,
            only_methods=args.method,
            only_seeds=args.seed,
            log=lambda line: print(line, flush=True),
            executor=executor,
        ),
        show,
    )


def safe_table(args: argparse.Namespace) -> int:
    results = write_safe_table(_suite(args))
    print(results["markdown"])
    return 0
