"""The text-game policies' network: logits over the offered choices from text embeddings
(:mod:`tora.nn.text_encoder`), trained with CPL by :mod:`tora.text.cpl`."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChoiceScorer"]


class ChoiceScorer(nn.Module):
    """Logits of the offered choices from text embeddings.

    Shapes: ``scene`` (B, D), ``choices`` (B, C, D), ``mask`` (B, C) bool (True = offered)
    -> logits (B, C), ``-inf`` where not offered. Scene and choice are projected to
    ``hidden`` units each; a two-layer head reads ``[scene, choice, scene * choice]``.
    """

    def __init__(self, text_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.scene_proj = nn.Linear(text_dim, hidden)
        self.choice_proj = nn.Linear(text_dim, hidden)
        self.head = nn.Sequential(
            nn.ReLU(), nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def score(
        self, scene_h: torch.Tensor, choice_h: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits from projected texts: ``scene_h`` (B, H), ``choice_h`` (B, C, H)."""
        s = scene_h.unsqueeze(1).expand_as(choice_h)
        logits = self.head(torch.cat([s, choice_h, s * choice_h], dim=-1)).squeeze(-1)
        return logits.masked_fill(~mask, float("-inf"))

    def forward(
        self, scene: torch.Tensor, choices: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return self.score(self.scene_proj(scene), self.choice_proj(choices), mask)
