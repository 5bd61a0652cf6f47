"""Direct policies a = pi(s, c): the network of the supervised baselines (BC, BC(P), MORvS(P)).

One MLP serves all three: it reads the normalized observation and, optionally, a conditioning
vector ``c`` (the preference for BC(P); the preference and a return target for MORvS(P)), and
squashes its output into the action box seen in the data, exactly as the inverse dynamics
model does, so a policy can never ask the environment for an action outside that range.
"""

from __future__ import annotations

import torch
from torch import nn

from tora.nn.layers import mlp


class MLPPolicy(nn.Module):
    """a = low + (high - low) / 2 * (tanh(f([s, c])) + 1), f an MLP.

    obs: (B, obs_dim) normalized observations; cond: (B, cond_dim), or None when
    ``cond_dim == 0`` -> (B, act_dim) actions in [action_low, action_high].

    Hidden layers are Linear -> LayerNorm -> SiLU, as in the denoisers and the inverse
    dynamics model, so the baselines get the same kind of network as TORA's parts.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        hidden_dim: int = 256,
        depth: int = 3,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.cond_dim = int(obs_dim), int(act_dim), int(cond_dim)
        self.body = mlp(self.obs_dim + self.cond_dim, self.act_dim, hidden_dim, depth)
        # Buffers so the bounds travel with the weights in the checkpoint and across devices.
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim > 0:
            if cond is None or cond.shape[-1] != self.cond_dim:
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"expected conditioning (B, {self.cond_dim}), got {got}")
            obs = torch.cat([obs, cond], dim=-1)
        elif cond is not None and cond.shape[-1] != 0:
            raise ValueError("this policy takes no conditioning input")
        raw = self.body(obs)
        half = (self.action_high - self.action_low) / 2
        return self.action_low + half * (torch.tanh(raw) + 1)
