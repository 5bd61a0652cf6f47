"""PPO's actor-critic: a Gaussian policy (MLP mean, learned state-independent log std) and an
MLP value, both on tanh hidden layers. Trained by :mod:`tora.behavior.ppo`."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ActorCritic", "tanh_mlp"]


def tanh_mlp(inp: int, out: int, hidden: int, depth: int) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` tanh units, then a linear output (PPO's usual MLP)."""
    layers: list[nn.Module] = []
    width = inp
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Gaussian policy (MLP mean, learned state-independent log std) and an MLP value."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: int, depth: int, init_log_std: float
    ) -> None:
        super().__init__()
        self.net = tanh_mlp(obs_dim, act_dim, hidden, depth)
        self.value = tanh_mlp(obs_dim, 1, hidden, depth)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        # A small last layer starts the mean near 0 for every state, so early exploration
        # is the Gaussian's, not an arbitrary initial feedback law's.
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.zero_()

    def dist(self, z: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.net(z), self.log_std.exp())
