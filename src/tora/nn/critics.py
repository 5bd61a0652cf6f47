"""State-value critics: V(s), the discounted return of one objective expected from state s.

TORA's planners never see a reward at sampling time. A value critic per objective lets the
agent rank several sampled plans by where they lead (preference-weighted selection, see
:mod:`tora.planning.agent`); it is trained offline, without preferences, in
:mod:`tora.train.critic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tora.nn.layers import mlp


@dataclass
class ValueCriticConfig:
    """Architecture of a value critic's MLP."""

    hidden_dim: int = 256
    """Width of the hidden layers."""
    depth: int = 2
    """Number of hidden layers."""


class ValueCritic(nn.Module):
    """V(s) = target_mean + target_std * f(s), f an MLP over the planner's normalized state.

    s: (B, D) normalized states -> (B,) values in reward units (discounted return).

    f is trained on standardized targets (:meth:`standardized`), which keeps the regression
    well scaled whatever the objective's units; the target mean and std are buffers, so they
    travel with the weights and every caller gets values in the objective's own units.
    """

    def __init__(
        self,
        state_dim: int,
        target_mean: float,
        target_std: float,
        config: ValueCriticConfig,
    ) -> None:
        super().__init__()
        if not target_std > 0:
            raise ValueError(f"target_std must be positive, got {target_std}")
        self.state_dim = int(state_dim)
        self.body = mlp(self.state_dim, 1, config.hidden_dim, config.depth)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def standardized(self, s: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,): the value in standard units, (V - target_mean) / target_std."""
        return self.body(s).squeeze(-1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.target_mean + self.target_std * self.standardized(s)
