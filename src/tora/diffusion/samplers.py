"""DDPM and DDIM sampling of state windows with the current state inpainted.

The pipeline is a short loop: start from noise, and at each step ask ``eps_fn`` for the noise
prediction, take one sampler step, then overwrite the first state with the current
observation (inpainting, as Diffuser does: the planner never generates where it already is).
``eps_fn`` is any callable (x, t) -> eps, e.g. a :class:`~tora.diffusion.compose.ComposedDenoiser`
with its weights bound, so guidance or composition plugs in without subclassing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from tora.diffusion.schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SamplerConfig:
    """How plans are sampled.

    Defaults (BENCHMARKS.md section 5, "Sampler and DPO settings"): on MO-HalfCheetah
    validation data, eta 1 from abar >= 1e-3 planned next states with error 0.058 against
    0.126 for the former default (eta 0 from the last step), on each of three seeds."""

    LEGACY: ClassVar[dict[str, Any]] = {"eta": 0.0, "start_abar": 0.0}
    """The values of runs and suite cells saved before these fields existed or changed."""

    method: Literal["ddim", "ddpm"] = "ddim"
    """"ddim" (deterministic with eta=0, few steps) or "ddpm" (ancestral, every step)."""
    steps: int = 10
    """DDIM steps (ignored by DDPM, which takes every training step)."""
    eta: float = 1.0
    """DDIM stochasticity: 0 is deterministic, 1 matches DDPM's variance. Deterministic
    sampling carries the network's error of every step into the plan; eta 1 lets the noise
    of later steps correct it."""
    clip_x0: float = 5.0
    """Clip the predicted clean window to +-this many standard deviations (0 disables)."""
    start_abar: float = 1e-3
    """Start at the noisiest training step whose signal fraction abar_t is at least this
    (0: the last step). At a step where abar_t is ~0 the clean-window estimate divides the
    network's error by sqrt(abar_t) (the cosine schedule ends at abar 2.4e-7, a factor of
    ~2000), so a deterministic sampler starting there begins from a clipped corner; starting
    where abar_t >= 1e-3 bounds that factor by ~32 and changes the start distribution by at
    most 3% of the data's scale. See :func:`first_step`."""
    temperature: float = 1.0
    """Scale of every noise draw, the starting one and each step's (1: the model's own
    distribution). Below 1 ("low-temperature sampling", as Decision Diffuser samples with
    0.5) plans concentrate on the likelier modes, so that consecutive replanning steps are
    less likely to switch between the gaits of different behaviour policies."""


def ddim_timesteps(num_train_steps: int, steps: int, start: int | None = None) -> list[int]:
    """Evenly spaced steps from ``start`` (default: the noisiest, ``num_train_steps - 1``)
    down to 0, ``steps`` of them."""
    start = num_train_steps - 1 if start is None else int(start)
    if not 0 <= start < num_train_steps:
        raise ValueError(f"start step {start} outside [0, {num_train_steps})")
    steps = max(1, min(steps, start + 1))
    ts = torch.linspace(start, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


def first_step(schedule: NoiseSchedule, start_abar: float) -> int:
    """The noisiest training step whose signal fraction abar_t is at least ``start_abar``
    (the last step when ``start_abar`` is 0), where sampling starts.

    The first clean-window estimate (x - sqrt(1 - abar) eps) / sqrt(abar) multiplies the
    network's error by sqrt((1 - abar) / abar); ``start_abar`` bounds that factor by
    1 / sqrt(start_abar)."""
    if not 0.0 <= start_abar < 1.0:
        raise ValueError(f"start_abar must lie in [0, 1), got {start_abar}")
    keeps = torch.nonzero(schedule.alphas_cumprod >= start_abar).flatten()
    if keeps.numel() == 0:  # only when start_abar exceeds abar_0, itself near 1
        raise ValueError(
            f"no step of the schedule keeps abar >= {start_abar} (abar_0 is "
            f"{float(schedule.alphas_cumprod[0]):.4g})"
        )
    return int(keeps.max())


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
    scalar tensors or floats (coefficients are computed in float64). With ``eta > 0`` the
    update needs ``noise``: without it the step would shrink the direction term to make room
    for noise and then add none, pulling every sample towards the mean."""
    if eta > 0 and noise is None:
        raise ValueError("a DDIM step with eta > 0 needs noise")
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


NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]
"""shape (B, H, D) -> standard normal noise of that shape (any device; the sampler moves it)."""


class RowNoise:
    """Independent standard-normal streams, one per row, drawn for any subset of rows at once.

    Row r's stream is a CPU generator seeded with ``seeds[r]``, read in blocks of ``block``
    values; a draw of m values per row takes each row's next m values, starting a fresh block
    when fewer than m are left. So a row's noise depends only on its seed and its own draws,
    never on which other rows share a call: a batch of rows gets the noise each row would get
    alone. CPU generators also make the noise the same on every device.

    Drawing per row from per-row generators costs one generator call per row per draw (about
    6 ms for 501 rows); reading blocks drawn ahead makes a draw one gather, with a generator
    call per row only every ``block / m`` draws.
    """

    def __init__(self, seeds: Sequence[int], block: int = 4096) -> None:
        if len(seeds) == 0:
            raise ValueError("RowNoise needs at least one seed")
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        self.block = int(block)
        self._generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self._buffer = torch.empty(len(seeds), self.block)
        # Position of each row's next unread value; "block" = nothing left, refill first.
        self._pos = np.full(len(seeds), self.block, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._generators)

    def check_rows(self, rows: Sequence[int] | np.ndarray | None) -> np.ndarray:
        """``rows`` as an index array (None: every row), checked: in range and distinct (one
        stream read twice in a call would give neither row the noise it gets alone)."""
        if rows is None:
            return np.arange(len(self))
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row indices must lie in [0, {len(self)}) (the seeded rows)")
        if np.unique(idx).size != idx.size:
            raise ValueError("each row stream can serve one row per call")
        return idx

    def draw(self, rows: Sequence[int] | np.ndarray | None, shape: tuple[int, ...]) -> torch.Tensor:
        """(len(rows), *shape) float32 CPU noise: row i from stream ``rows[i]``."""
        idx = self.check_rows(rows)
        m = math.prod(shape)
        if m > self.block:
            raise ValueError(f"a draw of {m} values per row exceeds the block of {self.block}")
        for r in idx[self._pos[idx] + m > self.block].tolist():
            self._buffer[r] = torch.randn(self.block, generator=self._generators[r])
            self._pos[r] = 0
        pos = self._pos[idx]
        rows_t = torch.from_numpy(idx)
        if idx.size and (pos == pos[0]).all():
            # Rows that advance together (the usual case) read one column range: a cheaper
            # gather than per-element indices. Indexing by rows copies, so the caller may
            # write into the result without touching the buffer.
            out = self._buffer[rows_t, int(pos[0]) : int(pos[0]) + m]
        else:
            out = self._buffer[rows_t[:, None], torch.from_numpy(pos[:, None] + np.arange(m))]
        self._pos[idx] += m
        return out.reshape(idx.size, *shape)

    def bind(self, rows: Sequence[int] | np.ndarray | None) -> NoiseFn:
        """The sampler's noise function for a batch made of ``rows`` (checked now)."""
        idx = self.check_rows(rows)

        def noise(shape: tuple[int, ...]) -> torch.Tensor:
            if shape[0] != idx.size:
                raise ValueError(f"noise for a batch of {shape[0]} from {idx.size} row streams")
            return self.draw(idx, shape[1:])

        return noise


def _noise(
    shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None,
    noise_fn: NoiseFn | None,
) -> torch.Tensor:
    if noise_fn is None:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return noise_fn(shape).to(device, dtype)


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    first_state: torch.Tensor,
    config: SamplerConfig,
    generator: torch.Generator | None = None,
    noise_fn: NoiseFn | None = None,
) -> torch.Tensor:
    """Sample windows (B, H, D) whose first state is fixed to ``first_state`` (B, D).

    With the same generator state the result is the same, batch for batch.

    ``noise_fn`` (replaces ``generator``) supplies the noise, e.g. ``RowNoise.bind(rows)``:
    with one stream per row, a row gets the same noise whichever other rows share its batch,
    and the batched result equals sampling each row alone up to floating-point differences of
    the batched network (which must treat rows independently, as the denoisers do).
    """
    device, dtype = first_state.device, first_state.dtype
    if not config.temperature > 0:
        raise ValueError(f"temperature must be positive, got {config.temperature}")
    start = first_step(schedule, config.start_abar)
    scale = config.temperature
    x = _noise(shape, device, dtype, generator, noise_fn)
    if scale != 1.0:  # skipped at 1 so that default sampling is bit-for-bit as before
        x = x * scale
    x[:, 0] = first_state
    if config.method == "ddpm":
        steps = list(range(start, -1, -1))
    elif config.method == "ddim":
        steps = ddim_timesteps(schedule.num_steps, config.steps, start)
    else:
        raise ValueError(f"unknown sampler {config.method!r}; choose 'ddim' or 'ddpm'")
    abars = schedule.alphas_cumprod  # float64 on the CPU: step coefficients, not data
    for i, t in enumerate(steps):
        t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = eps_fn(x, t_batch)
        stochastic = config.method == "ddpm" or config.eta > 0
        noise = _noise(shape, device, dtype, generator, noise_fn) if stochastic else None
        if noise is not None and scale != 1.0:
            noise = noise * scale
        if config.method == "ddpm":
            x = ddpm_step(x, eps, t, schedule, config.clip_x0, noise)
        else:
            prev = abars[steps[i + 1]] if i + 1 < len(steps) else torch.ones((), dtype=abars.dtype)
            x = ddim_step(x, eps, abars[t], prev, config.eta, config.clip_x0, noise)
        x[:, 0] = first_state
    return x
