"""Loss functions checked against hand computations on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from tora.train.losses import (
    denoising_loss,
    diffusion_dpo_loss,
    inverse_dynamics_loss,
    window_errors,
)


def _t(*values: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def _hand_dpo(a: float, b: float, c: float, d: float, beta: float) -> float:
    """-log(sigmoid(-(beta/2) ((a - b) - (c - d)))) with math only."""
    z = -(beta / 2) * ((a - b) - (c - d))
    return -math.log(1 / (1 + math.exp(-z)))


# ----------------------------------------------------------------------------- window errors
def _window_pair() -> tuple[torch.Tensor, torch.Tensor]:
    # B=2, H=3, D=2; the first state (index 0) holds huge values that must not count.
    eps = torch.tensor(
        [
            [[100.0, -100.0], [1.0, 2.0], [0.0, 3.0]],
            [[50.0, 50.0], [0.5, 0.5], [-1.0, 1.0]],
        ]
    )
    noise = torch.tensor(
        [
            [[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]],
            [[0.0, 0.0], [0.5, -0.5], [1.0, 1.0]],
        ]
    )
    return eps, noise


def test_window_errors_by_hand() -> None:
    eps, noise = _window_pair()
    # row 0: squares 1, 4, 0, 4 -> 9/4; row 1: squares 0, 1, 4, 0 -> 5/4.
    assert window_errors(eps, noise).tolist() == pytest.approx([9 / 4, 5 / 4])


def test_window_errors_ignore_the_first_state() -> None:
    eps, noise = _window_pair()
    before = window_errors(eps, noise)
    eps[:, 0] = torch.randn(2, 2) * 1e3
    noise[:, 0] = torch.randn(2, 2)
    assert torch.equal(window_errors(eps, noise), before)


def test_window_errors_see_every_later_state() -> None:
    eps, noise = _window_pair()
    before = window_errors(eps, noise)
    eps[1, 2, 1] += 1.0  # squared error of that entry goes 0 -> 1: row 1 mean + 1/4
    after = window_errors(eps, noise)
    assert after[0] == before[0]
    assert float(after[1] - before[1]) == pytest.approx(0.25)


def test_denoising_loss_is_mean_window_error() -> None:
    eps, noise = _window_pair()
    loss, stats = denoising_loss(eps, noise)
    assert float(loss) == pytest.approx((9 / 4 + 5 / 4) / 2)
    assert stats == {"loss": pytest.approx(7 / 4)}


# ------------------------------------------------------------------------------ diffusion DPO
def test_dpo_loss_matches_hand_formula() -> None:
    a, b, c, d, beta = (0.5, 0.2), (0.3, 0.4), (0.1, 0.6), (0.4, 0.1), 3.0
    loss, stats = diffusion_dpo_loss(_t(*a), _t(*b), _t(*c), _t(*d), beta)
    per_pair = [_hand_dpo(a[i], b[i], c[i], d[i], beta) for i in range(2)]
    assert float(loss) == pytest.approx(sum(per_pair) / 2, rel=1e-12)
    assert stats["loss"] == pytest.approx(sum(per_pair) / 2, rel=1e-12)


def test_dpo_stats_by_hand() -> None:
    # pair 0: d = (0.5-0.2)-(0.1-0.4) = 0.6  -> logit -0.9 (model ranks the loser higher)
    # pair 1: d = (0.2-0.4)-(0.6-0.1) = -0.7 -> logit +1.05 (model ranks the winner higher)
    beta = 3.0
    _, stats = diffusion_dpo_loss(_t(0.5, 0.2), _t(0.2, 0.4), _t(0.1, 0.6), _t(0.4, 0.1), beta)
    assert stats["implicit_accuracy"] == 0.5
    assert stats["reward_margin"] == pytest.approx((-0.9 + 1.05) / 2)
    assert stats["winner_gap"] == pytest.approx((0.3 - 0.2) / 2)
    assert stats["loser_gap"] == pytest.approx((-0.3 + 0.5) / 2)


def test_dpo_at_reference_is_log2_with_zero_accuracy() -> None:
    e = _t(0.3, 0.7)
    loss, stats = diffusion_dpo_loss(e, e, e * 2, e * 2, beta=5.0)
    assert float(loss) == pytest.approx(math.log(2))
    assert stats["implicit_accuracy"] == 0.0
    assert stats["reward_margin"] == 0.0


def test_dpo_gradient_signs_favour_lowering_winner_error() -> None:
    win, lose = _t(0.5, 0.2, grad=True), _t(0.1, 0.6, grad=True)
    ref_win, ref_lose = _t(0.3, 0.4, grad=True), _t(0.4, 0.1, grad=True)
    loss, _ = diffusion_dpo_loss(win, ref_win, lose, ref_lose, beta=2.0)
    loss.backward()
    assert torch.all(win.grad > 0)  # lowering the winner's error lowers the loss
    assert torch.all(lose.grad < 0)  # raising the loser's error lowers the loss
    # d loss / d a_i = (beta/2) * sigmoid(-z_i) / B with z_i the logit of pair i
    z = [-(2.0 / 2) * ((0.5 - 0.3) - (0.1 - 0.4)), -(2.0 / 2) * ((0.2 - 0.4) - (0.6 - 0.1))]
    want = [(1 / (1 + math.exp(zi))) / 2 for zi in z]
    assert win.grad.tolist() == pytest.approx(want, rel=1e-10)
    assert torch.allclose(ref_win.grad, -win.grad)


def test_dpo_sft_term_adds_the_winners_mean_error() -> None:
    a, b, c, d, beta = (0.5, 0.2), (0.3, 0.4), (0.1, 0.6), (0.4, 0.1), 3.0
    plain, _ = diffusion_dpo_loss(_t(*a), _t(*b), _t(*c), _t(*d), beta)
    loss, stats = diffusion_dpo_loss(_t(*a), _t(*b), _t(*c), _t(*d), beta, sft_weight=0.5)
    assert float(loss) == pytest.approx(float(plain) + 0.5 * (0.5 + 0.2) / 2, rel=1e-12)
    assert stats["dpo_loss"] == pytest.approx(float(plain), rel=1e-12)
    assert stats["sft_loss"] == pytest.approx(0.35, rel=1e-12)
    # The extra gradient on each winner error is sft_weight / B; the loser's is unchanged.
    win, lose = _t(*a, grad=True), _t(*c, grad=True)
    diffusion_dpo_loss(win, _t(*b), lose, _t(*d), beta)[0].backward()
    g_win, g_lose = win.grad.clone(), lose.grad.clone()
    win.grad, lose.grad = None, None
    diffusion_dpo_loss(win, _t(*b), lose, _t(*d), beta, sft_weight=0.5)[0].backward()
    assert (win.grad - g_win).tolist() == pytest.approx([0.25, 0.25], rel=1e-10)
    assert torch.equal(lose.grad, g_lose)
    with pytest.raises(ValueError, match="sft_weight"):
        diffusion_dpo_loss(win, _t(*b), lose, _t(*d), beta, sft_weight=-1.0)


def test_dpo_larger_beta_sharpens_loss() -> None:
    args = (_t(0.1), _t(0.3), _t(0.5), _t(0.2))  # winner already preferred: d = -0.5
    small, _ = diffusion_dpo_loss(*args, beta=1.0)
    large, _ = diffusion_dpo_loss(*args, beta=10.0)
    assert float(large) < float(small) < math.log(2)


# --------------------------------------------------------------------------- inverse dynamics
def test_inverse_dynamics_loss_is_mse() -> None:
    pred = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    target = torch.tensor([[0.0, 1.0], [0.5, -1.0]])
    loss, stats = inverse_dynamics_loss(pred, target)
    assert float(loss) == pytest.approx((1 + 4 + 0 + 9) / 4)
    assert stats["loss"] == pytest.approx(3.5)
