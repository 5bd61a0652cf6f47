"""Tuning TORA-safe for a budget on selection episodes: the weight and the controller's reserve.

Both the benchmark (:mod:`tora.safe.bench`) and ``tora safe select`` tune with these, so a
weight chosen by the command is the weight the benchmark would choose. All episodes come from
the "select" seed range (:func:`tora.safe.protocol.episode_seeds`), never the table's; the
planners' sampling noise is keyed apart from the table's too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tora.errors import ToraError
from tora.planning.agent import Agent
from tora.safe.controller import BudgetController
from tora.safe.policies import controller_rows, per_row, tora_step
from tora.safe.protocol import episode_seeds
from tora.safe.rollout import run_episodes
from tora.safe.select import Evaluate, best_safe

SELECT_NOISE = 10**6
"""Offset of the selection rows' noise seeds from the table's (which use the eval seed)."""

__all__ = [
    "SELECT_NOISE",
    "choose_reserves",
    "pick_reserves",
    "selection_evaluate",
    "standard_error",
]


def selection_evaluate(
    agent: Agent,
    env_id: str,
    seed: int,
    episodes: int,
    progress: bool = True,
    budget: float | None = None,
) -> Evaluate:
    """TORA's mean episode return and cost per weight row, and the standard error of the
    mean cost, on ``episodes`` selection episodes of evaluation seed ``seed`` (the same start
    states for every weight). With ``budget``, every episode keeps to that cost budget
    through the agent's cost critic (:func:`~tora.safe.policies.tora_step`'s ``budgets``)."""
    seeds = episode_seeds("select", seed, episodes)

    def evaluate(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.repeat(weights, len(seeds), axis=0)
        budgets = None if budget is None else np.full(rows.shape[0], float(budget))
        step = tora_step(agent, per_row(rows), rows.shape[0], SELECT_NOISE + seed, budgets=budgets)
        ep = run_episodes(step, env_id, seeds * len(weights), progress, "select")
        shape = (len(weights), len(seeds))
        costs = ep.costs.reshape(shape)
        return ep.returns.reshape(shape).mean(1), costs.mean(1), standard_error(costs)

    return evaluate


def standard_error(values: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (n, episodes): the standard error of the row's mean (sample
    std with one degree of freedom removed, over sqrt(episodes); 0 with one episode)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] < 2:
        return np.zeros(values.shape[0])
    return values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])


def choose_reserves(
    agent: Agent,
    env_id: str,
    seed: int,
    episodes: int,
    starts: Mapping[float, Sequence[float]],
    reserves: Sequence[float],
    safe: Sequence[float] = (0.0, 1.0),
    margin: float = 0.1,
    progress: bool = True,
    cost_z: float = 0.0,
) -> dict[float, dict[str, Any]]:
    """For every threshold kappa in ``starts`` (kappa -> starting weight), the reserve of a
    :class:`BudgetController` from that weight to ``safe`` with the highest mean return whose
    mean cost (plus ``cost_z`` standard errors, as :class:`~tora.safe.select.SelectConfig`)
    stays below ``(1 - margin) kappa``, with the evidence. All (threshold, reserve)
    pairs run as one batch on the selection episodes."""
    seeds = episode_seeds("select", seed, episodes)
    pairs = [(float(k), float(r)) for k in starts for r in reserves]
    rows = [
        BudgetController(k, r, tuple(starts[k]), tuple(safe))  # type: ignore[arg-type]
        for k, r in pairs
        for _ in seeds
    ]
    step = tora_step(agent, controller_rows(rows), len(rows), SELECT_NOISE + seed)
    ep = run_episodes(step, env_id, seeds * len(pairs), progress, "select reserve")
    shape = (len(starts), len(reserves), len(seeds))
    return pick_reserves(
        starts,
        reserves,
        ep.returns.reshape(shape),
        ep.costs.reshape(shape),
        (1.0 - margin),
        cost_z,
    )


def pick_reserves(
    starts: Mapping[float, Sequence[float]],
    reserves: Sequence[float],
    returns: np.ndarray,
    costs: np.ndarray,
    fraction: float,
    cost_z: float = 0.0,
) -> dict[float, dict[str, Any]]:
    """The choice :func:`choose_reserves` makes from its episodes: ``returns`` and ``costs``
    are (thresholds, reserves, episodes) in the order of ``starts`` and ``reserves``. Per
    threshold kappa, the reserve with the highest mean return among those whose mean cost
    plus ``cost_z`` standard errors is below ``fraction * kappa`` (when none
    is: the lowest bound, with ``found`` false)."""
    returns = np.asarray(returns, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    expected = (len(starts), len(reserves))
    if returns.shape[:2] != expected or costs.shape != returns.shape:
        raise ToraError(
            f"returns {returns.shape} and costs {costs.shape} must both be "
            f"(thresholds, reserves, episodes) with (thresholds, reserves) = {expected}"
        )
    chosen: dict[float, dict[str, Any]] = {}
    for i, kappa in enumerate(starts):
        means_r = returns[i].mean(1)
        means_c = costs[i].mean(1)
        bounds = means_c + cost_z * standard_error(costs[i])
        j, found = best_safe(means_r, bounds, fraction * float(kappa))
        chosen[float(kappa)] = {
            "start": list(starts[kappa]),
            "reserve": float(reserves[j]),
            "found": found,
            "candidates": [
                {"reserve": float(r), "reward": float(a), "cost": float(b)}
                for r, a, b in zip(reserves, means_r, means_c, strict=True)
            ],
        }
    return chosen
