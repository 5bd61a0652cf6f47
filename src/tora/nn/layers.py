"""The fully connected stack the project's MLP networks share."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, out_dim: int, hidden_dim: int, depth: int) -> nn.Sequential:
    """``depth`` hidden layers (Linear -> LayerNorm -> SiLU) and a linear output layer.

    The same hidden block as the denoisers and the inverse dynamics model, so baselines and
    DiME get the same kind of network as TORA's parts.
    """
    if depth < 1 or hidden_dim < 1:
        raise ValueError(f"depth and hidden_dim must be >= 1, got {depth} and {hidden_dim}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden_dim), nn.LayerNorm(hidden_dim), nn.SiLU()]
        width = hidden_dim
    return nn.Sequential(*layers, nn.Linear(width, out_dim))
