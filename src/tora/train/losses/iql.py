"""Implicit Q-learning's critic losses (Kostrikov et al. 2022): twin Q by TD, V by expectile
regression; used by the DiME critics (:mod:`tora.dime.critic`)."""

from __future__ import annotations

import torch

from tora.train.losses.diffusion import Stats


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """``mean |tau - 1(u < 0)| u^2`` over ``u = diff`` (IQL's asymmetric L2, Eq. 5 there).

    Positive residuals (``Q`` above ``V``) weigh ``tau``, negative ones ``1 - tau``: with
    ``tau > 0.5``, ``V`` settles above the mean of ``Q`` over the data's actions.
    """
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


def td_targets(
    rewards: torch.Tensor, terminals: torch.Tensor, next_values: torch.Tensor, discount: float
) -> torch.Tensor:
    """One-step targets ``r + gamma (1 - d) V(s')``, all ``(B,)``; no gradient flows."""
    alive = 1.0 - terminals.to(rewards.dtype)
    return (rewards + discount * alive * next_values).detach()


def critic_loss(
    q_pred: torch.Tensor,
    targets: torch.Tensor,
    target_q: torch.Tensor,
    values: torch.Tensor,
    expectile: float,
) -> tuple[torch.Tensor, Stats]:
    """IQL's two losses, summed: ``L_Q + L_V`` (they train disjoint parameters).

    Args:
        q_pred: ``(B, 2)`` online twins ``Q_j(s, a)``.
        targets: ``(B,)`` TD targets from :func:`td_targets`.
        target_q: ``(B,)`` ``min_j Q'_j(s, a)`` of the target twins (detached here).
        values: ``(B,)`` ``V(s)``.
        expectile: tau of :func:`expectile_loss`.

    Returns:
        ``(loss, stats)`` with ``q_loss`` (summed over the twins), ``v_loss``, and the batch
        means of ``q`` and ``v``.
    """
    q_loss = (q_pred - targets.detach().unsqueeze(-1)).pow(2).mean(dim=0).sum()
    v_loss = expectile_loss(target_q.detach() - values, expectile)
    loss = q_loss + v_loss
    stats = {
        "loss": float(loss.detach()),
        "q_loss": float(q_loss.detach()),
        "v_loss": float(v_loss.detach()),
        "q": float(q_pred.detach().mean()),
        "v": float(values.detach().mean()),
    }
    return loss, stats
