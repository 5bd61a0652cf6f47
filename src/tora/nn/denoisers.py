"""Noise-prediction networks over windows of H states.

Both take ``x`` (B, H, D) noisy normalized states and ``t`` (B,) integer diffusion steps and
return the predicted noise (B, H, D). The MLP flattens the window: cheap, and at the short
horizons of locomotion planning (H = 4) as good as anything (Lu et al. 2025). The transformer
treats each state as a token, which scales better with the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tora.nn.embeddings import SinusoidalEmbedding


@dataclass
class DenoiserConfig:
    """Architecture of the noise-prediction network."""

    kind: Literal["mlp", "transformer"] = "mlp"
    """Network type: "mlp" (flattened window, fast on CPU) or "transformer" (token per state)."""
    hidden_dim: int = 256
    """Width of MLP layers, or d_model of the transformer."""
    depth: int = 3
    """Number of hidden layers (MLP) or transformer blocks."""
    heads: int = 4
    """Attention heads (transformer only)."""
    time_dim: int = 64
    """Size of the sinusoidal timestep embedding."""
    dropout: float = 0.0
    """Dropout inside the network during training."""


class MLPDenoiser(nn.Module):
    """eps(x, t) by an MLP on the flattened window concatenated with a time embedding.

    x: (B, H, D), t: (B,) -> (B, H, D)
    """

    def __init__(self, horizon: int, state_dim: int, config: DenoiserConfig) -> None:
        super().__init__()
        self.horizon, self.state_dim = horizon, state_dim
        self.time = nn.Sequential(
            SinusoidalEmbedding(config.time_dim),
            nn.Linear(config.time_dim, config.hidden_dim),
            nn.SiLU(),
        )
        layers: list[nn.Module] = []
        width_in = horizon * state_dim + config.hidden_dim
        for _ in range(config.depth):
            layers += [
                nn.Linear(width_in, config.hidden_dim),
                nn.LayerNorm(config.hidden_dim),
                nn.SiLU(),
                nn.Dropout(config.dropout),
            ]
            width_in = config.hidden_dim
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(config.hidden_dim, horizon * state_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = torch.cat([x.reshape(b, -1), self.time(t)], dim=-1)
        return self.out(self.body(h)).reshape(b, self.horizon, self.state_dim)


class TransformerDenoiser(nn.Module):
    """eps(x, t) by a pre-norm transformer encoder: one token per state plus a time token.

    x: (B, H, D), t: (B,) -> (B, H, D)
    """

    def __init__(self, horizon: int, state_dim: int, config: DenoiserConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.horizon, self.state_dim = horizon, state_dim
        self.inp = nn.Linear(state_dim, d)
        self.pos = nn.Parameter(torch.zeros(1, horizon + 1, d))
        nn.init.normal_(self.pos, std=0.02)
        self.time = nn.Sequential(
            SinusoidalEmbedding(config.time_dim),
            nn.Linear(config.time_dim, d),
            nn.SiLU(),
            nn.Linear(d, d),
        )
        block = nn.TransformerEncoderLayer(
            d,
            config.heads,
            4 * d,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, state_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time_token = self.time(t)[:, None, :]
        tokens = torch.cat([time_token, self.inp(x)], dim=1) + self.pos
        h = self.norm(self.blocks(tokens))
        return self.out(h[:, 1:])


def build_denoiser(horizon: int, state_dim: int, config: DenoiserConfig) -> nn.Module:
    """The denoiser named by ``config.kind``."""
    if config.kind == "mlp":
        return MLPDenoiser(horizon, state_dim, config)
    if config.kind == "transformer":
        return TransformerDenoiser(horizon, state_dim, config)
    raise ValueError(f"unknown denoiser kind {config.kind!r}; choose 'mlp' or 'transformer'")
