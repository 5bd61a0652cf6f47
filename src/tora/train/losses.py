"""Pure loss functions. Each returns ``(loss, stats)``: a scalar tensor to minimize and a dict
of floats worth logging. They can be checked by hand on tiny tensors."""

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
