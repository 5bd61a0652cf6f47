"""Policy-improvement losses of DiME and of linear scalarization, as pure functions.

Both follow the improvement/projection (E-step/M-step) scheme of the DiME paper (Abdolmaleki
et al., "On Multi-Objective Policy Optimization as a Tool for Reinforcement Learning: Case
Studies in Offline RL and Finetuning", seeds/003; equation numbers below are that paper's):

* Improvement: a non-parametric policy ``q(a|s) ∝ pi_i(a|s) exp(Q(s, a) / eta)`` (Eq. 38-39)
  whose temperature ``eta`` solves the dual of a KL bound ``KL(q || pi_i) <= eps``, i.e.
  minimizes ``eta * (eps + E_s log E_{a~pi_i} exp(Q(s, a) / eta))`` (Eq. 45).
* Projection: fit the parametric policy to ``q`` by weighted maximum likelihood (Eq. 46-51).

With ``N`` actions sampled per state from the current policy ``pi_i``, ``q`` is represented by
self-normalized weights on those actions, ``softmax_a(Q(s, a) / eta)``; the softmax's
denominator is the sample estimate of ``Z(s)`` (Eq. 39, "In practice" of App. B.3).

The two methods differ only in where the trade-off ``alpha`` enters (Table 1):

* linear scalarization (LS) scalarizes first, ``Q = sum_k alpha_k Q_k``, and has one improved
  policy with one temperature (:func:`ls_loss`);
* DiME improves once per objective, ``q_k ∝ pi_i exp(Q_k / eta_k)`` with ``eta_k`` independent
  of ``alpha``, and projects onto the ``alpha``-weighted mixture of the ``q_k``:
  ``min_theta sum_k alpha_k KL(q_k || pi_theta)``, i.e. maximize
  ``E_s sum_a [sum_k alpha_k w_k(s, a)] log pi_theta(a|s)`` (Eq. 3, 46-51;
  :func:`dime_loss`).

Shapes, for ``B`` states, ``N`` sampled actions per state and ``K`` objectives:
``log_probs`` ``(B, N)`` is ``log pi_theta`` of the sampled actions (the only input that
carries the policy's gradient); ``q_values`` ``(B, N, K)``; trade-offs ``(K,)``, or ``(B, K)``
for one trade-off per state (what a trade-off-conditioned policy needs); temperatures ``(K,)``
or ``(B, K)``. Every loss returns ``(loss, stats)``: a scalar tensor to minimize and a dict of
floats worth logging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tora.errors import InvalidWeightsError, ShapeMismatchError

__all__ = [
    "dime_loss",
    "improvement_weights",
    "kl_from_weights",
    "ls_loss",
    "temperature_dual",
    "weighted_log_likelihood",
]

Stats = dict[str, float]
Bound = float | Sequence[float] | torch.Tensor


def improvement_weights(q_values: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """Weights of the improved policies on the sampled actions, ``(B, N, K)`` (Eq. 38-39).

    ``w_k(s, a) = exp(Q_k(s, a) / eta_k) / sum_a' exp(Q_k(s, a') / eta_k)``: the actions were
    drawn from ``pi_i``, so ``q_k ∝ pi_i exp(Q_k / eta_k)`` reweights them by the exponential
    term alone, normalized per state and objective. A softmax rather than ``exp`` and a sum,
    because ``Q / eta`` reaches hundreds when ``eta`` becomes small. The result is a constant
    target of the projection: no gradient flows into ``Q`` or ``eta`` through it.
    """
    _check_q(q_values)
    eta = _per_state(temperatures, q_values, "temperatures")
    return torch.softmax(q_values.detach() / eta.detach(), dim=1)


def temperature_dual(
    q_values: torch.Tensor, temperatures: torch.Tensor, epsilons: Bound
) -> torch.Tensor:
    """The convex dual of each objective's KL-bounded improvement, ``(K,)`` (Eq. 45).

    ``g(eta_k) = eta_k * (eps_k + E_s log (1/N) sum_a exp(Q_k(s, a) / eta_k))``. Minimizing
    it over ``eta_k > 0`` gives the temperature at which ``KL(q_k || pi_i)`` meets the bound
    ``eps_k`` on average over states: a tighter bound gives a larger ``eta``, a more cautious
    step. ``Q`` is detached, so only ``temperatures`` receive a gradient. With one temperature
    per state (``(B, K)``), ``eta`` moves inside the state average, which for ``(K,)`` is the
    same number.
    """
    _check_q(q_values)
    eta = _per_state(temperatures, q_values, "temperatures")  # (B, 1, K)
    eps = _bound(epsilons, q_values)
    num_actions = q_values.shape[1]
    log_mean_exp = torch.logsumexp(q_values.detach() / eta, dim=1) - math.log(num_actions)
    return (eta[:, 0, :] * (eps + log_mean_exp)).mean(dim=0)


def kl_from_weights(weights: torch.Tensor) -> torch.Tensor:
    """Sample estimate of ``KL(q || pi_i)`` per objective, ``(K,)``, from weights ``(B, N, K)``.

    With actions drawn from ``pi_i``, ``q(a) / pi_i(a) ≈ N w(a)``, so
    ``KL = E_q log(q / pi_i) ≈ sum_a w(a) log(N w(a))``, averaged over states. It is 0 for
    uniform weights and at most ``log N`` when all the weight sits on one action, so it tells
    whether the temperature has met the bound ``eps``.
    """
    num_actions = weights.shape[1]
    per_state = torch.xlogy(weights, weights * num_actions).sum(dim=1)  # (B, K)
    return per_state.mean(dim=0)


def weighted_log_likelihood(log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Projection loss ``-E_s sum_a w(s, a) log pi_theta(a|s)`` (Eq. 47, 51), a scalar.

    ``weights`` ``(B, N)`` sum to 1 over actions, so this is the cross-entropy from the
    non-parametric target to the policy, up to the target's entropy, which does not depend on
    ``theta``.
    """
    if weights.shape != log_probs.shape:
        raise ShapeMismatchError(
            f"weights {tuple(weights.shape)} must match log_probs {tuple(log_probs.shape)}"
        )
    return -(weights.detach() * log_probs).sum(dim=1).mean()


def ls_loss(
    log_probs: torch.Tensor,
    q_values: torch.Tensor,
    tradeoffs: torch.Tensor,
    temperature: torch.Tensor,
    epsilon: float | torch.Tensor,
) -> tuple[torch.Tensor, Stats]:
    """Linear scalarization: one improved policy for the scalarized ``Q`` (Table 1, LS row).

    ``q(a|s) ∝ pi_i(a|s) exp(sum_k alpha_k Q_k(s, a) / eta)``, fitted by weighted maximum
    likelihood, with ``eta`` from the dual of ``KL(q || pi_i) <= eps`` (Eq. 45 applied to the
    scalarized ``Q``): the same improvement operator as DiME's, so that the two methods differ
    only in their variational decomposition (Sec. 4.1). The scales of the ``Q_k`` leak into
    the trade-off here, and on a concave front the scalarized ``Q`` peaks at the front's ends.

    Args:
        log_probs: ``(B, N)`` ``log pi_theta`` of the sampled actions.
        q_values: ``(B, N, K)`` per-objective values of those actions.
        tradeoffs: ``(K,)`` or ``(B, K)`` non-negative weights ``alpha_k`` (the paper's sum to
            1; only their ratios move the maximizer of the scalarized ``Q``).
        temperature: the positive temperature ``eta``: a scalar, ``(1,)`` or ``(B, 1)``
            tensor.
        epsilon: the KL bound of the improvement step.

    Returns:
        ``(loss, stats)``. ``loss`` is the projection loss plus the temperature's dual; the
        two share no parameters (the weights use a detached ``eta``), so one optimizer step on
        their sum updates the policy and the temperature together. ``stats``: ``loss``,
        ``policy_loss``, ``dual_loss``, ``temperature`` (its mean) and ``kl`` (the estimate of
        ``KL(q || pi_i)``, to compare with ``epsilon``).
    """
    _check_log_probs(log_probs, q_values)
    alpha = _per_state(tradeoffs, q_values, "tradeoffs")  # (B or 1, 1, K)
    _check_tradeoffs(alpha)
    scalar_q = (q_values * alpha).sum(dim=-1, keepdim=True)  # (B, N, 1)
    eta = temperature if temperature.dim() == 2 else temperature.reshape(-1)
    _check_positive(eta, "temperature")
    weights = improvement_weights(scalar_q, eta)
    policy_loss = weighted_log_likelihood(log_probs, weights[..., 0])
    dual = temperature_dual(scalar_q, eta, epsilon)
    loss = policy_loss + dual.sum()
    stats = {
        "loss": float(loss.detach()),
        "policy_loss": float(policy_loss.detach()),
        "dual_loss": float(dual.detach().sum()),
        "temperature": float(eta.detach().mean()),
        "kl": float(kl_from_weights(weights)[0]),
    }
    return loss, stats


def dime_loss(
    log_probs: torch.Tensor,
    q_values: torch.Tensor,
    tradeoffs: torch.Tensor,
    temperatures: torch.Tensor,
    epsilons: Bound,
) -> tuple[torch.Tensor, Stats]:
    """DiME: distil the ``alpha``-weighted mixture of per-objective improved policies (Eq. 51).

    ``q_k(a|s) ∝ pi_i(a|s) exp(Q_k(s, a) / eta_k)`` per objective, each ``eta_k`` from its own
    dual with bound ``eps_k`` (Eq. 45) and independent of the trade-off; then
    ``J(theta) = E_s E_{a~pi_i} [sum_k alpha_k exp(Q_k / eta_k) / Z_k(s)] log pi_theta(a|s)``,
    the bracket estimated by the mixed weights ``sum_k alpha_k w_k(s, a)``. Each ``w_k`` is
    normalized on its own, so the size of ``Q_k`` never competes with the other objectives:
    the trade-off means the same thing whatever the reward scales.

    For two objectives with the paper's scalar trade-off this is
    ``-(alpha E_{q_1} log pi + (1 - alpha) E_{q_2} log pi)`` with ``tradeoffs = (alpha,
    1 - alpha)``; the offline case study (Eq. 11) puts its ``alpha`` on the second objective,
    the behaviour prior, i.e. ``tradeoffs = (1 - alpha, alpha)``.

    Args:
        log_probs: ``(B, N)`` ``log pi_theta`` of the sampled actions.
        q_values: ``(B, N, K)`` per-objective values of those actions.
        tradeoffs: ``(K,)`` or ``(B, K)`` non-negative weights ``alpha_k``. They usually sum
            to 1, but need not: the paper's humanoid runs fix ``alpha_task = 1`` and vary the
            penalty's weight; only their ratios move the projection's minimizer.
        temperatures: ``(K,)`` or ``(B, K)`` positive temperatures ``eta_k``.
        epsilons: KL bound per objective: a float for all, or ``K`` values.

    Returns:
        ``(loss, stats)``. ``loss`` is the projection loss plus the sum of the ``K`` duals
        (decoupled as in :func:`ls_loss`). ``stats``: ``loss``, ``policy_loss``,
        ``dual_loss``, and per objective ``k`` (0-based) ``temperature_k`` (mean over rows)
        and ``kl_k`` (the estimate of ``KL(q_k || pi_i)``).
    """
    _check_log_probs(log_probs, q_values)
    alpha = _per_state(tradeoffs, q_values, "tradeoffs")  # (B or 1, 1, K)
    _check_tradeoffs(alpha)
    _check_positive(temperatures, "temperatures")
    weights = improvement_weights(q_values, temperatures)  # (B, N, K)
    mixed = (weights * alpha).sum(dim=-1)  # (B, N)
    policy_loss = weighted_log_likelihood(log_probs, mixed)
    dual = temperature_dual(q_values, temperatures, epsilons)  # (K,)
    loss = policy_loss + dual.sum()
    eta = _per_state(temperatures, q_values, "temperatures").detach()
    kls = kl_from_weights(weights)
    stats = {
        "loss": float(loss.detach()),
        "policy_loss": float(policy_loss.detach()),
        "dual_loss": float(dual.detach().sum()),
    }
    for k in range(q_values.shape[-1]):
        stats[f"temperature_{k}"] = float(eta[..., k].mean())
        stats[f"kl_{k}"] = float(kls[k])
    return loss, stats


# --------------------------------------------------------------------------- input checks


def _check_q(q_values: torch.Tensor) -> None:
    if q_values.dim() != 3:
        raise ShapeMismatchError(
            f"q_values must be (B states, N actions, K objectives), got {tuple(q_values.shape)}"
        )


def _check_log_probs(log_probs: torch.Tensor, q_values: torch.Tensor) -> None:
    _check_q(q_values)
    if log_probs.shape != q_values.shape[:2]:
        raise ShapeMismatchError(
            f"log_probs {tuple(log_probs.shape)} must be (B, N) = {tuple(q_values.shape[:2])}, "
            "one log-probability per sampled action"
        )


def _check_positive(temperatures: torch.Tensor, name: str) -> None:
    # A zero or negative temperature turns the softmax into nonsense without any error, and
    # the dual's gradient cannot bring it back; callers keep eta positive through a log or
    # softplus parametrization.
    if not bool(torch.all(temperatures > 0)):
        raise ValueError(
            f"{name} must be positive (parametrize them as exp(log_eta)), got "
            f"{temperatures.detach().reshape(-1)[:8].tolist()}"
        )


def _check_tradeoffs(alpha: torch.Tensor) -> None:
    if not bool(torch.all(torch.isfinite(alpha) & (alpha >= 0))):
        raise InvalidWeightsError(
            f"trade-offs must be finite and non-negative, got {alpha.reshape(-1)[:8].tolist()}"
        )


def _per_state(values: torch.Tensor, q_values: torch.Tensor, name: str) -> torch.Tensor:
    """``values`` given per objective ``(K,)`` or per state and objective ``(B, K)``, reshaped
    to broadcast against ``q_values`` ``(B, N, K)`` as ``(1 or B, 1, K)``."""
    batch, _, k = q_values.shape
    if values.dim() == 1 and values.shape[0] == k:
        return values.reshape(1, 1, k)
    if values.dim() == 2 and values.shape == (batch, k):
        return values.reshape(batch, 1, k)
    raise ShapeMismatchError(
        f"{name} must be (K,) = ({k},) or (B, K) = ({batch}, {k}), got {tuple(values.shape)}"
    )


def _bound(epsilons: Bound, q_values: torch.Tensor) -> torch.Tensor:
    """KL bounds as a ``(K,)`` tensor on ``q_values``' device; a single number serves all."""
    k = q_values.shape[-1]
    eps = torch.as_tensor(epsilons, dtype=q_values.dtype, device=q_values.device).reshape(-1)
    if eps.shape[0] == 1:
        eps = eps.expand(k)
    if eps.shape[0] != k:
        raise ShapeMismatchError(f"got {eps.shape[0]} KL bounds for {k} objectives")
    return eps


def tradeoff_loss(
    logit: torch.Tensor, mean_return: float, threshold: float
) -> tuple[torch.Tensor, Stats]:
    """``J = alpha (R - c) / max(|c|, 1)`` with ``alpha = sigmoid(logit)`` (Sec. 6.3).

    Its gradient in ``logit`` has the sign of ``R - c``: descending it lowers ``alpha`` (less
    weight on the teacher) when the return exceeds the threshold and raises it when it falls
    short. Dividing by ``|c|`` makes the step independent of the reward's units.
    """
    alpha = torch.sigmoid(logit)
    loss = alpha * (mean_return - threshold) / max(abs(threshold), 1.0)
    return loss, {"alpha": float(alpha.detach()), "return_gap": mean_return - threshold}
