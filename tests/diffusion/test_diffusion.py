"""Noise schedule, DDIM/DDPM samplers and the composition of objective denoisers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from tora.diffusion import ComposedDenoiser, NoiseSchedule, SamplerConfig, check_weights, sample
from tora.diffusion.samplers import EpsFn, ddim_step, ddim_timesteps, ddpm_step, first_step
from tora.errors import InvalidWeightsError, ToraError

NAMES = ("east", "north")


# ----------------------------------------------------------------------------------- helpers
def _s(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def _cosine_abar(t: int, n: int, s: float = 0.008) -> float:
    """abar_t of the cosine schedule computed with math: f(t + 1) / f(0) (0-indexed steps)."""

    def f(x: float) -> float:
        return math.cos((x / n + s) / (1 + s) * math.pi / 2) ** 2

    return f(t + 1) / f(0)


def _oracle_eps(schedule: NoiseSchedule, x0_star: torch.Tensor) -> EpsFn:
    """The exact noise of x_t when the data is the single point ``x0_star``."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = schedule.abar(t, x)
        return (x - a.sqrt() * x0_star) / (1 - a).sqrt()

    return eps_fn


def _toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A deterministic, non-trivial stand-in for a trained denoiser."""
    return torch.sin(x) * 0.5 + t.to(x.dtype).view(-1, 1, 1) * 1e-3


class Wave(nn.Module):
    """Deterministic toy denoiser: scale * sin(x + phase) + t / 100; counts its calls."""

    def __init__(self, scale: float, phase: float) -> None:
        super().__init__()
        self.scale, self.phase, self.calls = scale, phase, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.scale * torch.sin(x + self.phase) + t.to(x.dtype).view(-1, 1, 1) / 100


class MustNotRun(nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a model with zero weight on the whole batch was evaluated")


def _xt(batch: int = 3, horizon: int = 4, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, horizon, dim, generator=g), torch.tensor([5, 17, 42][:batch])


# ---------------------------------------------------------------------------------- schedule
def test_cosine_alphas_cumprod_strictly_decreasing_in_unit_interval() -> None:
    abar = NoiseSchedule(100, "cosine").alphas_cumprod
    assert abar.shape == (100,)
    assert torch.all(abar > 0) and torch.all(abar <= 1)
    assert torch.all(abar[1:] < abar[:-1])


@pytest.mark.parametrize("t", [0, 1, 49, 90])
def test_cosine_alphas_cumprod_match_closed_form(t: int) -> None:
    abar = NoiseSchedule(100, "cosine").alphas_cumprod
    assert float(abar[t]) == pytest.approx(_cosine_abar(t, 100), rel=1e-12)


def test_linear_schedule_two_steps_by_hand() -> None:
    sch = NoiseSchedule(2, "linear")
    assert sch.betas.tolist() == pytest.approx([1e-4, 2e-2])
    assert sch.alphas_cumprod.tolist() == pytest.approx([0.9999, 0.9999 * 0.98])


def test_add_noise_equals_closed_form_per_row_step() -> None:
    sch = NoiseSchedule(2, "linear")
    x0 = torch.tensor([[1.0, 2.0], [-3.0, 0.5]], dtype=torch.float64)
    noise = torch.tensor([[0.5, -1.0], [2.0, 4.0]], dtype=torch.float64)
    out = sch.add_noise(x0, noise, torch.tensor([0, 1]))
    for row, a in enumerate([0.9999, 0.9999 * 0.98]):
        for col in range(2):
            want = math.sqrt(a) * float(x0[row, col]) + math.sqrt(1 - a) * float(noise[row, col])
            assert float(out[row, col]) == pytest.approx(want, rel=1e-12)


def test_add_noise_broadcasts_over_window_dims() -> None:
    sch = NoiseSchedule(50, "cosine")
    x0, noise = torch.ones(2, 3, 4), torch.zeros(2, 3, 4)
    out = sch.add_noise(x0, noise, torch.tensor([0, 49]))
    a = sch.alphas_cumprod[[0, 49]].float().sqrt()
    assert torch.allclose(out[0], torch.full((3, 4), float(a[0])))
    assert torch.allclose(out[1], torch.full((3, 4), float(a[1])))


def test_unknown_schedule_kind_and_too_few_steps_raise() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        NoiseSchedule(10, "quadratic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        NoiseSchedule(1)


# ---------------------------------------------------------------------------------- samplers
def test_ddim_step_eta0_matches_hand_formula() -> None:
    x, eps, a_t, a_prev = 1.0, 0.5, 0.64, 0.81
    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)  # 0.875
    want = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    got = ddim_step(_s(x), _s(eps), _s(a_t), _s(a_prev), eta=0.0, clip=0.0, noise=_s(3.0))
    assert x0 == pytest.approx(0.875)
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_ddim_step_eta1_adds_sigma_times_noise() -> None:
    x, eps, a_t, a_prev, z = 1.0, 0.5, 0.64, 0.81, -0.7
    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    sigma = math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    want = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * eps + sigma * z
    got = ddim_step(_s(x), _s(eps), _s(a_t), _s(a_prev), eta=1.0, clip=0.0, noise=_s(z))
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_ddim_step_to_clean_returns_clipped_x0() -> None:
    # x0 = (3 + sqrt(0.75)) / 0.5 ~ 7.73 is clipped to 5; with abar_prev = 1 the step returns x0.
    got = ddim_step(_s(3.0), _s(-1.0), _s(0.25), _s(1.0), eta=0.0, clip=5.0, noise=None)
    assert float(got) == 5.0


def test_ddpm_step_at_t0_returns_predicted_x0_without_noise() -> None:
    sch = NoiseSchedule(10, "linear")
    a0 = float(sch.alphas_cumprod[0])
    x, eps = torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([1.0, 2.0]).double()
    want = (x - math.sqrt(1 - a0) * eps) / math.sqrt(a0)
    got = ddpm_step(x, eps, 0, sch, clip=0.0, noise=torch.full((2,), 10.0, dtype=torch.float64))
    assert torch.allclose(got, want, rtol=1e-10, atol=0)


def test_ddpm_step_adds_posterior_std_times_noise() -> None:
    sch, t = NoiseSchedule(10, "linear"), 4
    a_t, a_p = float(sch.alphas_cumprod[t]), float(sch.alphas_cumprod[t - 1])
    beta = float(sch.betas[t])
    x, eps, z = _s(0.3), _s(-0.4), _s(1.5)
    without = ddpm_step(x, eps, t, sch, clip=0.0, noise=None)
    with_noise = ddpm_step(x, eps, t, sch, clip=0.0, noise=z)
    std = math.sqrt(beta * (1 - a_p) / (1 - a_t))
    assert float(with_noise - without) == pytest.approx(std * 1.5, rel=1e-10)


def test_ddim_timesteps_evenly_spaced_from_99_to_0() -> None:
    ts = ddim_timesteps(100, 10)
    assert ts == [99, 88, 77, 66, 55, 44, 33, 22, 11, 0]
    assert all(a > b for a, b in itertools.pairwise(ts))


def test_ddim_timesteps_capped_at_train_steps() -> None:
    assert ddim_timesteps(20, 500) == list(range(19, -1, -1))
    assert ddim_timesteps(20, 1) == [19]


@pytest.mark.parametrize(
    "config",
    [
        SamplerConfig("ddim", steps=5, eta=0.0),
        SamplerConfig("ddim", steps=5, eta=1.0),
        SamplerConfig("ddpm"),
    ],
    ids=["ddim", "ddim-eta1", "ddpm"],
)
def test_sample_keeps_first_state_exactly(config: SamplerConfig) -> None:
    sch = NoiseSchedule(20)
    first = torch.tensor([[0.25, -1.5, 3.0], [7.0, 0.0, -0.125]])
    gen = torch.Generator().manual_seed(0)
    out = sample(_toy_eps, sch, (2, 4, 3), first, config, gen)
    assert out.shape == (2, 4, 3)
    assert torch.equal(out[:, 0], first)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_sample_same_seed_identical_other_seed_differs(method: str) -> None:
    sch, cfg = NoiseSchedule(20), SamplerConfig(method, steps=5)  # type: ignore[arg-type]
    first = torch.zeros(3, 2)

    def run(seed: int) -> torch.Tensor:
        return sample(_toy_eps, sch, (3, 5, 2), first, cfg, torch.Generator().manual_seed(seed))

    assert torch.equal(run(7), run(7))
    assert not torch.allclose(run(7)[:, 1:], run(8)[:, 1:])


def test_sample_passes_ddim_steps_to_eps_fn() -> None:
    seen: list[torch.Tensor] = []

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return torch.zeros_like(x)

    sch = NoiseSchedule(100)
    sample(eps_fn, sch, (2, 3, 1), torch.zeros(2, 1), SamplerConfig(steps=10, start_abar=0.0))
    assert [int(t[0]) for t in seen] == ddim_timesteps(100, 10)
    seen.clear()
    # The default starts where abar >= 1e-3 (step 96 of this schedule), not at step 99.
    sample(eps_fn, sch, (2, 3, 1), torch.zeros(2, 1), SamplerConfig(steps=10))
    assert [int(t[0]) for t in seen] == ddim_timesteps(100, 10, first_step(sch, 1e-3))
    assert int(seen[0][0]) == 96
    assert all(t.shape == (2,) and t.dtype == torch.long and t[0] == t[1] for t in seen)


def test_two_step_ddim_sample_matches_hand_loop() -> None:
    # Steps [9, 0]: x_9 -> x_0 (abar_prev = abar_0), then x_0 -> clean (abar_prev = 1).
    # eps = 0.5 x depends on x, so a wrong abar_prev in the first step changes the result.
    sch, shape = NoiseSchedule(10, "linear"), (2, 3, 2)
    first = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    a9, a0 = (float(sch.alphas_cumprod[i]) for i in (9, 0))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x[:, 0] = first
    x0 = (x - math.sqrt(1 - a9) * 0.5 * x) / math.sqrt(a9)
    x = math.sqrt(a0) * x0 + math.sqrt(1 - a0) * 0.5 * x
    x[:, 0] = first
    want = (x - math.sqrt(1 - a0) * 0.5 * x) / math.sqrt(a0)
    want[:, 0] = first

    cfg = SamplerConfig("ddim", steps=2, eta=0.0, clip_x0=0.0)
    got = sample(lambda x, t: 0.5 * x, sch, shape, first, cfg, torch.Generator().manual_seed(6))
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_ddim_with_oracle_eps_recovers_single_data_point(kind: str) -> None:
    sch = NoiseSchedule(100, kind)  # type: ignore[arg-type]
    x0_star = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-3.0, 1.5], [4.0, -4.5]]).repeat(3, 1, 1)
    cfg = SamplerConfig("ddim", steps=10)
    out = sample(_oracle_eps(sch, x0_star), sch, (3, 4, 2), x0_star[:, 0], cfg)
    assert torch.allclose(out, x0_star, atol=1e-5, rtol=0)


def test_ddim_oracle_result_is_clipped() -> None:
    sch = NoiseSchedule(50)
    x0_star = torch.tensor([[[0.0], [9.0], [-8.0]]])
    cfg = SamplerConfig("ddim", steps=10, clip_x0=5.0)
    out = sample(_oracle_eps(sch, x0_star), sch, (1, 3, 1), x0_star[:, 0], cfg)
    assert out.flatten().tolist() == pytest.approx([0.0, 5.0, -5.0], abs=1e-5)


def test_ddpm_with_oracle_eps_recovers_single_data_point() -> None:
    # float64: DDPM's posterior coefficients use 1 - abar_t, which float32 resolves poorly
    # near t = 0 (error ~1e-4 relative), unrelated to the sampler's correctness.
    sch = NoiseSchedule(30, "cosine")
    x0_star = torch.tensor([[[1.0, -2.0], [0.5, 3.5], [-4.0, 0.0]]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    out = sample(
        _oracle_eps(sch, x0_star), sch, (1, 3, 2), x0_star[:, 0], SamplerConfig("ddpm"), gen
    )
    assert torch.allclose(out, x0_star, atol=1e-8, rtol=0)


def test_ddim_timesteps_from_a_later_start() -> None:
    assert ddim_timesteps(100, 5, start=96) == [96, 72, 48, 24, 0]
    assert ddim_timesteps(100, 50, start=3) == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="outside"):
        ddim_timesteps(100, 5, start=100)


def test_first_step_bounds_the_first_x0_error_factor() -> None:
    sch = NoiseSchedule(100)
    assert first_step(sch, 0.0) == 99
    # The cosine schedule's last step keeps abar 2.4e-7 (beta clamped at 0.999): a network
    # error there is multiplied by ~2000 in the first clean-window estimate.
    last = float(sch.alphas_cumprod[99])
    assert last == pytest.approx(2.4e-7, rel=0.05)
    for start_abar in (1e-4, 1e-3, 1e-2):
        t = first_step(sch, start_abar)
        a = float(sch.alphas_cumprod[t])
        assert a >= start_abar and float(sch.alphas_cumprod[t + 1]) < start_abar
        assert math.sqrt((1 - a) / a) <= 1 / math.sqrt(start_abar)
    with pytest.raises(ValueError, match="start_abar"):
        first_step(sch, 1.0)


def test_stochastic_ddim_step_without_noise_is_refused() -> None:
    x = torch.ones(1, 2, 1)
    with pytest.raises(ValueError, match="needs noise"):
        ddim_step(x, x, _s(0.5), _s(0.8), 1.0, 0.0, None)


_MIX_MEANS = torch.tensor([-2.0, 1.0], dtype=torch.float64)
_MIX_STDS = torch.tensor([0.5, 0.3], dtype=torch.float64)
_MIX_WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.float64)
_MIX_MEAN = 0.1  # 0.3 * -2 + 0.7 * 1
_MIX_VAR = 2.028  # 0.3 * (0.25 + 4) + 0.7 * (0.09 + 1) - 0.1**2


def _mixture_eps(schedule: NoiseSchedule, bias: float = 0.0) -> EpsFn:
    """The exact eps of a 1-D two-component Gaussian mixture at every step (plus ``bias``, a
    network that is slightly wrong everywhere): x_t given component j is
    N(sqrt(abar) mu_j, abar s_j^2 + 1 - abar), and eps = -sqrt(1 - abar) * score."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = schedule.abar(t, x).double()[..., None]
        xd = x.double()[..., None]
        mu, var = a.sqrt() * _MIX_MEANS, a * _MIX_STDS**2 + (1 - a)
        log_p = torch.log(_MIX_WEIGHTS) - 0.5 * torch.log(var) - 0.5 * (xd - mu) ** 2 / var
        score = (torch.softmax(log_p, -1) * (-(xd - mu) / var)).sum(-1)
        return (-(1 - a[..., 0]).sqrt() * score + bias).to(x.dtype)

    return eps_fn


def _mixture_samples(config: SamplerConfig, bias: float = 0.0, n: int = 20000) -> torch.Tensor:
    sch = NoiseSchedule(100)
    gen = torch.Generator().manual_seed(0)
    out = sample(_mixture_eps(sch, bias), sch, (n, 2, 1), torch.zeros(n, 1), config, gen)
    return out[:, 1, 0]


@pytest.mark.parametrize(
    ("config", "var_tol"),
    [
        (SamplerConfig("ddim", steps=20, eta=0.0, start_abar=1e-3), 0.10),
        (SamplerConfig("ddim", steps=20, eta=1.0, start_abar=1e-3), 0.10),
        (SamplerConfig("ddpm", start_abar=1e-3), 0.05),
    ],
    ids=["ddim-eta0", "ddim-eta1", "ddpm"],
)
def test_sampler_reproduces_a_gaussian_mixture(config: SamplerConfig, var_tol: float) -> None:
    # Measured (seed 0, 20,000 samples): mean 0.109 / 0.128 / 0.120, variance 1.91 / 1.87 /
    # 1.97. The mean's Monte Carlo error is 0.01; 20 DDIM steps under-disperse a bimodal
    # target by ~6-8% (DDPM's 100 steps by ~3%), hence the variance tolerances.
    x = _mixture_samples(config)
    assert float(x.mean()) == pytest.approx(_MIX_MEAN, abs=0.05)
    assert float(x.var()) == pytest.approx(_MIX_VAR, rel=var_tol)
    # Both modes are found, in about their proportions.
    assert float((x < -0.5).double().mean()) == pytest.approx(0.3, abs=0.03)


def test_starting_where_signal_is_left_bounds_a_small_network_error() -> None:
    # A network off by 0.02 everywhere. From the last step (abar 2.4e-7) deterministic DDIM's
    # first clean-window estimate is off by 0.02 * 2000 = 40, clipped to a corner, and the
    # samples' mean lands 0.58 away from the mixture's; from abar >= 1e-3 it is 0.09 away.
    old = _mixture_samples(SamplerConfig("ddim", steps=20, eta=0.0, start_abar=0.0), bias=0.02)
    new = _mixture_samples(SamplerConfig("ddim", steps=20, eta=0.0, start_abar=1e-3), bias=0.02)
    assert abs(float(old.mean()) - _MIX_MEAN) > 0.4
    assert abs(float(new.mean()) - _MIX_MEAN) < 0.15


def test_low_temperature_concentrates_samples_on_the_likelier_mode() -> None:
    # Measured (seed 0, 20,000 samples, DDPM): the heavier mode's spread 0.287 -> 0.152 at
    # temperature 0.5, the lighter mode's share 0.294 -> 0.116; the bounds leave room for
    # other machines' rounding.
    def upper_std_and_lower_share(x: torch.Tensor) -> tuple[float, float]:
        return float(x[x > -0.5].std()), float((x <= -0.5).double().mean())

    warm = upper_std_and_lower_share(_mixture_samples(SamplerConfig("ddpm", start_abar=1e-3)))
    cold = upper_std_and_lower_share(
        _mixture_samples(SamplerConfig("ddpm", start_abar=1e-3, temperature=0.5))
    )
    assert cold[0] < 0.65 * warm[0] and cold[1] < 0.5 * warm[1]
    assert cold[1] > 0.03  # concentrated, not collapsed onto one mode
    with pytest.raises(ValueError, match="temperature must be positive"):
        _mixture_samples(SamplerConfig(temperature=0.0), n=4)


def test_sample_unknown_method_raises() -> None:
    with pytest.raises(ValueError, match="unknown sampler"):
        sample(_toy_eps, NoiseSchedule(5), (1, 2, 1), torch.zeros(1, 1), SamplerConfig("euler"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- compose
def test_one_hot_weights_return_that_models_output_exactly() -> None:
    m0, m1 = Wave(1.3, 0.2), Wave(-0.7, 1.1)
    composed = ComposedDenoiser([m0, m1], NAMES)
    x, t = _xt()
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.25, 0.75]])
    out = composed(x, t, w)
    assert torch.equal(out[0], m0(x, t)[0])
    assert torch.equal(out[1], m1(x, t)[1])


def test_per_row_weights_give_weighted_sum_of_model_outputs() -> None:
    models = [Wave(1.3, 0.2), Wave(-0.7, 1.1), Wave(0.4, -2.0)]
    x, t = _xt()
    w = torch.tensor([[0.2, 0.3, 0.5], [0.0, 0.9, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    out = ComposedDenoiser(models)(x, t, w)
    outs = [m(x, t) for m in models]
    for b in range(3):
        want = sum(float(w[b, k]) * outs[k][b] for k in range(3))
        assert torch.allclose(out[b], want, atol=1e-6)


def test_single_weight_row_applies_to_whole_batch() -> None:
    m0, m1 = Wave(1.0, 0.0), Wave(2.0, 0.5)
    x, t = _xt()
    out = ComposedDenoiser([m0, m1])(x, t, [0.4, 0.6])
    assert torch.allclose(out, 0.4 * m0(x, t) + 0.6 * m1(x, t), atol=1e-6)


def test_model_with_zero_weight_on_whole_batch_is_never_called() -> None:
    m0, m1 = Wave(1.0, 0.0), Wave(2.0, 0.5)
    composed = ComposedDenoiser([m0, MustNotRun(), m1])
    x, t = _xt()
    composed(x, t, torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]))
    assert (m0.calls, m1.calls) == (1, 1)
    composed.bind(torch.tensor([0.0, 0.0, 1.0]))(x, t)
    assert (m0.calls, m1.calls) == (1, 2)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0], "east.*north"),
        ([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]], "east.*north"),
        ([float("nan"), 1.0], "'east'"),
        ([1.5, -0.5], "'north'"),
        ([0.5, 0.4], "sum to 1"),
    ],
    ids=["wrong-length", "2x3-batch", "nan", "negative", "bad-sum"],
)
def test_invalid_weights_raise_with_objective_names(weights: list, match: str) -> None:
    composed = ComposedDenoiser([Wave(1.0, 0.0), Wave(1.0, 1.0)], NAMES)
    x, t = _xt(batch=2)
    with pytest.raises(InvalidWeightsError, match=match):
        composed(x, t, torch.tensor(weights))
    with pytest.raises(InvalidWeightsError, match=match):
        check_weights(weights, 2, NAMES)
    with pytest.raises(InvalidWeightsError, match=match):
        composed.bind(torch.tensor(weights))


def test_invalid_weights_error_is_a_value_error_and_tora_error() -> None:
    with pytest.raises(ValueError) as info:
        check_weights([0.7, 0.7], 2)
    assert isinstance(info.value, ToraError)


def test_weight_rows_must_match_batch() -> None:
    composed = ComposedDenoiser([Wave(1.0, 0.0), Wave(1.0, 1.0)])
    x, t = _xt(batch=3)
    with pytest.raises(InvalidWeightsError, match="2 weight rows for a batch of 3"):
        composed(x, t, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_check_weights_returns_float64_batch() -> None:
    w = check_weights(np.array([0.25, 0.75], dtype=np.float32), 2)
    assert w.dtype == torch.float64 and w.shape == (1, 2)
    assert w.tolist() == [[0.25, 0.75]]


def test_composition_needs_a_model() -> None:
    with pytest.raises(InvalidWeightsError):
        ComposedDenoiser([])


def test_bound_one_hot_composition_samples_like_the_model_alone() -> None:
    m0, m1 = Wave(0.8, 0.3), Wave(-1.2, 2.0)
    composed = ComposedDenoiser([m0, m1], NAMES)
    sch, first = NoiseSchedule(20), torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    for cfg in (SamplerConfig("ddim", steps=5), SamplerConfig("ddpm")):
        alone = sample(m1, sch, (2, 3, 2), first, cfg, torch.Generator().manual_seed(4))
        eps_fn = composed.bind(torch.tensor([0.0, 1.0]))
        mixed = sample(eps_fn, sch, (2, 3, 2), first, cfg, torch.Generator().manual_seed(4))
        assert torch.equal(alone, mixed)


def test_bound_mixture_samples_like_hand_mixture() -> None:
    m0, m1 = Wave(0.8, 0.3), Wave(-1.2, 2.0)
    composed = ComposedDenoiser([m0, m1], NAMES)
    sch, first, cfg = NoiseSchedule(20), torch.zeros(2, 2), SamplerConfig("ddim", steps=5)

    def hand(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.3 * m0(x, t) + 0.7 * m1(x, t)

    want = sample(hand, sch, (2, 3, 2), first, cfg, torch.Generator().manual_seed(5))
    eps_fn = composed.bind(torch.tensor([0.3, 0.7]))
    got = sample(eps_fn, sch, (2, 3, 2), first, cfg, torch.Generator().manual_seed(5))
    assert torch.allclose(got, want, atol=1e-5)
