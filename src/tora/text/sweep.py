"""Evaluating text policies the MACHIAVELLI way: one weight vector, or a sweep over weights.

Each evaluated agent plays ``episodes`` seeded playthroughs of one game (episode ``i`` resets
with seed ``seed + i`` and draws its choices from the generator ``(seed, i)``); the metrics of
:mod:`tora.evaluate.text` score them, normalized by a random agent on the same game (random =
100). A sweep evaluates the mixture at every weight vector of a uniform grid
(:func:`tora.preferences.simplex_grid`: 11 points for two objectives, from all-points to
all-morality), next to the random agent, the reference agents that make the data, and any
single policies given as baselines (the scalarized-preference policy), then writes the rows
as JSON and plots points against violations across weights. The text-game seed's claim is
that raising the morality weight lowers violations while the score degrades gracefully.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tora.envs.text.env import TextGameEnv, make_text_env
from tora.errors import ToraError
from tora.evaluate.plots import color_cycle, new_figure, save_figure
from tora.evaluate.text import (
    MachiavelliScores,
    Playthrough,
    Policy,
    RandomBaseline,
    evaluate_playthroughs,
    normalize_counts,
    play,
    random_baseline,
)
from tora.io import atomic_write_json
from tora.preferences import simplex_grid
from tora.tables import aligned_table
from tora.text.agents import AnnotationAwareAgent, KeywordPointsAgent
from tora.text.data import HELD_OUT_GAME
from tora.text.mixture import MixtureAgent, PolicyMixture


@dataclass
class TextEvalConfig:
    """What ``tora text evaluate`` and ``tora text sweep`` play."""

    runs: list[str] = field(default_factory=list)
    """Policy directories from `tora text train`, one per objective, in weight order."""
    game: str = HELD_OUT_GAME
    """Game to play: a shipped id or a game file (default: the held-out evaluation game)."""
    episodes: int = 100
    """Seeded playthroughs per weight vector."""
    seed: int = 0
    """Seed of the playthroughs."""
    greedy: bool = False
    """Take the most likely choice instead of sampling the mixed distribution."""
    baseline_episodes: int = 1000
    """Random-agent playthroughs whose mean counts are the 100 of the normalized scores."""


@dataclass
class TextEvaluateOptions:
    """The weights of ``tora text evaluate``."""

    weights: list[float] = field(default_factory=list)
    """One weight per policy of --runs, non-negative, summing to 1 (default: equal)."""
    out: str = ""
    """Also write the rows as JSON to this file (optional)."""


@dataclass
class SweepConfig(TextEvalConfig):
    """What ``tora text sweep`` evaluates and where it writes."""

    out: str = "runs/text/sweep"
    """Directory for sweep.json and tradeoff.png."""
    points: int = 11
    """Weight vectors on the grid (for two policies: w_first = 1, 0.9, ..., 0)."""
    baselines: list[str] = field(default_factory=list)
    """Single-policy directories to compare with the mixture (e.g. the scalarized one)."""
    references: bool = True
    """Also evaluate the reference agents that make the data."""


@dataclass(frozen=True)
class EvalRow:
    """One evaluated agent."""

    label: str
    kind: str
    """mixture, baseline, reference or random."""
    weights: tuple[float, ...] | None
    scores: MachiavelliScores

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "weights": list(self.weights) if self.weights is not None else None,
            **self.scores.to_dict(),
        }


def playthroughs(
    env: TextGameEnv, make_agent: Callable[[int], Policy], episodes: int, seed: int
) -> list[Playthrough]:
    """``episodes`` playthroughs: episode i resets with ``seed + i``, agent ``make_agent(i)``."""
    if episodes < 1:
        raise ToraError(f"episodes must be >= 1, got {episodes}")
    return [play(env, make_agent(i), seed=seed + i) for i in range(episodes)]


def random_row(baseline: RandomBaseline) -> EvalRow:
    """The random agent's row (100 everywhere it does harm at all, by definition)."""
    scores = MachiavelliScores(
        episodes=baseline.episodes,
        score=baseline.mean_score,
        counts=dict(baseline.mean_counts),
        normalized=normalize_counts(baseline.mean_counts, baseline),
    )
    return EvalRow("random agent", "random", None, scores)


def mixture_row(
    mixture: PolicyMixture,
    env: TextGameEnv,
    weights: Sequence[float],
    baseline: RandomBaseline,
    config: TextEvalConfig,
    *,
    label: str | None = None,
    kind: str = "mixture",
) -> EvalRow:
    """The mixture at ``weights``, scored over the configured playthroughs."""
    w = mixture.check_weights(weights)
    runs = playthroughs(
        env,
        lambda i: MixtureAgent(mixture, w, greedy=config.greedy, seed=(config.seed, i)),
        config.episodes,
        config.seed,
    )
    text = label or " ".join(f"{n}={v:.2f}" for n, v in zip(mixture.names, w, strict=True))
    return EvalRow(text, kind, tuple(float(v) for v in w), evaluate_playthroughs(runs, baseline))


def reference_rows(
    env: TextGameEnv, baseline: RandomBaseline, config: TextEvalConfig
) -> list[EvalRow]:
    """The reference agents of the data: the keyword points-seeker, and the annotation-aware
    agent at harm weight 0 (points only) and 2 (harm-averse), with their collection noise."""
    game = env.game
    agents: list[tuple[str, Callable[[int], Policy]]] = [
        ("keyword points agent", lambda i: KeywordPointsAgent((config.seed, i))),
        ("annotated agent, harm 0", lambda i: AnnotationAwareAgent(game, 0.0, (config.seed, i))),
        ("annotated agent, harm 2", lambda i: AnnotationAwareAgent(game, 2.0, (config.seed, i))),
    ]
    return [
        EvalRow(
            label,
            "reference",
            None,
            evaluate_playthroughs(playthroughs(env, make, config.episodes, config.seed), baseline),
        )
        for label, make in agents
    ]


def setup(config: TextEvalConfig) -> tuple[PolicyMixture, TextGameEnv]:
    """The mixture of ``config.runs`` and the game's env."""
    if not config.runs:
        raise ToraError("give the policy directories to evaluate: --runs DIR [DIR ...]")
    return PolicyMixture.load(config.runs), make_text_env(config.game)


def evaluate_weights(config: TextEvalConfig, weights: Sequence[float]) -> list[EvalRow]:
    """The mixture at ``weights`` and the random agent, on ``config.game``."""
    mixture, env = setup(config)
    mixture.check_weights(weights)  # before the random baseline's playthroughs
    baseline = random_baseline(env, config.baseline_episodes, config.seed)
    return [mixture_row(mixture, env, weights, baseline, config), random_row(baseline)]


def run_sweep(config: SweepConfig) -> tuple[list[EvalRow], list[str]]:
    """Mixture rows over the weight grid, then baselines, references and random; writes
    ``out/sweep.json`` and ``out/tradeoff.png``. Returns the rows and the policy names."""

    mixture, env = setup(config)
    grid = simplex_grid(len(mixture.policies), config.points)
    baseline = random_baseline(env, config.baseline_episodes, config.seed)
    rows = [mixture_row(mixture, env, w, baseline, config) for w in grid]
    for run in config.baselines:
        single = PolicyMixture.load([run])
        rows.append(
            mixture_row(
                single, env, [1.0], baseline, config, label=single.names[0], kind="baseline"
            )
        )
    if config.references:
        rows.extend(reference_rows(env, baseline, config))
    rows.append(random_row(baseline))
    out = Path(config.out)
    atomic_write_json(
        out / "sweep.json",
        {
            "game": env.game.id,
            "policies": mixture.names,
            "runs": [str(r) for r in config.runs],
            "episodes": config.episodes,
            "greedy": config.greedy,
            "baseline": baseline.to_dict(),
            "rows": [_finite(row.to_dict()) for row in rows],
        },
    )
    plot_tradeoff(
        rows, out / "tradeoff.png", mixture.names, title=f"{env.game.title}: weight sweep"
    )
    return rows, mixture.names


def _finite(value: Any) -> Any:
    """NaN as None, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def format_rows(rows: Sequence[EvalRow]) -> str:
    """Aligned table: agent, score %, violations (per episode and % of random), power and
    disutility (% of random)."""
    head = ["agent", "score %", "violations", "viol. %rand", "power %rand", "disutil. %rand"]
    body = [
        [
            row.label,
            _fmt(row.scores.score),
            _fmt(row.scores.counts["violations.total"], 2),
            _fmt(row.scores.normalized["violations.total"]),
            _fmt(row.scores.normalized["power.total"]),
            _fmt(row.scores.normalized["disutility"]),
        ]
        for row in rows
    ]
    return aligned_table(head, body, left=1)


def plot_tradeoff(
    rows: Sequence[EvalRow], path: str | os.PathLike[str], names: Sequence[str], title: str = ""
) -> Path:
    """Game score against violations per episode: the mixture's rows as a line in weight
    order, each point labelled with the first policy's weight; other agents as markers."""

    fig = new_figure((6.4, 4.8))
    ax = fig.add_subplot()
    mix = [r for r in rows if r.kind == "mixture"]
    if mix:
        x = [r.scores.counts["violations.total"] for r in mix]
        y = [r.scores.score for r in mix]
        ax.plot(x, y, marker="o", lw=1.5, color="C0", label=f"mixture ({' / '.join(names)})")
        for r, xi, yi in zip(mix, x, y, strict=True):
            if r.weights is not None:
                ax.annotate(
                    f"{r.weights[0]:.1f}",
                    (xi, yi),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    others = [r for r in rows if r.kind != "mixture"]
    markers = ["s", "^", "v", "D", "P", "X", "*"]
    for k, (r, style) in enumerate(zip(others, color_cycle(len(others) + 1)[1:], strict=False)):
        ax.scatter(
            r.scores.counts["violations.total"],
            r.scores.score,
            marker=markers[k % len(markers)],
            s=40,
            color=style["color"],
            label=r.label,
        )
    ax.set_xlabel("violations per episode (fewer is better)")
    ax.set_ylabel("game score, % of max points")
    if names:
        ax.set_title(title + (f"\nlabels: weight on {names[0]}" if mix else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


__all__ = [
    "EvalRow",
    "SweepConfig",
    "TextEvalConfig",
    "TextEvaluateOptions",
    "evaluate_weights",
    "format_rows",
    "mixture_row",
    "playthroughs",
    "plot_tradeoff",
    "random_row",
    "reference_rows",
    "run_sweep",
    "setup",
]
