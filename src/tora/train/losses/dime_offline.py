"""Offline policy losses of LS (CRR-exp / AWAC) and DiME (BC / AWBC), as pure functions.

The offline case study of the DiME paper (seeds/003, Sec. 5.2 and 6.2) trades off two
objectives: the task return, through a critic learned from the data, and staying close to
the behaviour policy ``pi_b`` that produced the data, known only through its samples. The
trade-off ``alpha`` in ``[0, 1]`` is the weight on staying close: ``alpha = 1`` is behaviour
cloning for every method.

* LS (Eq. 10; Sec. 6.2's baseline): ``J = E_D[ exp(A(s, a) / beta) / Z_0 log pi(a|s) ]`` with
  ``beta = alpha / (1 - alpha)``: preference and temperature are tied, which is what lets the
  expectation run over the data's actions. It is CRR-exp's and AWAC's loss. ``Z_0 =
  E_D exp(A / beta)`` is a constant of the whole dataset, estimated here on the batch: the
  weights are ``B softmax_b(A_b / beta)``, mean 1 over the batch, finite for any ``beta``
  (``alpha = 0`` puts all the weight on the batch's best advantage).
* DiME (Eq. 11): ``J = (1 - alpha) E_s E_{a~pi_i}[ exp(Q(s, a) / eta) / Z_1(s) log pi(a|s) ]
  + alpha E_D[ log pi(a|s) ]``. The first term is the MPO/REPS improvement of the task,
  estimated with ``N`` actions sampled per state from the sampling policy ``pi_i``
  (:func:`tora.train.losses.dime.improvement_weights`), its temperature ``eta`` adapted by its own
  dual with a KL bound and independent of ``alpha``; the second is behaviour cloning
  (DiME (BC)). Both terms are scale-free in ``Q``, so ``alpha`` means the same whatever the
  reward's units, and one policy can learn every ``alpha`` at once ("multi": ``alpha`` per
  batch row).
* DiME (AWBC) (Sec. 6.2): the behaviour-cloning term weighted by ``exp(A(s, a))``, "exactly
  the CRR policy loss with a temperature of 1", normalized like LS's weights
  (``B softmax_b(A_b)``), which is LS's weight at ``beta = 1``.
* DiME over ``K`` reward objectives plus the data prior (:func:`offline_mo_dime_loss`, used
  by :mod:`tora.dime.mo`): the task term's improved policy becomes the preference-weighted
  mixture of ``K`` per-objective improved policies, each with its own temperature.

Shapes, for ``B`` dataset transitions and ``N`` sampled actions per state: ``data_log_probs``
``(B,)`` is ``log pi_theta`` of the dataset's actions; ``sampled_log_probs`` ``(B, N)`` and
``sampled_q`` ``(B, N)`` belong to the sampled actions; ``advantages`` ``(B,)``; trade-offs a
float or ``(B,)`` (one per row, for a trade-off-conditioned policy). Each loss returns
``(loss, stats)``; the temperature's dual is separate
(:func:`tora.train.losses.dime.temperature_dual`), because the trainer adapts ``eta`` with its own
step size.
"""

from __future__ import annotations

import torch

from tora.errors import InvalidWeightsError, ShapeMismatchError
from tora.train.losses.dime import improvement_weights, kl_from_weights, weighted_log_likelihood

__all__ = [
    "advantage_weights",
    "ls_temperature",
    "offline_dime_loss",
    "offline_ls_loss",
    "offline_mo_dime_loss",
    "prior_log_likelihood",
]

Stats = dict[str, float]

# alpha / (1 - alpha) below this is treated as 0: softmax(A / beta) is then the batch argmax.
_MIN_BETA = 1e-8


def advantage_weights(advantages: torch.Tensor, temperature: float) -> torch.Tensor:
    """``B softmax_b(A_b / beta)`` ``(B,)``: ``exp(A / beta) / Z_0`` with ``Z_0`` estimated on
    the batch, so the weights average 1 (Eq. 10). ``beta = inf`` gives all ones (behaviour
    cloning); ``beta = 0`` puts ``B`` on the batch's best advantage (split among ties)."""
    if advantages.dim() != 1:
        raise ShapeMismatchError(f"advantages must be (B,), got {tuple(advantages.shape)}")
    if not temperature >= 0:
        raise ValueError(f"the advantage temperature must be >= 0, got {temperature}")
    a = advantages.detach()
    batch = a.shape[0]
    if temperature == float("inf"):
        return torch.ones_like(a)
    if temperature < _MIN_BETA:
        best = (a == a.max()).to(a.dtype)
        return batch * best / best.sum()
    return batch * torch.softmax(a / temperature, dim=0)


def ls_temperature(alpha: float) -> float:
    """LS's advantage temperature ``beta = alpha / (1 - alpha)`` (Eq. 10): inf at alpha = 1."""
    _check_alpha(torch.tensor(alpha))
    return float("inf") if alpha >= 1 else alpha / (1.0 - alpha)


def prior_log_likelihood(data_log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``-E_D[ w log pi(a|s) ]`` over the batch, a scalar; ``weights`` ``(B,)`` detached."""
    if weights.shape != data_log_probs.shape or data_log_probs.dim() != 1:
        raise ShapeMismatchError(
            f"weights {tuple(weights.shape)} and data_log_probs {tuple(data_log_probs.shape)} "
            "must both be (B,)"
        )
    return -(weights.detach() * data_log_probs).mean()


def offline_ls_loss(
    data_log_probs: torch.Tensor, advantages: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, Stats]:
    """LS = CRR-exp / AWAC: ``-E_D[ B softmax_b(A_b / beta) log pi(a_b|s_b) ]``,
    ``beta = alpha / (1 - alpha)`` (Eq. 10, Sec. 6.2).

    Returns ``(loss, stats)``: ``loss`` and ``max_weight`` (the largest of the batch's
    weights, at most ``B``: how greedy the step is). The temperature is not a stat: it is set
    by ``alpha`` and infinite at ``alpha = 1``, which JSON histories cannot hold.
    """
    weights = advantage_weights(advantages, ls_temperature(alpha))
    loss = prior_log_likelihood(data_log_probs, weights)
    return loss, {"loss": float(loss.detach()), "max_weight": float(weights.max())}


def offline_dime_loss(
    sampled_log_probs: torch.Tensor,
    sampled_q: torch.Tensor,
    data_log_probs: torch.Tensor,
    tradeoffs: float | torch.Tensor,
    temperature: torch.Tensor,
    prior_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Stats]:
    """DiME offline (Eq. 11): ``(1 - alpha)`` task improvement ``+ alpha`` prior term.

    ``loss = -E_b[ (1 - alpha_b) sum_j w_bj log pi(a_bj|s_b) ] - E_b[ alpha_b v_b log
    pi(a_b|s_b) ]`` with ``w_bj = softmax_j(Q(s_b, a_bj) / eta)`` over the ``N`` sampled
    actions of state ``b`` and ``v_b`` the prior weights: all ones for DiME (BC),
    :func:`advantage_weights` at temperature 1 for DiME (AWBC).

    Args:
        sampled_log_probs: ``(B, N)`` ``log pi_theta`` of the sampled actions.
        sampled_q: ``(B, N)`` the task critic's ``Q`` of those actions.
        data_log_probs: ``(B,)`` ``log pi_theta`` of the dataset's actions.
        tradeoffs: ``alpha``, the weight on the prior: a float, or ``(B,)`` one per row.
        temperature: ``eta`` > 0, a scalar or ``(1,)`` tensor (detached here).
        prior_weights: ``(B,)`` ``v_b``; None for behaviour cloning (all ones).

    Returns:
        ``(loss, stats)``: ``loss``, ``task_loss`` and ``prior_loss`` (the two terms with
        their ``alpha`` factors), ``kl`` (the estimate of ``KL(q || pi_i)`` of the improved
        policy, to compare with the dual's bound) and ``temperature``.
    """
    if sampled_q.shape != sampled_log_probs.shape or sampled_q.dim() != 2:
        raise ShapeMismatchError(
            f"sampled_q {tuple(sampled_q.shape)} and sampled_log_probs "
            f"{tuple(sampled_log_probs.shape)} must both be (B, N)"
        )
    batch = sampled_q.shape[0]
    if data_log_probs.shape != (batch,):
        raise ShapeMismatchError(
            f"data_log_probs must be (B,) = ({batch},), got {tuple(data_log_probs.shape)}"
        )
    alpha = torch.as_tensor(tradeoffs, dtype=sampled_q.dtype, device=sampled_q.device)
    alpha = alpha.expand(batch) if alpha.dim() == 0 else alpha
    if alpha.shape != (batch,):
        raise ShapeMismatchError(f"tradeoffs must be a float or (B,) = ({batch},)")
    _check_alpha(alpha)
    eta = torch.as_tensor(temperature, dtype=sampled_q.dtype, device=sampled_q.device).reshape(1)
    weights = improvement_weights(sampled_q.unsqueeze(-1), eta)  # (B, N, 1)
    task = weighted_log_likelihood(sampled_log_probs, (1.0 - alpha).unsqueeze(-1) * weights[..., 0])
    prior_w = torch.ones_like(data_log_probs) if prior_weights is None else prior_weights
    prior = prior_log_likelihood(data_log_probs, alpha * prior_w)
    loss = task + prior
    stats = {
        "loss": float(loss.detach()),
        "task_loss": float(task.detach()),
        "prior_loss": float(prior.detach()),
        "kl": float(kl_from_weights(weights)[0]),
        "temperature": float(eta.detach()[0]),
    }
    return loss, stats


def _check_alpha(alpha: torch.Tensor) -> None:
    if not bool(torch.all(torch.isfinite(alpha) & (alpha >= 0) & (alpha <= 1))):
        raise InvalidWeightsError(
            f"trade-offs alpha must lie in [0, 1], got {alpha.reshape(-1)[:8].tolist()}"
        )


def offline_mo_dime_loss(
    sampled_log_probs: torch.Tensor,
    sampled_q: torch.Tensor,
    data_log_probs: torch.Tensor,
    preferences: torch.Tensor,
    temperatures: torch.Tensor,
    prior_weight: float,
) -> tuple[torch.Tensor, Stats]:
    """DiME over ``K`` reward objectives plus the data prior, one preference per row.

    ``loss = -(1 - beta) E_b[ sum_j (sum_k w_bk v_bjk) log pi(a_bj | s_b, w_b) ]
    - beta E_b[ log pi(a_b | s_b, w_b) ]`` with ``v_bjk = softmax_j(Q_k(s_b, a_bj) / eta_k)``
    the weights of objective ``k``'s improved policy (Eq. 38-39), ``w_b`` the row's preference
    over the objectives and ``beta`` the fixed weight of the behaviour-cloning prior. It is
    :func:`tora.train.losses.dime.dime_loss`'s projection with ``K + 1`` objectives and trade-offs
    ``((1 - beta) w_b, beta)``, the prior's improved policy being the data itself (Eq. 11):
    every ``v_k`` is normalized on its own, so ``w`` means the same whatever the objectives'
    reward scales. The temperatures' dual is separate, as for :func:`offline_dime_loss`.

    Args:
        sampled_log_probs: ``(B, N)`` ``log pi_theta`` of the sampled actions.
        sampled_q: ``(B, N, K)`` each objective's ``Q`` of those actions.
        data_log_probs: ``(B,)`` ``log pi_theta`` of the dataset's actions.
        preferences: ``(B, K)`` non-negative rows (they usually sum to 1).
        temperatures: ``(K,)`` positive ``eta_k`` (detached here).
        prior_weight: ``beta`` in ``[0, 1]``.

    Returns:
        ``(loss, stats)``: ``loss``, ``task_loss`` and ``prior_loss`` (with their factors),
        and per objective ``k`` ``kl_k`` (the estimate of ``KL(q_k || pi_i)``) and
        ``temperature_k``.
    """
    if sampled_q.dim() != 3 or sampled_q.shape[:2] != sampled_log_probs.shape:
        raise ShapeMismatchError(
            f"sampled_q {tuple(sampled_q.shape)} must be (B, N, K) with (B, N) = "
            f"{tuple(sampled_log_probs.shape)} of sampled_log_probs"
        )
    batch, _, k = sampled_q.shape
    if data_log_probs.shape != (batch,):
        raise ShapeMismatchError(
            f"data_log_probs must be (B,) = ({batch},), got {tuple(data_log_probs.shape)}"
        )
    if preferences.shape != (batch, k):
        raise ShapeMismatchError(
            f"preferences must be (B, K) = ({batch}, {k}), got {tuple(preferences.shape)}"
        )
    if not bool(torch.all(torch.isfinite(preferences) & (preferences >= 0))):
        raise InvalidWeightsError("preferences must be finite and non-negative")
    _check_alpha(torch.as_tensor(prior_weight))
    weights = improvement_weights(sampled_q, temperatures.reshape(-1))  # (B, N, K)
    mixed = (weights * preferences.detach().unsqueeze(1)).sum(dim=-1)  # (B, N)
    task = weighted_log_likelihood(sampled_log_probs, (1.0 - prior_weight) * mixed)
    prior = prior_log_likelihood(data_log_probs, torch.full_like(data_log_probs, prior_weight))
    loss = task + prior
    stats = {
        "loss": float(loss.detach()),
        "task_loss": float(task.detach()),
        "prior_loss": float(prior.detach()),
    }
    kls = kl_from_weights(weights)
    for i, eta in enumerate(temperatures.detach().reshape(-1).tolist()):
        stats[f"kl_{i}"] = float(kls[i])
        stats[f"temperature_{i}"] = float(eta)
    return loss, stats
