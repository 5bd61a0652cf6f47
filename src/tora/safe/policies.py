"""Every compared method behind one interface: a step policy ``(obs, state) -> actions``.

TORA acts under weight rows that come from a function of the episode state (a fixed weight,
one weight per row for a sweep, or :class:`~tora.safe.controller.BudgetController`); BC
ignores the state; the (return, cost)-conditioned planner reads its targets off it
(:mod:`tora.safe.conditioned`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tora.evaluate.rollout import row_seeds
from tora.planning.agent import Agent
from tora.policies.supervised import SupervisedPolicy
from tora.safe.controller import BudgetController, fixed_weights
from tora.safe.rollout import EpisodeState, StepPolicy

WeightFn = Callable[[EpisodeState], np.ndarray]
"""The (B, 2) weight rows of a batch's active rows."""

__all__ = [
    "WeightFn",
    "controller_rows",
    "fixed_rows",
    "per_row",
    "supervised_step",
    "tora_step",
]


def fixed_rows(weight: Sequence[float]) -> WeightFn:
    """The same weight for every row."""
    return lambda state: fixed_weights(weight, state.rows.size)


def per_row(weights: np.ndarray) -> WeightFn:
    """Row j of the batch acts under ``weights[j]`` (a sweep of weights as one batch)."""
    table = np.asarray(weights, dtype=np.float64)
    return lambda state: table[state.rows]


def controller_rows(controllers: Sequence[BudgetController]) -> WeightFn:
    """Row j follows ``controllers[j]`` from the cost it has spent."""

    def weights(state: EpisodeState) -> np.ndarray:
        return np.concatenate(
            [controllers[r].weights(c[None]) for r, c in zip(state.rows, state.cost, strict=True)]
        )

    return weights


def tora_step(
    agent: Agent,
    weights: WeightFn,
    rows: int,
    noise_seed: int,
    budgets: np.ndarray | None = None,
) -> StepPolicy:
    """TORA acting under ``weights``; each of the batch's ``rows`` episodes samples from its
    own noise stream (keyed by ``noise_seed`` and the row), so a row's actions do not depend
    on which other rows share its batch. With ``budgets`` (row j's cost budget
    ``budgets[j]``), each step's candidate plans that the cost critic expects to overspend
    what is left of the budget (budget minus the cost spent so far) are discarded."""
    agent.seed_rows(row_seeds(noise_seed, rows, 1))
    if budgets is None:
        return lambda obs, state: agent.act(obs, weights(state), rows=state.rows)
    table = np.asarray(budgets, dtype=np.float64)
    return lambda obs, state: agent.act(
        obs, weights(state), rows=state.rows, budget_left=table[state.rows] - state.cost
    )


def supervised_step(policy: SupervisedPolicy) -> StepPolicy:
    """BC acting: the weights it is handed are validated and ignored."""
    return lambda obs, state: policy.act(obs, np.full((obs.shape[0], 2), 0.5))
