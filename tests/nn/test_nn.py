"""Denoisers, the timestep embedding and the inverse dynamics model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tora.nn import (
    DenoiserConfig,
    InverseDynamics,
    InverseDynamicsConfig,
    MLPDenoiser,
    SinusoidalEmbedding,
    TransformerDenoiser,
    build_denoiser,
)

SMALL = {"hidden_dim": 16, "depth": 2, "heads": 2, "time_dim": 8}
SHAPES = [(2, 1), (4, 3), (7, 5)]


def _config(kind: str) -> DenoiserConfig:
    return DenoiserConfig(kind=kind, **SMALL)  # type: ignore[arg-type]


def _inputs(batch: int, horizon: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, horizon, dim, generator=g)
    return x, torch.randint(0, 100, (batch,), generator=g)


# ---------------------------------------------------------------------------------- denoisers
@pytest.mark.parametrize(("horizon", "dim"), SHAPES)
@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_denoiser_output_shape_matches_input(kind: str, horizon: int, dim: int) -> None:
    model = build_denoiser(horizon, dim, _config(kind))
    x, t = _inputs(3, horizon, dim)
    out = model(x, t)
    assert out.shape == (3, horizon, dim)
    assert torch.isfinite(out).all()


def test_build_denoiser_returns_requested_class() -> None:
    assert isinstance(build_denoiser(4, 3, _config("mlp")), MLPDenoiser)
    assert isinstance(build_denoiser(4, 3, _config("transformer")), TransformerDenoiser)


def test_build_denoiser_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown denoiser kind 'unet'"):
        build_denoiser(4, 3, _config("unet"))


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_denoiser_depends_on_timestep(kind: str) -> None:
    model = build_denoiser(4, 3, _config(kind)).eval()
    x, _ = _inputs(2, 4, 3)
    out_a = model(x, torch.tensor([0, 0]))
    out_b = model(x, torch.tensor([50, 50]))
    assert not torch.allclose(out_a, out_b)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_denoiser_rows_are_independent_of_the_rest_of_the_batch(kind: str) -> None:
    model = build_denoiser(5, 3, _config(kind)).eval()
    x, t = _inputs(4, 5, 3)
    full = model(x, t)
    alone = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    assert torch.allclose(full, alone, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_seeded_construction_is_identical(kind: str) -> None:
    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_denoiser(4, 3, _config(kind))

    a, b, c = build(11).state_dict(), build(11).state_dict(), build(12).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------------------------- embedding
def test_sinusoidal_embedding_at_t0_is_sin0_cos1() -> None:
    emb = SinusoidalEmbedding(8)(torch.tensor([0, 0]))
    assert emb.shape == (2, 8)
    assert torch.equal(emb[:, :4], torch.zeros(2, 4))
    assert torch.equal(emb[:, 4:], torch.ones(2, 4))


def test_sinusoidal_embedding_values_by_hand() -> None:
    # dim 4: frequencies 10000^(-i/2) for i = 0, 1, i.e. 1 and 1/100.
    emb = SinusoidalEmbedding(4)(torch.tensor([3]))
    want = [math.sin(3.0), math.sin(0.03), math.cos(3.0), math.cos(0.03)]
    assert emb[0].tolist() == pytest.approx(want, abs=1e-6)


def test_sinusoidal_embedding_odd_dim_raises() -> None:
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)


# ---------------------------------------------------------------------------- inverse dynamics
def _inverse(low: list[float], high: list[float], state_dim: int = 3) -> InverseDynamics:
    return InverseDynamics(
        state_dim, len(low), torch.tensor(low), torch.tensor(high), InverseDynamicsConfig(16, 2)
    )


def test_inverse_dynamics_output_shape() -> None:
    model = _inverse([-1.0, -1.0], [1.0, 1.0])
    assert model(torch.randn(5, 3), torch.randn(5, 3)).shape == (5, 2)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_inverse_dynamics_outputs_stay_in_action_box(scale: float) -> None:
    low, high = [-1.0, 0.1, -3.7], [1.0, 0.7, -0.2]
    model = _inverse(low, high)
    with torch.no_grad():
        model.body[-1].weight.mul_(scale)  # large scale saturates tanh at both ends
        out = model(torch.randn(2000, 3) * scale, torch.randn(2000, 3) * scale)
    lo, hi = torch.tensor(low), torch.tensor(high)
    assert torch.all(out >= lo) and torch.all(out <= hi)
    if scale > 1:  # saturated: both ends of the box are actually reached
        assert torch.allclose(out.min(0).values, lo, atol=1e-6)
        assert torch.allclose(out.max(0).values, hi, atol=1e-6)


def test_inverse_dynamics_zero_raw_output_is_box_centre() -> None:
    model = _inverse([-1.0, 0.0], [1.0, 4.0])
    with torch.no_grad():
        for p in model.body[-1].parameters():
            p.zero_()
    out = model(torch.randn(3, 3), torch.randn(3, 3))
    assert torch.equal(out, torch.tensor([[0.0, 2.0]] * 3))


def test_inverse_dynamics_bounds_are_buffers_in_state_dict() -> None:
    state = _inverse([-2.0], [3.0]).state_dict()
    assert state["action_low"].tolist() == [-2.0]
    assert state["action_high"].tolist() == [3.0]
