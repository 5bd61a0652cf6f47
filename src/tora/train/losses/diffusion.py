"""Losses of the diffusion planner: denoising (pretraining) and Diffusion-DPO (fine-tuning per
objective), and the per-window denoising error both are built on."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Stats = dict[str, float]


def window_errors(eps_pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared noise error per window, leaving out the first (inpainted) state.

    eps_pred, noise: (B, H, D). The first state is the known current state at planning time;
    it is never generated, so it carries no error.
    """
    return (eps_pred[:, 1:] - noise[:, 1:]).pow(2).mean(dim=(1, 2))


def denoising_loss(eps_pred: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """The simple DDPM loss E ||eps - eps_theta(x_t, t)||^2 over generated states."""
    loss = window_errors(eps_pred, noise).mean()
    return loss, {"loss": float(loss.detach())}


def diffusion_dpo_loss(
    err_theta_win: torch.Tensor,
    err_ref_win: torch.Tensor,
    err_theta_lose: torch.Tensor,
    err_ref_lose: torch.Tensor,
    beta: float,
    sft_weight: float = 0.0,
) -> tuple[torch.Tensor, Stats]:
    """Diffusion-DPO (Wallace et al. 2024) with winner and loser at the same t and noise.

    All inputs are (B,) per-window errors from :func:`window_errors`. With
    d = (e_theta(x+) - e_ref(x+)) - (e_theta(x-) - e_ref(x-)), the loss is
    -log sigmoid(-(beta / 2) d). This is the intended form of the seeds' Eq. 3, whose
    misplaced parenthesis applies beta to the winner's log-ratio only.

    ``sft_weight`` > 0 adds ``sft_weight * mean(e_theta(x+))``, the plain denoising loss on
    the winners. DPO only rewards the *difference* d, and it can grow d by ruining the losers
    faster than the winners, so the winners' error rises too (measured on MuJoCo: winner gap
    > 0 in every run); the supervised term pins the winners' likelihood, as NLL/SFT terms do
    in language-model DPO variants.

    stats: loss (the total); dpo_loss; implicit_accuracy, the fraction of pairs where the
    model already ranks the winner above the loser (d < 0); reward_margin, the mean of
    -(beta/2) d (the implicit reward gap); the mean error gaps of winner and loser relative
    to the reference; and sft_loss, the winners' mean error.
    """
    if sft_weight < 0:
        raise ValueError(f"sft_weight must be >= 0, got {sft_weight}")
    win_gap = err_theta_win - err_ref_win
    lose_gap = err_theta_lose - err_ref_lose
    logits = -0.5 * beta * (win_gap - lose_gap)
    dpo = -F.logsigmoid(logits).mean()
    sft = err_theta_win.mean()
    loss = dpo + sft_weight * sft if sft_weight else dpo
    stats = {
        "loss": float(loss.detach()),
        "dpo_loss": float(dpo.detach()),
        "sft_loss": float(sft.detach()),
        "implicit_accuracy": float((logits > 0).float().mean()),
        "reward_margin": float(logits.detach().mean()),
        "winner_gap": float(win_gap.detach().mean()),
        "loser_gap": float(lose_gap.detach().mean()),
    }
    return loss, stats
