"""Inverse dynamics: the action that takes the agent from s_t towards s_{t+m}.

The planner generates states only; this model turns the first planned step into an action
(Ajay et al. 2023; Lu et al. 2025).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class InverseDynamicsConfig:
    """Architecture of the inverse dynamics MLP."""

    hidden_dim: int = 256
    """Width of the hidden layers."""
    depth: int = 2
    """Number of hidden layers."""


class InverseDynamics(nn.Module):
    """a_t = f(s_t, s_{t+m}) on normalized states; the output is squashed into the action box.

    s: (B, D), s_next: (B, D) -> (B, A) in [low, high]
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        config: InverseDynamicsConfig,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 2 * state_dim
        for _ in range(config.depth):
            layers += [
                nn.Linear(width, config.hidden_dim),
                nn.LayerNorm(config.hidden_dim),
                nn.SiLU(),
            ]
            width = config.hidden_dim
        self.body = nn.Sequential(*layers, nn.Linear(width, action_dim))
        # Buffers so the bounds travel with the weights in the checkpoint and across devices.
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        raw = self.body(torch.cat([s, s_next], dim=-1))
        half = (self.action_high - self.action_low) / 2
        return self.action_low + half * (torch.tanh(raw) + 1)
