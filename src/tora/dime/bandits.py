"""The two toy bandits of the DiME paper: stateless, continuous action, two rewards.

Section 6.1 and Appendix D.1.1 of the DiME paper (seeds/003) test LS and DiME on bandits whose
reward vector is a classic two-objective test function (Okabe et al., "On Test Functions for
Evolutionary Multi-Objective Optimization", PPSN 2004), negated because RL maximizes:

* Schaffer: ``f1(a) = a^2``, ``f2(a) = (a - 2)^2``. Every ``a`` in ``[0, 2]`` is
  Pareto-optimal and the front ``(-a^2, -(a - 2)^2)`` is convex, so a weighted sum of the two
  rewards reaches any point of it.
* Fonseca-Fleming: ``f1(a) = 1 - exp(-sum_i (a_i - 1/sqrt(n))^2)``,
  ``f2(a) = 1 - exp(-sum_i (a_i + 1/sqrt(n))^2)``. The Pareto set is the segment
  ``a_i = t`` for all ``i``, ``t`` in ``[-1/sqrt(n), 1/sqrt(n)]``, and the front is concave: a
  weighted sum of the rewards is maximized near the front's two ends only (Das & Dennis 1997).

Choices the paper leaves open, made here:

* Action dimension: the paper's bandit has ``a in R`` (``n = 1``, where Fonseca-Fleming reads
  ``1 - exp(-(a -+ 1)^2)``), the default; Fonseca-Fleming also takes ``n > 1``.
* Action range: the box ``[-4, 4]^n``, the usual domain of Fonseca-Fleming (Okabe et al.),
  for both problems, so that both start from the same policy. An action outside the box is
  clipped to it before its reward is computed, as environments clip actions; the rewards are
  deterministic functions of the (clipped) action.
* Hypervolume reference point: the rewards are negative, so the usual reference point 0 is
  meaningless. Both problems use the same rule: the nadir of the true front (its worst value
  per objective) pushed out by 10% of the front's extent, ``nadir - 0.1 (ideal - nadir)``, so
  that points at the front's two ends still enclose volume. Schaffer: ``(-4.4, -4.4)``;
  Fonseca-Fleming: ``-1.1 (1 - e^-4) ≈ -1.0799`` per objective.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from tora.errors import ShapeMismatchError

__all__ = ["BANDITS", "Bandit", "FonsecaFleming", "Schaffer", "make_bandit"]

# How far beyond the front's nadir the hypervolume reference point lies, as a fraction of
# the front's extent (see the module docstring).
_REF_MARGIN = 0.1


class Bandit(ABC):
    """A stateless two-objective bandit: reward ``r(a) = -f(a)`` on the action box.

    Attributes:
        name: the problem's name (a key of :data:`BANDITS`).
        action_dim: ``n``, the number of action dimensions.
        low, high: the action box ``[low, high]^n``.
        objective_names: the two reward names, for plots and tables.
    """

    name: str
    objective_names: tuple[str, str] = ("r1", "r2")

    def __init__(self, action_dim: int = 1, low: float = -4.0, high: float = 4.0) -> None:
        if action_dim < 1:
            raise ValueError(f"action_dim must be at least 1, got {action_dim}")
        if not low < high:
            raise ValueError(f"the action box needs low < high, got [{low}, {high}]")
        self.action_dim = int(action_dim)
        self.low = float(low)
        self.high = float(high)

    @abstractmethod
    def costs(self, actions: torch.Tensor) -> torch.Tensor:
        """The test function ``f`` at (already clipped) actions ``(..., n)``: ``(..., 2)``."""

    @abstractmethod
    def pareto_set(self, num_points: int) -> torch.Tensor:
        """``num_points`` evenly spaced Pareto-optimal actions ``(M, n)``, from the end that
        is best for ``r1`` to the end that is best for ``r2``."""

    def rewards(self, actions: torch.Tensor) -> torch.Tensor:
        """Reward vectors ``(..., 2)`` of actions ``(..., n)``: ``-f`` at the clipped action."""
        if actions.shape[-1:] != (self.action_dim,):
            raise ShapeMismatchError(
                f"{self.name} takes actions (..., {self.action_dim}), got {tuple(actions.shape)}"
            )
        return -self.costs(actions.clamp(self.low, self.high))

    def pareto_front(self, num_points: int = 1001) -> np.ndarray:
        """The true front as ``(M, 2)`` reward vectors, sampled at :meth:`pareto_set`."""
        actions = self.pareto_set(num_points).to(torch.float64)
        return self.rewards(actions).numpy()

    def ref_point(self) -> np.ndarray:
        """Hypervolume reference point ``(2,)``: ``nadir - 0.1 (ideal - nadir)`` of the front.

        The front's extreme values sit at its two ends, so the two end points give the ideal
        and nadir exactly.
        """
        ends = self.pareto_front(2)
        ideal, nadir = ends.max(axis=0), ends.min(axis=0)
        return nadir - _REF_MARGIN * (ideal - nadir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(action_dim={self.action_dim}, box=[{self.low}, {self.high}])"


class Schaffer(Bandit):
    """Schaffer's problem: ``f1 = a^2``, ``f2 = (a - 2)^2``, one action dimension; convex front."""

    name = "schaffer"

    def __init__(self, action_dim: int = 1, low: float = -4.0, high: float = 4.0) -> None:
        if action_dim != 1:
            raise ValueError(f"Schaffer's problem has one action dimension, got {action_dim}")
        super().__init__(action_dim, low, high)

    def costs(self, actions: torch.Tensor) -> torch.Tensor:
        a = actions[..., 0]
        return torch.stack([a**2, (a - 2.0) ** 2], dim=-1)

    def pareto_set(self, num_points: int) -> torch.Tensor:
        return torch.linspace(0.0, 2.0, num_points, dtype=torch.float64).unsqueeze(-1)


class FonsecaFleming(Bandit):
    """Fonseca and Fleming's problem in ``n`` dimensions; concave front.

    ``f1 = 1 - exp(-sum_i (a_i - c)^2)``, ``f2 = 1 - exp(-sum_i (a_i + c)^2)``, ``c = 1/sqrt(n)``.
    """

    name = "fonseca_fleming"

    def costs(self, actions: torch.Tensor) -> torch.Tensor:
        c = 1.0 / math.sqrt(self.action_dim)
        f1 = 1.0 - torch.exp(-((actions - c) ** 2).sum(dim=-1))
        f2 = 1.0 - torch.exp(-((actions + c) ** 2).sum(dim=-1))
        return torch.stack([f1, f2], dim=-1)

    def pareto_set(self, num_points: int) -> torch.Tensor:
        c = 1.0 / math.sqrt(self.action_dim)
        t = torch.linspace(c, -c, num_points, dtype=torch.float64)
        return t.unsqueeze(-1).expand(num_points, self.action_dim).clone()


BANDITS: dict[str, type[Bandit]] = {"schaffer": Schaffer, "fonseca_fleming": FonsecaFleming}


def make_bandit(name: str, action_dim: int = 1) -> Bandit:
    """The bandit called ``name`` (``"schaffer"`` or ``"fonseca_fleming"``)."""
    key = name.lower().replace("-", "_")
    if key not in BANDITS:
        raise ValueError(f"unknown bandit {name!r}; choose one of {sorted(BANDITS)}")
    return BANDITS[key](action_dim)
