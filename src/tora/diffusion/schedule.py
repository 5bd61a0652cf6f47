"""The forward noising process q(x_t | x_0) of a DDPM (Ho et al. 2020).

Holds no trainable parameters. Steps are 0-indexed: t = 0 is the least noisy step, and
``alphas_cumprod[t]`` is the signal fraction abar_t of
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
"""

from __future__ import annotations

import math
from typing import Literal

import torch


class NoiseSchedule:
    """Betas, alphas and their cumulative products for ``num_steps`` diffusion steps.

    kind "cosine" follows Nichol & Dhariwal (2021), which keeps more signal at mid steps than
    the linear schedule and suits low-dimensional data such as state windows.
    """

    def __init__(self, num_steps: int = 100, kind: Literal["cosine", "linear"] = "cosine") -> None:
        if num_steps < 2:
            raise ValueError(f"need at least 2 diffusion steps, got {num_steps}")
        self.num_steps, self.kind = num_steps, kind
        if kind == "cosine":
            s = 0.008
            x = torch.linspace(0, num_steps, num_steps + 1, dtype=torch.float64)
            f = torch.cos(((x / num_steps) + s) / (1 + s) * math.pi / 2) ** 2
            abar = f / f[0]
            betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
        elif kind == "linear":
            betas = torch.linspace(1e-4, 2e-2, num_steps, dtype=torch.float64)
        else:
            raise ValueError(f"unknown schedule {kind!r}; choose 'cosine' or 'linear'")
        self.betas = betas
        self.alphas = 1 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """abar_t gathered for a batch of steps, broadcastable against ``like`` (B, ...)."""
        a = self.alphas_cumprod.to(like.device)[t.long()].to(like.dtype)
        return a.reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def to_dict(self) -> dict[str, object]:
        return {"num_steps": self.num_steps, "kind": self.kind}
