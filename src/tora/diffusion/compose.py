"""Composition of objective models: eps = sum_i w_i eps_i (TORA, seeds/000 Eq. 4).

Weights arrive with every call, one row per batch item, so one loaded set of models serves any
preference and a whole preference sweep samples as one batch. Summing noise predictions sums
scores, i.e. samples from a product of the objective models' distributions, each raised to its
weight: the diffusion counterpart of adding KL-regularized rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from tora.errors import InvalidWeightsError
from tora.preferences import validate_weights


def check_weights(
    weights: torch.Tensor | np.ndarray | Sequence[float],
    num_models: int,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Validated (B, K) float64 weights (see :func:`tora.preferences.validate_weights`)."""
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().double().numpy()
    return torch.from_numpy(validate_weights(weights, num_models, names))


class ComposedDenoiser(nn.Module):
    """sum_i w_i eps_i(x, t) over K objective denoisers.

    x: (B, H, D), t: (B,), weights: (B, K) -> (B, H, D)

    A model whose weight is zero for the whole batch is not evaluated, so dropping an
    objective costs nothing, and a one-hot weight returns that model's output exactly.
    """

    def __init__(self, models: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(models) == 0:
            raise InvalidWeightsError("composition needs at least one objective model")
        self.models = nn.ModuleList(models)
        self.names = (
            list(names) if names is not None else [f"model_{i}" for i in range(len(models))]
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, weights: torch.Tensor, validate: bool = True
    ) -> torch.Tensor:
        """``validate=False`` skips the checks for weights already validated by the caller
        (the sampling loop calls this 10-100 times per plan with the same weights)."""
        if validate:
            weights = check_weights(weights, len(self.models), self.names)
        w = weights.to(x.device, x.dtype)
        if w.shape[0] == 1 and x.shape[0] > 1:
            w = w.expand(x.shape[0], -1)
        if w.shape[0] != x.shape[0]:
            raise InvalidWeightsError(f"got {w.shape[0]} weight rows for a batch of {x.shape[0]}")
        out: torch.Tensor | None = None
        for k, model in enumerate(self.models):
            wk = w[:, k]
            if not bool((wk != 0).any()):
                continue
            term = wk.view(-1, *([1] * (x.dim() - 1))) * model(x, t)
            out = term if out is None else out + term
        assert out is not None  # rows sum to 1, so some weight is positive
        return out

    def bind(
        self, weights: torch.Tensor | np.ndarray | Sequence[float]
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The (x, t) -> eps function for fixed weights, as samplers expect."""
        w = check_weights(weights, len(self.models), self.names)
        return lambda x, t: self.forward(x, t, w, validate=False)
