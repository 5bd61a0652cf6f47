"""Noise-prediction networks over windows of H states.

Both take ``x`` (B, H, D) noisy normalized states and ``t`` (B,) integer diffusion steps and
return the predicted noise (B, H, D). The MLP flattens the window: cheap, and at the short
horizons of locomotion planning (H = 4) as good as anything (Lu et al. 2025). The transformer
treats each state as a token, which scales better with the horizon.

:class:`ConditionedDenoiser` wraps either one into eps(x, t, c): an embedding of a condition
vector c (e.g. a preference) is added to the time embedding, and a learned null embedding
stands in for c when it is dropped, as classifier-free guidance needs (Ho & Salimans 2022).
The wrapped network keeps its own parameters and state-dict keys under ``net.``.
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
        return self.forward_embedded(x, self.time(t))

    def forward_embedded(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The network after the time embedding: x (B, H, D), emb (B, hidden_dim) -> (B, H, D).

        Split out so that a wrapper can add a condition to ``self.time(t)`` first.
        """
        b = x.shape[0]
        h = torch.cat([x.reshape(b, -1), emb], dim=-1)
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
        return self.forward_embedded(x, self.time(t))

    def forward_embedded(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The network after the time embedding: x (B, H, D), emb (B, hidden_dim) -> (B, H, D).

        ``emb`` becomes the time token; split out so that a wrapper can condition it.
        """
        time_token = emb[:, None, :]
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


class ConditionedDenoiser(nn.Module):
    """eps(x, t, c): a :func:`build_denoiser` network whose time embedding is shifted by an
    embedding of a condition vector c, or by a learned null embedding where c is dropped.

    x: (B, H, D), t: (B,), cond: (B, C) or None, drop: (B,) bool or None -> (B, H, D)

    ``cond=None`` is the unconditional prediction eps(x, t, null) for the whole batch; ``drop``
    replaces c by the null embedding in the rows where it is True (condition dropout in
    training, and the unconditional half of a guided batch at sampling). Adding to the time
    embedding rather than widening the input keeps the wrapped network exactly as TORA builds
    it, so both methods compare at the same architecture plus the small condition encoder.
    """

    def __init__(self, horizon: int, state_dim: int, cond_dim: int, config: DenoiserConfig) -> None:
        super().__init__()
        if cond_dim < 1:
            raise ValueError(f"condition must have at least one entry, got cond_dim={cond_dim}")
        self.horizon, self.state_dim, self.cond_dim = horizon, state_dim, cond_dim
        net = build_denoiser(horizon, state_dim, config)
        assert isinstance(net, (MLPDenoiser, TransformerDenoiser))
        self.net: MLPDenoiser | TransformerDenoiser = net
        d = config.hidden_dim  # both denoisers embed time to hidden_dim
        self.cond = nn.Sequential(nn.Linear(cond_dim, d), nn.SiLU(), nn.Linear(d, d))
        # The null token lives in embedding space, not as a reserved condition value that a
        # real condition could equal; small random init, on the scale of a fresh embedding.
        self.null = nn.Parameter(torch.randn(d) * 0.02)

    def condition_embedding(
        self, cond: torch.Tensor | None, drop: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """(B, hidden_dim): embedded conditions, the null embedding where dropped or absent."""
        null = self.null.expand(batch, -1)
        if cond is None:
            return null
        if cond.shape != (batch, self.cond_dim):
            raise ValueError(
                f"condition has shape {tuple(cond.shape)}; expected ({batch}, {self.cond_dim})"
            )
        emb = self.cond(cond.to(null.dtype))
        if drop is None:
            return emb
        return torch.where(drop.to(torch.bool)[:, None], null, emb)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        emb = self.net.time(t) + self.condition_embedding(cond, drop, x.shape[0])
        return self.net.forward_embedded(x, emb)
