"""Do TORA-safe's chosen weights keep their cost on fresh episodes? Selection rules compared.

For each trained TORA-safe run of a safe suite (``OUT/<Task>/tora_model/seed<S>``, made by
``tora safe bench``), every rule (margin, cost_z) searches the weight of each threshold on
the *selection* episodes (one shared cache of evaluated weights, so the rules differ only in
how they read the evidence), and each chosen weight is then run on 20 *check* episodes,
whose seeds are disjoint from both the selection and the table's
(:func:`tora.safe.protocol.episode_seeds`). A rule transfers when its weights' check cost
stays under the threshold; it is useful when their check return is high. The table's
episodes are never run here, so a rule can be chosen on this evidence.

    OMP_NUM_THREADS=1 python benchmarks/safe_selection_check.py benchmarks/suites/safe.toml \
        --task BallRun --seed 0 --out runs/safe/selection_check.json

Rules default to the suite's (margin 0.1, no bound) and three with a bound on the mean cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from tora.io import atomic_write_json
from tora.policies.tora_planner import load_tora
from tora.safe.policies import per_row, tora_step
from tora.safe.protocol import episode_seeds
from tora.safe.rollout import run_episodes
from tora.safe.select import SelectConfig, WeightSearch
from tora.safe.suite import load_safe_suite, task_env, task_name
from tora.safe.tuning import selection_evaluate

CHECK_NOISE = 2 * 10**6
"""Offset of the check rows' noise seeds (the table uses the eval seed, selection 10**6)."""


def _rules(text: list[str]) -> list[tuple[float, float]]:
    rules = []
    for item in text:
        margin, _, z = item.partition(":")
        rules.append((float(margin), float(z or 0.0)))
    return rules


def check_run(
    model: Path,
    env_id: str,
    seed: int,
    select: SelectConfig,
    thresholds: list[float],
    rules: list[tuple[float, float]],
    check_episodes: int,
) -> list[dict[str, Any]]:
    agent = load_tora(model, "cpu", seed)
    inner = selection_evaluate(agent, env_id, seed, select.episodes, progress=False)
    cache: dict[float, tuple[float, float, float]] = {}

    def evaluate(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        todo = [w for w in weights if round(float(w[0]), 10) not in cache]
        if todo:
            r, c, se = inner(np.array(todo))
            for w, a, b, s in zip(todo, r, c, se, strict=True):
                cache[round(float(w[0]), 10)] = (float(a), float(b), float(s))
        out = np.array([cache[round(float(w[0]), 10)] for w in weights])
        return out[:, 0], out[:, 1], out[:, 2]

    rows = []
    for margin, z in rules:
        config = dataclasses.replace(select, seed=seed, margin=margin, cost_z=z)
        search = WeightSearch(evaluate, config)
        for kappa in thresholds:
            s = search.select(kappa)
            rows.append(
                {
                    "margin": margin,
                    "cost_z": z,
                    "threshold": kappa,
                    "w_r": s.weight[0],
                    "found": s.found,
                    "select_reward": s.chosen.reward,
                    "select_cost": s.chosen.cost,
                    "select_cost_se": s.chosen.cost_se,
                }
            )
    chosen = sorted({row["w_r"] for row in rows})
    seeds = episode_seeds("check", seed, check_episodes)
    weights = np.repeat(np.array([[w, 1.0 - w] for w in chosen]), len(seeds), axis=0)
    step = tora_step(agent, per_row(weights), len(weights), CHECK_NOISE + seed)
    episodes = run_episodes(step, env_id, seeds * len(chosen), False, "check")
    shape = (len(chosen), len(seeds))
    check = {
        w: (float(r), float(c))
        for w, r, c in zip(
            chosen,
            episodes.returns.reshape(shape).mean(1),
            episodes.costs.reshape(shape).mean(1),
            strict=True,
        )
    }
    for row in rows:
        row["check_reward"], row["check_cost"] = check[row["w_r"]]
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| rule (margin, z) | cells | check cost <= kappa | check cost / kappa (mean) | "
        "check - select cost (mean) | check return (mean) |",
        "|---|---|---|---|---|---|",
    ]
    rules = sorted({(r["margin"], r["cost_z"]) for r in rows})
    for margin, z in rules:
        mine = [r for r in rows if (r["margin"], r["cost_z"]) == (margin, z)]
        ok = sum(r["check_cost"] <= r["threshold"] for r in mine)
        ratio = np.mean([r["check_cost"] / r["threshold"] for r in mine])
        gap = np.mean([r["check_cost"] - r["select_cost"] for r in mine])
        ret = np.mean([r["check_reward"] for r in mine])
        lines.append(
            f"| {margin:g}, {z:g} | {len(mine)} | {ok} | {ratio:.2f} | {gap:+.2f} | {ret:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", help="Safe suite file (its out directory holds the runs).")
    parser.add_argument("--task", action="append", default=None, help="Task (repeatable).")
    parser.add_argument("--seed", action="append", type=int, default=None, help="Table seed.")
    parser.add_argument(
        "--rule",
        action="append",
        default=None,
        help="MARGIN:Z (repeatable; default 0.1:0 0.1:1 0:1.645 0.1:1.645).",
    )
    parser.add_argument("--check-episodes", type=int, default=20)
    parser.add_argument("--runs", default=None, help="Suite output directory (default: its).")
    parser.add_argument("--out", required=True, help="JSON file of every (cell, rule) row.")
    args = parser.parse_args()
    suite = load_safe_suite(args.suite)
    runs = Path(args.runs) if args.runs else suite.out_dir
    rules = _rules(args.rule or ["0.1:0", "0.1:1", "0:1.645", "0.1:1.645"])
    out = Path(args.out)
    done: list[dict[str, Any]] = json.loads(out.read_text()) if out.is_file() else []
    tasks = [task_env(t) for t in args.task] if args.task else [t.id for t in suite.tasks]
    for env_id in tasks:
        for seed in args.seed or list(suite.eval.seeds):
            if any(r["task"] == task_name(env_id) and r["seed"] == seed for r in done):
                continue  # resumable: one (task, seed) at a time
            model = runs / task_name(env_id) / "tora_model" / f"seed{seed}"
            rows = check_run(
                model,
                env_id,
                seed,
                suite.select,
                [float(k) for k in suite.eval.thresholds],
                rules,
                args.check_episodes,
            )
            done += [{"task": task_name(env_id), "seed": seed, **r} for r in rows]
            atomic_write_json(out, done)
            print(f"{task_name(env_id)} seed {seed}: {len(rows)} rows", flush=True)
    print(summary(done))


if __name__ == "__main__":
    main()
