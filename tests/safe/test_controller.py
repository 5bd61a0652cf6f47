"""The adaptive cost weight: it keeps a toy within a budget a reward-heavy weight overruns."""

from __future__ import annotations

import numpy as np
import pytest

from tora.errors import ToraError
from tora.safe.controller import BudgetController, fixed_weights
from tora.safe.policies import controller_rows, fixed_rows
from tora.safe.protocol import episode_seeds

from .conftest import dash_episodes

SEEDS = episode_seeds("table", 0, 3)


@pytest.mark.parametrize("budget", [2.0, 4.0, 8.0])
def test_controller_keeps_the_toy_within_budget_where_a_fixed_weight_does_not(
    budget: float,
) -> None:
    heavy = (0.9, 0.1)
    fixed = dash_episodes(fixed_rows(heavy), SEEDS)
    assert (fixed.costs > budget).all()  # 20 steps x 0.8: 16 per episode

    controller = BudgetController(budget, reserve=0.5, start=heavy, safe=(0.0, 1.0))
    adaptive = dash_episodes(controller_rows([controller] * len(SEEDS)), SEEDS)
    assert (adaptive.costs < budget).all()
    # It spends part of the budget on reward rather than acting safe from the start.
    assert (adaptive.costs > 0).all()
    safe_only = dash_episodes(fixed_rows((0.0, 1.0)), SEEDS)
    assert (adaptive.returns > safe_only.returns).all()


def test_weights_move_from_start_to_safe_with_spent_cost() -> None:
    c = BudgetController(10.0, reserve=0.5, start=(1.0, 0.0), safe=(0.2, 0.8))
    w = c.weights(np.array([0.0, 2.5, 5.0, 50.0]))
    np.testing.assert_allclose(w[:, 1], [0.0, 0.4, 0.8, 0.8])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 0.0}, "budget"),
        ({"budget": float("nan")}, "budget"),
        ({"budget": 5.0, "reserve": 1.0}, "reserve"),
        ({"budget": 5.0, "start": (0.7, 0.7)}, "sum"),
    ],
)
def test_invalid_controllers_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ToraError, match=match):
        BudgetController(**kwargs)


def test_nan_spent_cost_is_refused() -> None:
    with pytest.raises(ToraError, match="finite"):
        BudgetController(5.0).weights(np.array([np.nan]))


def test_fixed_weights_validate() -> None:
    assert fixed_weights((0.25, 0.75), 3).shape == (3, 2)
    with pytest.raises(ToraError):
        fixed_weights((0.5, 0.5, 0.0), 1)
