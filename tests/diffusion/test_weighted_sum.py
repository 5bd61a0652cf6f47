"""weighted_sum, the composition both execution modes call: sum_k w[:, k] eps_k."""

from __future__ import annotations

import pytest
import torch

from tora.diffusion.compose import weighted_sum
from tora.errors import InvalidWeightsError


def test_hand_computed_sum_in_both_layouts() -> None:
    e0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # (B=2, D=2)
    e1 = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    w = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    expected = torch.tensor([[7.75, 15.5], [3.0, 4.0]])  # row 0: 0.25 e0 + 0.75 e1
    assert torch.equal(weighted_sum([e0, e1], w), expected)
    assert torch.allclose(weighted_sum(torch.stack([e0, e1]), w), expected)


def test_one_hot_rows_return_that_model_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    eps = [torch.randn(3, 4, 5, generator=g) for _ in range(3)]
    w = torch.tensor([[0.0, 1.0, 0.0]]).expand(3, -1)
    assert torch.equal(weighted_sum(eps, w), eps[1])


def test_no_outputs_is_an_error() -> None:
    with pytest.raises(InvalidWeightsError, match="at least one"):
        weighted_sum([], torch.zeros(2, 0))
