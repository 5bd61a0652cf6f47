"""The networks of offline DiME and LS: a Gaussian policy and an IQL-style critic.

Pure ``nn.Module``s: optimizers, target updates and checkpoints live in
:mod:`tora.dime.critic` and :mod:`tora.dime.offline`. Hidden layers are
Linear -> LayerNorm -> SiLU, as in the project's other networks (the DiME paper, App. C, uses
ELU with a LayerNorm + tanh after the first layer; both normalize the first layer's output,
which is what its authors found to stabilize learning).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from tora.errors import ShapeMismatchError
from tora.nn.layers import mlp

__all__ = ["Critic", "GaussianPolicy", "gaussian_log_prob", "mlp"]


class GaussianPolicy(nn.Module):
    """A diagonal Gaussian ``pi(a | s, c)`` whose mean lies in the action box.

    ``mean = low + (high - low) / 2 * (tanh(f_mu) + 1)``: the mean is squashed into the box
    ``[action_low, action_high]`` (the data's action range) as the supervised baselines'
    output is, but the distribution itself is a plain Gaussian, not a tanh-transformed one.
    That keeps ``log pi`` finite at the dataset's actions, many of which sit exactly on the
    box's faces (clipped actions), where a tanh-Gaussian's density needs ``atanh(+-1)``.
    Sampled actions are clipped to the box by the caller before they are scored.
    ``std = half_range * exp(log_std)`` with ``log_std`` squashed into
    ``[min_log_std, max_log_std]`` by a sigmoid, so the spread is relative to the box and
    can neither collapse nor explode.

    obs: ``(B, obs_dim)`` normalized observations; cond: ``(B, cond_dim)`` or None when
    ``cond_dim == 0`` (the "multi" policies take the trade-off ``alpha`` as ``cond``) ->
    ``(mean, std)``, each ``(B, act_dim)``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        hidden_dim: int = 256,
        depth: int = 2,
        cond_dim: int = 0,
        min_log_std: float = -5.0,
        max_log_std: float = 0.0,
    ) -> None:
        super().__init__()
        if not min_log_std < max_log_std:
            raise ValueError(f"need min_log_std < max_log_std, got {min_log_std}, {max_log_std}")
        self.obs_dim, self.act_dim, self.cond_dim = int(obs_dim), int(act_dim), int(cond_dim)
        self.min_log_std, self.max_log_std = float(min_log_std), float(max_log_std)
        self.body = mlp(self.obs_dim + self.cond_dim, 2 * self.act_dim, hidden_dim, depth)
        # Buffers so the bounds travel with the weights in the checkpoint and across devices.
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    def forward(
        self, obs: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cond_dim > 0:
            if cond is None or cond.shape[-1] != self.cond_dim:
                got = None if cond is None else tuple(cond.shape)
                raise ShapeMismatchError(f"expected conditioning (B, {self.cond_dim}), got {got}")
            obs = torch.cat([obs, cond], dim=-1)
        elif cond is not None and cond.shape[-1] != 0:
            raise ShapeMismatchError("this policy takes no conditioning input")
        raw_mean, raw_std = self.body(obs).chunk(2, dim=-1)
        half = (self.action_high - self.action_low) / 2
        mean = self.action_low + half * (torch.tanh(raw_mean) + 1)
        span = self.max_log_std - self.min_log_std
        log_std = self.min_log_std + span * torch.sigmoid(raw_std)
        return mean, half * log_std.exp()

    def clip(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions clipped to the box, as the environment would clip them."""
        return torch.maximum(torch.minimum(actions, self.action_high), self.action_low)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``log N(actions; mean, diag(std)^2)`` summed over action dimensions.

    actions ``(B, A)`` with mean, std ``(B, A)`` -> ``(B,)``; or actions ``(B, N, A)`` (``N``
    sampled actions per state) with mean, std ``(B, A)`` -> ``(B, N)``.
    """
    if actions.dim() == mean.dim() + 1:
        mean, std = mean.unsqueeze(1), std.unsqueeze(1)
    if actions.shape[-1] != mean.shape[-1]:
        raise ShapeMismatchError(
            f"actions {tuple(actions.shape)} do not match the policy's {tuple(mean.shape)}"
        )
    z = (actions - mean) / std
    per_dim = -0.5 * z.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)
    return per_dim.sum(dim=-1)


class Critic(nn.Module):
    """Twin ``Q(s, a)``, their slowly tracking target copy, and ``V(s)`` (IQL's critic).

    obs: ``(B, obs_dim)`` normalized observations; actions ``(B, act_dim)`` in environment
    units. :meth:`q_values` ``(B, 2)`` from the online twins; :meth:`target_q` ``(B,)`` the
    minimum of the target twins (what IQL's value loss and advantages use); :meth:`value`
    ``(B,)``. Actions ``(B, N, act_dim)`` with obs ``(B, obs_dim)`` give ``(B, N)`` from
    :meth:`target_q`: ``N`` actions scored per state, as DiME needs.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int = 256, depth: int = 2) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.q1 = mlp(self.obs_dim + self.act_dim, 1, hidden_dim, depth)
        self.q2 = mlp(self.obs_dim + self.act_dim, 1, hidden_dim, depth)
        self.v = mlp(self.obs_dim, 1, hidden_dim, depth)
        self.target = nn.ModuleList([copy.deepcopy(self.q1), copy.deepcopy(self.q2)])
        self.target.requires_grad_(False)

    @staticmethod
    def _inputs(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if actions.dim() == 3:  # (B, N, A): repeat each state for its N actions
            obs = obs.unsqueeze(1).expand(-1, actions.shape[1], -1)
        return torch.cat([obs, actions], dim=-1)

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = self._inputs(obs, actions)
        return torch.cat([self.q1(x), self.q2(x)], dim=-1)

    def target_q(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = self._inputs(obs, actions)
        return torch.minimum(self.target[0](x), self.target[1](x)).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)

    @torch.no_grad()
    def update_target(self, rate: float) -> None:
        """Polyak step ``target <- (1 - rate) target + rate online``."""
        for target, online in zip(self.target, (self.q1, self.q2), strict=True):
            for t, p in zip(target.parameters(), online.parameters(), strict=True):
                t.lerp_(p, rate)
