"""DiME and LS losses checked against hand computations on three sampled actions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tora.errors import InvalidWeightsError, ShapeMismatchError
from tora.train.losses.dime import (
    dime_loss,
    improvement_weights,
    kl_from_weights,
    ls_loss,
    temperature_dual,
    weighted_log_likelihood,
)

# One state, three sampled actions, two objectives: Q[a, k].
Q = [[1.0, -2.0], [2.0, 0.5], [3.0, -1.0]]
LOG_PROBS = [-0.5, -1.25, -2.0]


def _q(rows: list[list[list[float]]] | None = None) -> torch.Tensor:
    return torch.tensor([Q] if rows is None else rows, dtype=torch.float64)


def _log_probs(rows: list[list[float]] | None = None) -> torch.Tensor:
    values = [LOG_PROBS] if rows is None else rows
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def _t(*values: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def _softmax(values: list[float], temperature: float) -> list[float]:
    """exp(v / eta) / sum exp(v / eta), with math only."""
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def _dual(values: list[float], temperature: float, epsilon: float) -> float:
    """eta * (eps + log((1/N) sum exp(v / eta))), Eq. 45 for one state."""
    mean_exp = sum(math.exp(v / temperature) for v in values) / len(values)
    return temperature * (epsilon + math.log(mean_exp))


def _kl(weights: list[float]) -> float:
    """sum w log(N w): KL of the reweighted samples from the sampling policy."""
    return sum(w * math.log(len(weights) * w) for w in weights)


def _column(k: int) -> list[float]:
    return [row[k] for row in Q]


# ----------------------------------------------------------------------- building blocks
def test_improvement_weights_by_hand() -> None:
    weights = improvement_weights(_q(), _t(0.5, 2.0))
    assert weights.shape == (1, 3, 2)
    assert weights[0, :, 0].tolist() == pytest.approx(_softmax(_column(0), 0.5))
    assert weights[0, :, 1].tolist() == pytest.approx(_softmax(_column(1), 2.0))


def test_improvement_weights_stay_finite_for_huge_q_over_eta() -> None:
    # Q / eta = 1e5: a plain exp overflows, the softmax puts all weight on the best action.
    q = torch.tensor([[[1000.0], [999.0], [0.0]]], dtype=torch.float64)
    weights = improvement_weights(q, _t(0.01))
    assert weights[0, :, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_temperature_dual_by_hand() -> None:
    dual = temperature_dual(_q(), _t(0.5, 2.0), [0.1, 0.3])
    assert dual.tolist() == pytest.approx(
        [_dual(_column(0), 0.5, 0.1), _dual(_column(1), 2.0, 0.3)]
    )


def test_temperature_dual_gradient_is_bound_minus_kl() -> None:
    """d/d eta [eta eps + eta log mean exp(Q/eta)] = eps - KL(q || pi_i): the dual's gradient
    vanishes exactly when the improved policy meets the KL bound."""
    eta = _t(0.5, 2.0, grad=True)
    epsilons = [0.1, 0.3]
    temperature_dual(_q(), eta, epsilons).sum().backward()
    assert eta.grad is not None
    for k in range(2):
        kl = _kl(_softmax(_column(k), [0.5, 2.0][k]))
        assert float(eta.grad[k]) == pytest.approx(epsilons[k] - kl)


def test_temperature_dual_averages_states_inside_the_product() -> None:
    # Two states, one temperature per objective: eta * (eps + mean over states).
    q = _q([[[1.0], [2.0], [3.0]], [[0.0], [0.0], [4.0]]])
    dual = temperature_dual(q, _t(1.5), 0.2)
    by_hand = 1.5 * (
        0.2
        + 0.5 * math.log(sum(math.exp(v / 1.5) for v in [1.0, 2.0, 3.0]) / 3)
        + 0.5 * math.log(sum(math.exp(v / 1.5) for v in [0.0, 0.0, 4.0]) / 3)
    )
    assert float(dual[0]) == pytest.approx(by_hand)


def test_kl_from_weights_by_hand_and_its_limits() -> None:
    w = _softmax([1.0, 2.0, 3.0], 1.0)
    weights = torch.tensor([[[w[0]], [w[1]], [w[2]]]], dtype=torch.float64)
    assert float(kl_from_weights(weights)[0]) == pytest.approx(_kl(w))
    uniform = torch.full((1, 3, 1), 1 / 3, dtype=torch.float64)
    one_hot = torch.tensor([[[1.0], [0.0], [0.0]]], dtype=torch.float64)
    assert float(kl_from_weights(uniform)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(kl_from_weights(one_hot)[0]) == pytest.approx(math.log(3))


def test_weighted_log_likelihood_by_hand() -> None:
    weights = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    loss = weighted_log_likelihood(_log_probs(), weights)
    assert float(loss.detach()) == pytest.approx(-(0.2 * -0.5 + 0.3 * -1.25 + 0.5 * -2.0))


# ------------------------------------------------------------------------------- LS
def test_ls_loss_by_hand() -> None:
    alpha, eta, eps = 0.25, 1.5, 0.1
    scalar_q = [alpha * a + (1 - alpha) * b for a, b in Q]
    w = _softmax(scalar_q, eta)
    policy = -sum(wi * lp for wi, lp in zip(w, LOG_PROBS, strict=True))
    log_probs = _log_probs()
    loss, stats = ls_loss(log_probs, _q(), _t(alpha, 1 - alpha), torch.tensor(eta), eps)
    assert float(loss.detach()) == pytest.approx(policy + _dual(scalar_q, eta, eps))
    assert stats["policy_loss"] == pytest.approx(policy)
    assert stats["dual_loss"] == pytest.approx(_dual(scalar_q, eta, eps))
    assert stats["temperature"] == pytest.approx(eta)
    assert stats["kl"] == pytest.approx(_kl(w))
    loss.backward()
    # Only the log-likelihood reaches the policy: d loss / d log pi(a) = -w(a).
    assert log_probs.grad is not None
    assert log_probs.grad[0].tolist() == pytest.approx([-wi for wi in w])


def test_ls_weights_depend_on_the_scale_of_q() -> None:
    """The scalarized Q mixes the objectives' scales: multiplying Q_2 by 10 moves LS's target
    even at a fixed trade-off (the paper's argument against LS, Sec. 3.2)."""
    tradeoffs, eta = _t(0.5, 0.5), torch.tensor(1.0)
    _, base = ls_loss(_log_probs(), _q(), tradeoffs, eta, 0.1)
    scaled = _q() * torch.tensor([1.0, 10.0], dtype=torch.float64)
    _, rescaled = ls_loss(_log_probs(), scaled, tradeoffs, eta, 0.1)
    assert rescaled["policy_loss"] != pytest.approx(base["policy_loss"])


# ------------------------------------------------------------------------------- DiME
def test_dime_loss_by_hand() -> None:
    alpha, etas, epsilons = 0.25, (0.5, 2.0), (0.1, 0.3)
    w1, w2 = _softmax(_column(0), etas[0]), _softmax(_column(1), etas[1])
    mixed = [alpha * a + (1 - alpha) * b for a, b in zip(w1, w2, strict=True)]
    # -(alpha E_q1 log pi + (1 - alpha) E_q2 log pi), the paper's Eq. 51 for K = 2.
    policy = -sum(m * lp for m, lp in zip(mixed, LOG_PROBS, strict=True))
    duals = _dual(_column(0), etas[0], epsilons[0]) + _dual(_column(1), etas[1], epsilons[1])
    log_probs = _log_probs()
    eta = _t(*etas, grad=True)
    loss, stats = dime_loss(log_probs, _q(), _t(alpha, 1 - alpha), eta, epsilons)
    assert float(loss.detach()) == pytest.approx(policy + duals)
    assert stats["policy_loss"] == pytest.approx(policy)
    assert stats["dual_loss"] == pytest.approx(duals)
    assert stats["temperature_0"] == pytest.approx(0.5)
    assert stats["temperature_1"] == pytest.approx(2.0)
    assert stats["kl_0"] == pytest.approx(_kl(w1))
    assert stats["kl_1"] == pytest.approx(_kl(w2))
    loss.backward()
    assert log_probs.grad is not None and eta.grad is not None
    assert log_probs.grad[0].tolist() == pytest.approx([-m for m in mixed])
    # The temperatures learn from their duals only, not through the weights.
    assert eta.grad.tolist() == pytest.approx([epsilons[0] - _kl(w1), epsilons[1] - _kl(w2)])


def test_dime_loss_per_state_tradeoffs_and_temperatures() -> None:
    """Two states with their own trade-off and temperatures (a trade-off-conditioned batch):
    the loss is the mean of the two states' hand-computed losses."""
    q_rows = [Q, [[0.0, 1.0], [1.0, 0.0], [-1.0, 2.0]]]
    lp_rows = [LOG_PROBS, [-1.0, -0.75, -3.0]]
    alphas, etas, eps = [0.25, 0.9], [[0.5, 2.0], [1.0, 0.25]], 0.2
    policy, dual = 0.0, 0.0
    for q, lp, alpha, eta in zip(q_rows, lp_rows, alphas, etas, strict=True):
        w1 = _softmax([r[0] for r in q], eta[0])
        w2 = _softmax([r[1] for r in q], eta[1])
        mixed = [alpha * a + (1 - alpha) * b for a, b in zip(w1, w2, strict=True)]
        policy -= sum(m * x for m, x in zip(mixed, lp, strict=True)) / 2
        dual += (_dual([r[0] for r in q], eta[0], eps) + _dual([r[1] for r in q], eta[1], eps)) / 2
    tradeoffs = torch.tensor([[a, 1 - a] for a in alphas], dtype=torch.float64)
    temperatures = torch.tensor(etas, dtype=torch.float64)
    loss, stats = dime_loss(_log_probs(lp_rows), _q(q_rows), tradeoffs, temperatures, eps)
    assert float(loss.detach()) == pytest.approx(policy + dual)
    assert stats["temperature_1"] == pytest.approx((2.0 + 0.25) / 2)


def test_dime_with_one_hot_tradeoff_is_single_objective_improvement() -> None:
    """alpha = (1, 0) distils q_1 alone: the same policy loss as LS on Q_1 alone."""
    tradeoffs, temperatures = _t(1.0, 0.0), _t(0.7, 3.0)
    _, dime = dime_loss(_log_probs(), _q(), tradeoffs, temperatures, 0.1)
    _, ls = ls_loss(_log_probs(), _q(), tradeoffs, torch.tensor(0.7), 0.1)
    assert dime["policy_loss"] == pytest.approx(ls["policy_loss"])
    assert dime["kl_0"] == pytest.approx(ls["kl"])


def test_dime_is_invariant_to_the_scale_of_one_objective() -> None:
    """Scaling Q_2 by 10 and its temperature by 10 (what the KL-bounded dual does) leaves
    DiME's weights unchanged: the trade-off keeps its meaning whatever the reward scales."""
    tradeoffs = _t(0.5, 0.5)
    _, base = dime_loss(_log_probs(), _q(), tradeoffs, _t(0.5, 2.0), 0.1)
    scaled = _q() * torch.tensor([1.0, 10.0], dtype=torch.float64)
    _, rescaled = dime_loss(_log_probs(), scaled, tradeoffs, _t(0.5, 20.0), 0.1)
    assert rescaled["policy_loss"] == pytest.approx(base["policy_loss"])
    assert rescaled["kl_1"] == pytest.approx(base["kl_1"])


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("loss_fn", ["ls", "dime"])
def test_losses_reject_mismatched_shapes(loss_fn: str) -> None:
    fn, eta = (ls_loss, torch.tensor(1.0)) if loss_fn == "ls" else (dime_loss, _t(1.0, 1.0))
    with pytest.raises(ShapeMismatchError, match="log_probs"):
        fn(_log_probs([[0.0, 0.0]]), _q(), _t(0.5, 0.5), eta, 0.1)
    with pytest.raises(ShapeMismatchError, match="q_values"):
        fn(_log_probs(), _q()[0], _t(0.5, 0.5), eta, 0.1)
    with pytest.raises(ShapeMismatchError, match="tradeoffs"):
        fn(_log_probs(), _q(), _t(0.2, 0.3, 0.5), eta, 0.1)


def test_dime_rejects_wrong_temperature_and_bound_counts() -> None:
    with pytest.raises(ShapeMismatchError, match="temperatures"):
        dime_loss(_log_probs(), _q(), _t(0.5, 0.5), _t(1.0, 1.0, 1.0), 0.1)
    with pytest.raises(ShapeMismatchError, match="KL bounds"):
        dime_loss(_log_probs(), _q(), _t(0.5, 0.5), _t(1.0, 1.0), [0.1, 0.2, 0.3])


def test_losses_reject_non_positive_temperatures_and_negative_tradeoffs() -> None:
    with pytest.raises(ValueError, match="positive"):
        dime_loss(_log_probs(), _q(), _t(0.5, 0.5), _t(1.0, 0.0), 0.1)
    with pytest.raises(ValueError, match="positive"):
        ls_loss(_log_probs(), _q(), _t(0.5, 0.5), torch.tensor(-1.0), 0.1)
    with pytest.raises(InvalidWeightsError, match="non-negative"):
        dime_loss(_log_probs(), _q(), _t(1.5, -0.5), _t(1.0, 1.0), 0.1)
    with pytest.raises(InvalidWeightsError, match="non-negative"):
        ls_loss(_log_probs(), _q(), _t(float("nan"), 0.5), torch.tensor(1.0), 0.1)


def test_losses_match_in_float32() -> None:
    """The solver trains in float32: the same numbers as the float64 hand computations."""
    args = (_t(0.3, 0.7), _t(0.5, 2.0), 0.1)
    loss64, _ = dime_loss(_log_probs(), _q(), *args)
    loss32, _ = dime_loss(
        _log_probs().float(), _q().float(), args[0].float(), args[1].float(), args[2]
    )
    assert float(loss32.detach()) == pytest.approx(float(loss64.detach()), rel=1e-5)
    assert np.isfinite(float(loss32.detach()))
