"""The results of a suite as people compare them: one JSON, one Markdown table, one plot per env.

Everything is rebuilt from the cells on disk (:mod:`tora.bench.suite`), so the table of a
partly finished suite shows what is done and says how many seeds each number averages. The
Markdown is rendered from the JSON's rows, never computed separately, so the two cannot
disagree.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tora.bench.cells import TRAIN_FILE
from tora.bench.config import (
    BEHAVIOUR_FILE,
    SuiteConfig,
    cell_dir,
    env_dirname,
    suite_method,
)
from tora.bench.results import (
    FinishedCell,
    finished_by_method,
    finished_cells,
    mean_sd,
    write_table,
)
from tora.envs import resolve_env_id
from tora.evaluate.plots import plot_pareto_front
from tora.io import read_json_object

METRICS = ("hypervolume", "sparsity", "expected_utility", "steering_correlation")
BEHAVIOUR_LABEL = "Behaviour (dataset episodes)"
REUSED_MARK = "†"
"""Marks the train minutes of a row whose cells reused stages of a sibling cell."""


def _values(done: list[FinishedCell], metric: str) -> list[float]:
    # Cells evaluated before a metric existed lack it: average over those that have it.
    summaries = [c.result["summary"] for c in done]
    return [s[metric] for s in summaries if s.get(metric) is not None]


def _reused_stages(done: list[FinishedCell]) -> list[str]:
    """The stages any of ``done`` took from a sibling cell instead of training them."""
    reused: set[str] = set()
    for c in done:
        mark = c.dir / TRAIN_FILE
        if mark.is_file():
            reused.update(read_json_object(mark).get("reused", {}))
    return sorted(reused)


def collect_rows(suite: SuiteConfig) -> list[dict[str, Any]]:
    """One row per (env, behaviour or method) with the mean and spread over finished seeds."""
    rows: list[dict[str, Any]] = []
    for entry in suite.envs:
        env_id = resolve_env_id(entry.id)
        behaviour_path = suite.out_dir / env_dirname(env_id) / BEHAVIOUR_FILE
        if behaviour_path.is_file():
            b = read_json_object(behaviour_path)
            rows.append(
                {
                    "env_id": env_id,
                    "method": "behaviour",
                    "label": BEHAVIOUR_LABEL,
                    "seeds": [],
                    "seeds_planned": 0,
                    "hypervolume": {"mean": b["hypervolume"], "std": None},
                    "sparsity": {"mean": b["sparsity"], "std": None},
                    "expected_utility": {"mean": None, "std": None},
                    "steering_correlation": {"mean": b.get("steering_correlation"), "std": None},
                    "train_min": None,
                    "eval_s": None,
                }
            )
        cells = partial(cell_dir, suite, env_id)
        for name, done in finished_by_method(suite.methods, entry.seeds, cells).items():
            method = suite_method(suite, name)
            results = [c.result for c in done]
            rows.append(
                {
                    "env_id": env_id,
                    "method": name,
                    "label": method.label,
                    "sees_preferences": method.sees_preferences,
                    "seeds": [c.seed for c in done],
                    "seeds_planned": len(entry.seeds),
                    **{m: mean_sd(_values(done, m)) for m in METRICS},
                    "per_seed_hypervolume": [r["summary"]["hypervolume"] for r in results],
                    "train_min": float(np.mean([r["train_s"] for r in results])) / 60,
                    "reused_stages": _reused_stages(done),
                    "eval_s": float(np.mean([r["eval_s"] for r in results])),
                }
            )
    return rows


def _num(x: float | None) -> str:
    """Compact numbers: 3 significant digits, or whole numbers below 10^4 (5.41e6, 6262,
    31.2, 0.0123)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if 100 <= abs(x) < 1e4:
        return f"{x:.0f}"
    if x == 0 or 1e-2 <= abs(x) < 100:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _cell(stat: dict[str, float | None]) -> str:
    if stat["mean"] is None:
        return "-"
    text = _num(stat["mean"])
    return f"{text} ± {_num(stat['std'])}" if stat["std"] is not None else text


def format_markdown(suite: SuiteConfig, rows: list[dict[str, Any]]) -> str:
    """The Markdown results table of ``rows`` (from :func:`collect_rows`)."""
    ev = suite.eval
    lines = [
        f"# {suite.name}: results ({suite.protocol} protocol)",
        "",
        f"Protocol: **{suite.protocol}**; {ev.preferences} preferences for two objectives "
        f"({ev.preferences_3obj} for three) x {ev.episodes} episode(s); datasets of "
        f"{suite.data.episodes} {suite.data.quality}-{suite.data.prefs} episodes (data seed "
        f"{suite.data.seed}). Hypervolume with the reference point of each env (0 unless "
        "stated). Steering: Spearman correlation between the weight on an objective and the "
        "return on it (1: the preference steers; 0: it does not; on the behaviour row, the "
        "data's preferences against its episodes' returns). Mean ± sample standard "
        "deviation over the seeds listed; train = wall minutes of training per seed.",
        "",
        "| env | method | sees prefs | hypervolume | sparsity | expected utility | steering | "
        "seeds | train min | eval s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    best: dict[str, float] = {}
    for row in rows:
        hv = row["hypervolume"]["mean"]
        if row["method"] != "behaviour" and hv is not None:
            best[row["env_id"]] = max(best.get(row["env_id"], -math.inf), hv)
    for row in rows:
        is_best = row["method"] != "behaviour" and row["hypervolume"]["mean"] == best.get(
            row["env_id"]
        )
        hv = _cell(row["hypervolume"])
        seeds = (
            "-" if row["method"] == "behaviour" else f"{len(row['seeds'])}/{row['seeds_planned']}"
        )
        prefs = (
            "-" if row["method"] == "behaviour" else ("yes" if row["sees_preferences"] else "no")
        )
        lines.append(
            f"| {row['env_id']} | {row['label']} | {prefs} | {f'**{hv}**' if is_best else hv} | "
            f"{_cell(row['sparsity'])} | {_cell(row['expected_utility'])} | "
            f"{_cell(row['steering_correlation'])} | {seeds} | "
            f"{_num(row['train_min'])}{REUSED_MARK if row.get('reused_stages') else ''} | "
            f"{_num(row['eval_s'])} |"
        )
    lines += ["", "Bold: the best hypervolume among the methods of an env."]
    if any(row.get("reused_stages") for row in rows):
        lines.append(
            f"{REUSED_MARK}: these cells trained only what differs from another method's cell "
            "of the same seed and reused its finished stages (same settings and data, so the "
            "same weights); their train minutes count only what they trained."
        )
    return "\n".join(lines) + "\n"


def plot_env(suite: SuiteConfig, env_id: str, path: Path) -> Path | None:
    """Every method's sweep (its first finished seed) over the dataset's episodes."""
    behaviour_path = suite.out_dir / env_dirname(env_id) / BEHAVIOUR_FILE
    if not behaviour_path.is_file():
        return None
    b = read_json_object(behaviour_path)
    k = len(b["objectives"])
    if k not in (2, 3):
        return None
    series: dict[str, Any] = {BEHAVIOUR_LABEL: np.asarray(b["episode_returns"])}
    entry = next(e for e in suite.envs if resolve_env_id(e.id) == env_id)
    for name in suite.methods:
        first = next(finished_cells(partial(cell_dir, suite, env_id, name), entry.seeds), None)
        if first is not None:
            means = first.result["summary"]["mean_returns"]
            series[f"{suite_method(suite, name).label} (seed {first.seed})"] = np.asarray(means)
    return plot_pareto_front(
        series,
        path,
        b["objectives"],
        title=f"{env_id} ({suite.protocol} protocol)",
        ref_point=b["ref_point"],
    )


def write_results(suite: SuiteConfig) -> dict[str, Any]:
    """Write results.json, results.md and one front plot per env into the suite directory."""
    rows = collect_rows(suite)
    out = suite.out_dir
    plots = {}
    for entry in suite.envs:
        env_id = resolve_env_id(entry.id)
        png = plot_env(suite, env_id, out / f"front_{env_dirname(env_id)}.png")
        if png is not None:
            plots[env_id] = str(png)
    results = {"suite": suite.name, "protocol": suite.protocol, "rows": rows, "plots": plots}
    write_table(out, results, format_markdown(suite, rows))
    return results
