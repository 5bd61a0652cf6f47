"""The safe-RL results table, rebuilt from the cells on disk: Markdown and JSON.

Scores are DSRL's (:func:`tora.evaluate.safe.score_thresholds`): per task, method and
threshold the normalized reward and cost, as mean and standard deviation over seeds of each
seed's mean over its episodes, and the same for the average over thresholds. A cost below 1
is safe and printed in bold, as in the safe-RL seed's Table 2. Methods with fewer finished
seeds than the suite asks for are scored on the seeds they have, and the table says so.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tora.bench.results import TABLE_JSON, TABLE_MD, finished_by_method, write_table
from tora.evaluate.safe import SafeSummary, score_thresholds
from tora.safe.suite import (
    METHODS,
    SafeSuiteConfig,
    cell_dir,
    skip_reason,
    task_env,
    task_name,
)
from tora.safe.toy import REFERENCE as TOY_REFERENCE
from tora.safe.toy import SAFE_DASH_ID

__all__ = ["TABLE_JSON", "TABLE_MD", "cell", "collect_results", "format_safe_table"]


def cell(mean: float, std: float, bold: bool = False) -> str:
    """One table entry, ``0.35 ± 0.02`` (bold when ``bold``)."""
    text = f"{mean:.2f} ± {std:.2f}"
    return f"**{text}**" if bold else text


def _summary(env_id: str, evals: list[dict[str, Any]], thresholds: list[float]) -> SafeSummary:
    results = {}
    for kappa in thresholds:
        key = str(float(kappa))
        returns = np.array([e["thresholds"][key]["returns"] for e in evals])
        costs = np.array([e["thresholds"][key]["costs"] for e in evals])
        results[float(kappa)] = (returns, costs)
    reference = TOY_REFERENCE if env_id == SAFE_DASH_ID else None
    return score_thresholds(task_name(env_id), results, reference)


def _extras(evals: list[dict[str, Any]], thresholds: list[float]) -> dict[str, Any]:
    """Per seed: the chosen weights / reserves and the timings."""
    out: dict[str, Any] = {"train_s": [e.get("train_s") for e in evals]}
    out["wall_s"] = [e.get("wall_s") for e in evals]
    for field in ("weight", "reserve", "reward_goal", "train_episodes"):
        values = {
            str(k): [e["thresholds"][str(float(k))].get(field) for e in evals] for k in thresholds
        }
        if any(v is not None for vs in values.values() for v in vs):
            out[field] = values
    return out


def collect_results(suite: SafeSuiteConfig) -> dict[str, Any]:
    """The table's JSON object from every finished cell of ``suite``."""
    thresholds = [float(k) for k in suite.eval.thresholds]
    tasks: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    pending: list[str] = []
    for entry in suite.tasks:
        env_id = task_env(entry.id)
        name = task_name(env_id)
        reason = skip_reason(entry)
        if reason is not None:
            skipped[name] = reason
            continue
        methods: dict[str, Any] = {}
        cells = partial(cell_dir, suite, env_id)
        for method, done in finished_by_method(suite.methods, suite.eval.seeds, cells).items():
            evals = [c.result for c in done]
            methods[method] = {
                "label": METHODS[method],
                "seeds": [c.seed for c in done],
                "summary": _summary(env_id, evals, thresholds).to_dict(),
                **_extras(evals, thresholds),
            }
        if methods:
            tasks[name] = {"env_id": env_id, "methods": methods}
        else:
            pending.append(name)
    return {
        "name": suite.name,
        "protocol": {
            "seeds": list(suite.eval.seeds),
            "episodes": suite.eval.episodes,
            "thresholds": thresholds,
            "select_episodes": suite.select.episodes,
            "select_margin": suite.select.margin,
            "select_cost_z": suite.select.cost_z,
        },
        "tasks": tasks,
        "skipped": skipped,
        "pending": pending,
    }


def _score_cells(score: dict[str, Any]) -> tuple[str, str]:
    reward = cell(score["reward_mean"], score["reward_std"])
    cost = cell(score["cost_mean"], score["cost_std"], bold=score["cost_mean"] < 1.0)
    return reward, cost


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def format_safe_table(results: dict[str, Any]) -> str:
    """The Markdown table of :func:`collect_results`' object."""
    proto = results["protocol"]
    kappas = ", ".join(f"{k:g}" for k in proto["thresholds"])
    lines = [
        f"# Safe offline RL: {results['name']}",
        "",
        f"Normalized reward (higher is better) / normalized cost (below 1 is safe, **bold**), "
        f"mean ± std over seeds ({len(proto['seeds'])} seeds x {proto['episodes']} episodes), "
        f"cost thresholds {kappas} and their average. Weights and reserves are chosen on "
        f"{proto['select_episodes']} selection episodes per candidate whose seeds are disjoint "
        f"from the table's: safe when the mean selection cost"
        + (f" plus {proto['select_cost_z']:g} standard errors" if proto["select_cost_z"] else "")
        + f" is below (1 - {proto['select_margin']:g}) x the threshold.",
        "",
    ]
    methods = [m for m in METHODS if any(m in t["methods"] for t in results["tasks"].values())]
    if results["tasks"] and methods:
        lines += ["## Average over thresholds", ""]
        lines.append(_row(["task", "metric", *(METHODS[m] for m in methods)]))
        lines.append(_row(["---"] * (2 + len(methods))))
        for name, task in results["tasks"].items():
            rewards, costs = [], []
            for m in methods:
                entry = task["methods"].get(m)
                r, c = _score_cells(entry["summary"]["average"]) if entry else ("-", "-")
                rewards.append(r)
                costs.append(c)
            lines.append(_row([name, "reward ↑", *rewards]))
            lines.append(_row(["", "cost ↓", *costs]))
        lines.append("")
    for name, task in results["tasks"].items():
        lines += [f"## {name}", ""]
        head = ["method", "seeds"]
        for k in proto["thresholds"]:
            head += [f"κ={k:g} reward", f"κ={k:g} cost"]
        head += ["avg reward", "avg cost", "chosen (κ ascending; seeds split by /)"]
        lines.append(_row(head))
        lines.append(_row(["---"] * len(head)))
        for m in methods:
            entry = task["methods"].get(m)
            if entry is None:
                continue
            cells = [entry["label"], str(len(entry["seeds"]))]
            for score in entry["summary"]["per_threshold"]:
                cells += list(_score_cells(score))
            cells += list(_score_cells(entry["summary"]["average"]))
            cells.append(_chosen(entry))
            lines.append(_row(cells))
        lines.append("")
    if results.get("pending"):
        lines += ["## Not run yet", ""]
        lines += [f"- {name}: no finished cells" for name in results["pending"]]
        lines.append("")
    if results["skipped"]:
        lines += ["## Skipped tasks", ""]
        lines += [f"- {name}: {why}" for name, why in results["skipped"].items()]
        lines.append("")
    return "\n".join(lines)


def _chosen(entry: dict[str, Any]) -> str:
    """The weights (w_r per seed) or reserves each threshold was evaluated with."""
    if "weight" in entry:
        parts = [
            "/".join(f"{w[0]:.2f}" for w in ws if w is not None) for ws in entry["weight"].values()
        ]
        return "w_r " + "; ".join(parts)
    if "reserve" in entry:
        parts = ["/".join(f"{r:g}" for r in rs) for rs in entry["reserve"].values()]
        return "reserve " + "; ".join(parts)
    return ""


def write_safe_table(suite: SafeSuiteConfig) -> dict[str, Any]:
    """Write ``results.md`` and ``results.json`` into the suite's directory; returns the JSON
    object (with the paths under ``"files"``)."""
    results = collect_results(suite)
    markdown = format_safe_table(results)
    files = write_table(suite.out_dir, results, markdown)
    return {**results, "markdown": markdown, "files": [str(path) for path in files]}
