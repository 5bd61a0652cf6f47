"""DDPM and DDIM sampling of state windows with the current state inpainted.

The pipeline is a short loop: start from noise, and at each step ask ``eps_fn`` for the noise
prediction, take one sampler step, then overwrite the first state with the current
observation (inpainting, as Diffuser does: the planner never generates where it already is).
``eps_fn`` is any callable (x, t) -> eps, e.g. a :class:`~tora.diffusion.compose.ComposedDenoiser`
with its weights bound, so guidance or composition plugs in without subclassing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from tora.diffusion.schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SamplerConfig:
    """How plans are sampled."""

    method: Literal["ddim", "ddpm"] = "ddim"
    """"ddim" (deterministic with eta=0, few steps) or "ddpm" (ancestral, every step)."""
    steps: int = 10
    """DDIM steps (ignored by DDPM, which takes every training step)."""
    eta: float = 0.0
    """DDIM stochasticity: 0 is deterministic, 1 matches DDPM's variance."""
    clip_x0: float = 5.0
    """Clip the predicted clean window to +-this many standard deviations (0 disables)."""


def ddim_timesteps(num_train_steps: int, steps: int) -> list[int]:
    """Evenly spaced steps from the noisiest down to 0, ``steps`` of them."""
    steps = max(1, min(steps, num_train_steps))
    ts = torch.linspace(num_train_steps - 1, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


def _predict_x0(
    x: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor, clip: float
) -> torch.Tensor:
    # Scalar coefficients in float64: 1 - abar near t = 0 loses digits in float32.
    a = float(abar)
    x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
    return x0.clamp(-clip, clip) if clip > 0 else x0


def ddim_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    abar_t: torch.Tensor,
    abar_prev: torch.Tensor,
    eta: float,
    clip: float,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    """One DDIM update x_t -> x_prev (Song et al. 2021, Eq. 12). ``abar_t``, ``abar_prev``:
    scalar tensors or floats (coefficients are computed in float64)."""
    a_t, a_prev = float(abar_t), float(abar_prev)
    x0 = _predict_x0(x, eps, abar_t, clip)
    # Recompute eps from the (possibly clipped) x0 so the update stays self-consistent.
    eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
    out = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
    if noise is not None and eta > 0:
        out = out + sigma * noise
    return out


def ddpm_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    schedule: NoiseSchedule,
    clip: float,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    """One ancestral step from the posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eq. 7)."""
    # Coefficients in float64, cast once: 1 - abar_t near t = 0 loses digits in float32.
    abar = schedule.alphas_cumprod
    abar_t = abar[t]
    abar_prev = abar[t - 1] if t > 0 else torch.ones((), dtype=abar.dtype)
    beta_t = schedule.betas[t]
    coef_x0 = float(abar_prev.sqrt() * beta_t / (1 - abar_t))
    coef_xt = float(schedule.alphas[t].sqrt() * (1 - abar_prev) / (1 - abar_t))
    x0 = _predict_x0(x, eps, abar_t, clip)
    mean = coef_x0 * x0 + coef_xt * x
    if t == 0 or noise is None:
        return mean
    std = float((beta_t * (1 - abar_prev) / (1 - abar_t)).sqrt())
    return mean + std * noise


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    first_state: torch.Tensor,
    config: SamplerConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample windows (B, H, D) whose first state is fixed to ``first_state`` (B, D).

    With the same generator state the result is the same, batch for batch.
    """
    device, dtype = first_state.device, first_state.dtype
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    x[:, 0] = first_state
    if config.method == "ddpm":
        steps = list(range(schedule.num_steps - 1, -1, -1))
    elif config.method == "ddim":
        steps = ddim_timesteps(schedule.num_steps, config.steps)
    else:
        raise ValueError(f"unknown sampler {config.method!r}; choose 'ddim' or 'ddpm'")
    abars = schedule.alphas_cumprod  # float64 on the CPU: step coefficients, not data
    for i, t in enumerate(steps):
        t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = eps_fn(x, t_batch)
        stochastic = config.method == "ddpm" or config.eta > 0
        noise = (
            torch.randn(shape, generator=generator, device=device, dtype=dtype)
            if stochastic
            else None
        )
        if config.method == "ddpm":
            x = ddpm_step(x, eps, t, schedule, config.clip_x0, noise)
        else:
            prev = abars[steps[i + 1]] if i + 1 < len(steps) else torch.ones((), dtype=abars.dtype)
            x = ddim_step(x, eps, abars[t], prev, config.eta, config.clip_x0, noise)
        x[:, 0] = first_state
    return x
