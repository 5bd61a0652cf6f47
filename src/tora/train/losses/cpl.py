"""Contrastive Preference Learning (Hejna et al. 2024) on segment pairs, and behaviour cloning
by log-likelihood, for the text-game policies (:mod:`tora.text.cpl`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cpl_loss(
    logp_preferred: torch.Tensor,
    logp_other: torch.Tensor,
    *,
    alpha: float = 0.1,
    conservative_lambda: float = 0.5,
    discount: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CPL's loss on a batch of segment pairs (Hejna et al. 2024, Eq. 5 with the bias).

    ``logp_preferred`` and ``logp_other``: (N, L) log pi(a_t | s_t) along each segment, 0
    at padded steps. Segment score = alpha * sum_t discount^t logp_t;
    loss = mean(-log sigmoid(score_preferred - lambda * score_other)).
    Stats: the loss, the accuracy (preferred scored higher) and the mean scores.
    """
    if logp_preferred.shape != logp_other.shape or logp_preferred.dim() != 2:
        raise ValueError(
            f"cpl_loss needs two (N, L) tensors, got {tuple(logp_preferred.shape)} and "
            f"{tuple(logp_other.shape)}"
        )
    weights = discount ** torch.arange(
        logp_preferred.shape[1], dtype=logp_preferred.dtype, device=logp_preferred.device
    )
    score_preferred = alpha * (logp_preferred * weights).sum(dim=1)
    score_other = alpha * (logp_other * weights).sum(dim=1)
    loss = -F.logsigmoid(score_preferred - conservative_lambda * score_other).mean()
    stats = {
        "cpl_loss": float(loss.detach()),
        "accuracy": float((score_preferred > score_other).float().mean()),
        "score_preferred": float(score_preferred.detach().mean()),
        "score_other": float(score_other.detach().mean()),
    }
    return loss, stats


def nll_bc_loss(logp_actions: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Behaviour cloning: mean negative log-likelihood of the data's actions, (N,) -> scalar."""
    loss = -logp_actions.mean()
    return loss, {"bc_loss": float(loss.detach())}
