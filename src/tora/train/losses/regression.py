"""Regression losses: inverse dynamics, deterministic behaviour cloning, value critics."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tora.train.losses.diffusion import Stats


def inverse_dynamics_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """Mean squared action error of the inverse dynamics model. pred, target: (B, A)."""
    loss = F.mse_loss(pred, target)
    return loss, {"loss": float(loss.detach())}


def behavior_cloning_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """Mean squared action error of a direct policy, over batch and action dims.

    pred, target: (B, A). Deterministic regression (not a Gaussian likelihood): the policy's
    conditioning inputs already separate the data's modes, and the squared error is what the
    inverse dynamics model is trained with too. stats: loss and the mean absolute error.
    """
    if pred.shape != target.shape:
        raise ValueError(f"predicted actions {tuple(pred.shape)} vs targets {tuple(target.shape)}")
    diff = pred - target
    loss = diff.pow(2).mean()
    return loss, {"loss": float(loss.detach()), "abs_error": float(diff.detach().abs().mean())}


def value_regression_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """Mean squared error of a value critic against Monte Carlo returns. pred, target: (B,).

    Both in the critic's standardized units. stats: loss, and explained_variance,
    1 - loss / Var(target) over the batch (the R^2 of the fit; 1 is exact, 0 no better than
    predicting the batch's mean)."""
    if pred.shape != target.shape:
        raise ValueError(f"predicted values {tuple(pred.shape)} vs targets {tuple(target.shape)}")
    loss = (pred - target).pow(2).mean()
    variance = target.detach().var(unbiased=False)
    explained = 1.0 - float(loss.detach()) / max(float(variance), 1e-12)
    return loss, {"loss": float(loss.detach()), "explained_variance": explained}
