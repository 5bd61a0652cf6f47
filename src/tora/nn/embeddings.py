"""Sinusoidal embedding of the diffusion timestep (Vaswani et al. 2017; Ho et al. 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Maps integer or real timesteps (B,) to (B, dim) features [sin(t f_i), cos(t f_i)],
    frequencies f_i geometric from 1 down to 1/10000."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        # A buffer, not a parameter: the frequencies are fixed, yet move with .to(device).
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
