"""Per-dimension Gaussian normalization of states, saved with every model that uses it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tora.errors import ShapeMismatchError

MIN_STD = 1e-3
"""Floor on a dimension's std: constant dimensions (e.g. a flag) must not blow up."""


@dataclass(frozen=True)
class Normalizer:
    """x_norm = (x - mean) / std, per dimension."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalizer:
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        return cls(x.mean(0).astype(np.float32), np.maximum(x.std(0), MIN_STD).astype(np.float32))

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def _check(self, x: np.ndarray | torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ShapeMismatchError(
                f"got states of dimension {x.shape[-1]} but the model was trained on "
                f"dimension {self.dim}; is this the right environment/dataset?"
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
        std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype)
        return (x - mean) / std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
        std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype)
        return x * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalizer:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))
