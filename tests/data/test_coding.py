"""Window codings: hand-computed delta coding, exact inverses, and what a planner saves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tora.data.coding import WindowCoding
from tora.data.normalize import Normalizer
from tora.diffusion.schedule import NoiseSchedule
from tora.errors import CheckpointError, DataError, ShapeMismatchError
from tora.nn.denoisers import DenoiserConfig
from tora.train.planner_io import PlannerSpec


def test_delta_coding_by_hand() -> None:
    # Two windows of H = 2, D = 1: steps 1 and 3, so mean 2 and std 1 -> coded steps -1, +1.
    windows = torch.tensor([[[0.0], [1.0]], [[2.0], [5.0]]])
    coding = WindowCoding.fit("delta", windows)
    assert coding.mean is not None and coding.std is not None
    np.testing.assert_allclose(coding.mean, [[2.0]])
    np.testing.assert_allclose(coding.std, [[1.0]])
    coded = coding.encode(windows)
    torch.testing.assert_close(coded, torch.tensor([[[0.0], [-1.0]], [[2.0], [1.0]]]))


def test_delta_coding_inverts_and_standardizes_its_fitting_data() -> None:
    gen = torch.Generator().manual_seed(0)
    first = torch.randn(500, 1, 3, generator=gen) * 2.0
    steps = torch.cumsum(0.05 * torch.randn(500, 3, 3, generator=gen) + 0.1, dim=1)
    windows = torch.cat([first, first + steps], dim=1)  # (500, 4, 3): small steps, big spread
    coding = WindowCoding.fit("delta", windows)
    coded = coding.encode(windows)
    torch.testing.assert_close(coded[:, 0], windows[:, 0])  # the inpainted state is unchanged
    torch.testing.assert_close(coded[:, 1:].mean(0), torch.zeros(3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        coded[:, 1:].std(0, unbiased=False), torch.ones(3, 3), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(coding.decode(coded), windows, atol=1e-5, rtol=0)


def test_absolute_coding_is_the_identity() -> None:
    x = torch.randn(2, 4, 3)
    coding = WindowCoding.fit("absolute", x)
    assert coding.encode(x) is x and coding.decode(x) is x
    assert coding.to_dict() == {"kind": "absolute"}
    assert WindowCoding.from_dict(None).kind == "absolute"  # planners saved before codings


def test_coding_refuses_bad_input() -> None:
    with pytest.raises(DataError, match="unknown window coding"):
        WindowCoding.fit("relative", torch.zeros(2, 3, 1))  # type: ignore[arg-type]
    with pytest.raises(ShapeMismatchError):
        WindowCoding.fit("delta", torch.zeros(5, 3))
    coding = WindowCoding.fit("delta", torch.randn(10, 3, 2))
    with pytest.raises(ShapeMismatchError, match="do not fit"):
        coding.encode(torch.zeros(4, 4, 2))
    with pytest.raises(DataError, match="positive stds"):
        WindowCoding("delta", np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))


def _spec(coding: WindowCoding) -> PlannerSpec:
    return PlannerSpec(
        horizon=3,
        stride=1,
        obs_dim=2,
        denoiser=DenoiserConfig(hidden_dim=8, depth=1, time_dim=4),
        schedule=NoiseSchedule(10),
        normalizer=Normalizer(np.zeros(2, np.float32), np.ones(2, np.float32)),
        coding=coding,
    )


def test_planner_spec_saves_its_coding() -> None:
    absolute = _spec(WindowCoding()).to_dict()
    assert "coding" not in absolute  # an absolute planner's config is what it always was
    assert PlannerSpec.from_dict(absolute).coding.kind == "absolute"
    delta = _spec(WindowCoding.fit("delta", torch.randn(20, 3, 2)))
    back = PlannerSpec.from_dict(delta.to_dict())
    x = torch.randn(4, 3, 2)
    torch.testing.assert_close(back.encode(x), delta.encode(x))
    broken = delta.to_dict()
    broken["coding"]["std"] = [[0.0, 1.0], [1.0, 1.0]]
    with pytest.raises(CheckpointError, match="malformed"):
        PlannerSpec.from_dict(broken)
