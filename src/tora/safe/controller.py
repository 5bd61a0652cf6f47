"""Weights (w_r, w_c) for a cost budget: fixed, or moved during an episode by the cost spent.

TORA composes the reward and cost planners as ``w_r eps_r + w_c eps_c`` and takes the weights
with every call, so they may change at every step without retraining. :class:`BudgetController`
uses that: it starts an episode at a reward-heavy weight and moves w_c towards a safe weight
in proportion to the budget already spent,

    s = clip(C_t / ((1 - reserve) kappa), 0, 1),    w = (1 - s) w_start + s w_safe,

where C_t is the cost spent so far and kappa the episode budget. At ``(1 - reserve) kappa``
the agent acts entirely under ``w_safe``; the reserve is the share of the budget kept for
the cost paid while the agent slows down (a fast ball keeps overshooting the speed limit for
a few steps after it starts braking). The controller acts on the weight only, so it keeps a
deployed agent to any budget, including ones it was never tuned or trained for; the reserve
is the one setting, and :mod:`tora.safe.select` chooses it on selection episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tora.errors import ToraError
from tora.preferences import validate_weights

__all__ = ["BudgetController", "fixed_weights", "preference_row"]


def preference_row(weight: Sequence[float] | np.ndarray) -> np.ndarray:
    """A validated (w_r, w_c) row: two finite non-negative numbers summing to 1."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    if w.shape != (2,):
        raise ToraError(f"a safe-RL weight is (w_r, w_c), got {w.tolist()}")
    return validate_weights(w, 2).reshape(-1)


def fixed_weights(weight: Sequence[float] | np.ndarray, batch: int) -> np.ndarray:
    """(batch, 2): the same validated weight for every row."""
    return np.tile(preference_row(weight), (batch, 1))


@dataclass(frozen=True)
class BudgetController:
    """Maps the cost each episode has spent to its weight row; see the module docstring."""

    budget: float
    """kappa: the episode cost the agent may spend (> 0)."""
    reserve: float = 0.5
    """Share of the budget kept back: the weight is fully ``safe`` once
    ``(1 - reserve) * budget`` is spent. In [0, 1)."""
    start: tuple[float, float] = (1.0, 0.0)
    """Weight (w_r, w_c) with nothing spent."""
    safe: tuple[float, float] = (0.0, 1.0)
    """Weight once the guarded share of the budget is spent."""

    def __post_init__(self) -> None:
        budget = float(self.budget)
        if not np.isfinite(budget) or budget <= 0:
            # With no budget there is nothing to pace: use the safe weight as a fixed weight.
            raise ToraError(f"the controller's budget must be finite and > 0, got {self.budget}")
        if not 0.0 <= float(self.reserve) < 1.0:
            raise ToraError(f"reserve must lie in [0, 1), got {self.reserve}")
        preference_row(self.start)
        preference_row(self.safe)

    def share(self, spent: np.ndarray) -> np.ndarray:
        """(B,) how far each row has moved from ``start`` (0) to ``safe`` (1)."""
        spent = np.asarray(spent, dtype=np.float64)
        if not np.isfinite(spent).all():
            raise ToraError("spent costs must be finite")
        guard = (1.0 - float(self.reserve)) * float(self.budget)
        return np.clip(spent / guard, 0.0, 1.0)

    def weights(self, spent: np.ndarray) -> np.ndarray:
        """(B, 2) weight rows for episodes that have spent ``spent`` (B,) so far."""
        s = self.share(spent)[:, None]
        w = (1.0 - s) * np.asarray(self.start) + s * np.asarray(self.safe)
        return w / w.sum(axis=1, keepdims=True)  # exact simplex rows despite rounding
