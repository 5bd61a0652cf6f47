"""How a planner sees a window of states: as normalized states, or as steps from the first.

The diffusion planner models windows (s_t, s_{t+m}, ..., s_{t+(H-1)m}) whose first state is
known (inpainted). In normalized state units (:class:`~tora.data.normalize.Normalizer`) the
later states of a window sit very close to the first wherever the dynamics are smooth and
fast-sampled: a drone's 17-D state moves a few hundredths of its spread per step. A planner
that generates *absolute* states must then reproduce the first state to that precision and
add a tiny step to it, and every error of its denoiser lands in the step: on DroneCircle the
planned next state was further from the truth than "the state does not change" (BENCHMARKS.md
section 6). *Delta* coding lets the planner generate the steps instead, each offset's step
s_{t+km} - s_t standardized by its own mean and spread over the data, so the quantity it
generates has unit scale and a denoiser error is an error relative to how far the state moves.

Coding happens after normalization and is undone before anything downstream (inverse
dynamics, critics, callers) sees a window, so only the denoiser's inputs and targets change.
The first element is the normalized current state in both codings: inpainting is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from tora.data.normalize import MIN_STD
from tora.errors import DataError, ShapeMismatchError

CodingKind = Literal["absolute", "delta"]
CODINGS: tuple[str, ...] = ("absolute", "delta")

FIT_WINDOWS = 100_000
"""Windows the delta statistics should be fitted on at most (pretraining draws a seeded subset
beyond that, :func:`tora.train.pretrain.fit_coding`): the mean and spread of a step are
settled long before, and a (T, H, D) copy of every window would not fit in memory on large
datasets."""


@dataclass(frozen=True)
class WindowCoding:
    """A window's coding for the denoiser. ``mean`` and ``std`` (H - 1, D): per offset and
    dimension, the mean and spread of the normalized step from the first state (delta coding
    only; empty for absolute)."""

    kind: CodingKind = "absolute"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in CODINGS:
            raise DataError(f"unknown window coding {self.kind!r}; choose one of {CODINGS}")
        if self.kind == "delta":
            if self.mean is None or self.std is None or self.mean.shape != self.std.shape:
                raise DataError("delta coding needs mean and std of the same (H - 1, D) shape")
            if self.mean.ndim != 2 or not (np.isfinite(self.mean).all() and (self.std > 0).all()):
                raise DataError("delta coding needs finite means and positive stds, (H - 1, D)")

    @classmethod
    def fit(cls, kind: CodingKind, windows: torch.Tensor | np.ndarray) -> WindowCoding:
        """The coding ``kind`` fitted on normalized windows (N, H, D), all of those given (an
        unknown ``kind`` is refused by the constructor)."""
        if kind == "absolute":
            return cls()
        x = np.asarray(windows.cpu() if isinstance(windows, torch.Tensor) else windows)
        if x.ndim != 3 or x.shape[1] < 2 or x.shape[0] == 0:
            raise ShapeMismatchError(f"need windows (N, H >= 2, D), got {x.shape}")
        steps = x[:, 1:].astype(np.float64) - x[:, :1].astype(np.float64)
        return cls(
            kind,
            steps.mean(0).astype(np.float32),
            np.maximum(steps.std(0), MIN_STD).astype(np.float32),
        )

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.mean is not None and self.std is not None
        if tuple(x.shape[1:]) != (self.mean.shape[0] + 1, self.mean.shape[1]):
            raise ShapeMismatchError(
                f"windows of shape {tuple(x.shape[1:])} do not fit a coding fitted on "
                f"(H, D) = ({self.mean.shape[0] + 1}, {self.mean.shape[1]})"
            )
        mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
        std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype)
        return mean, std

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """Normalized windows (B, H, D) -> what the denoiser models (the same tensor for
        absolute coding)."""
        if self.kind == "absolute":
            return windows
        mean, std = self._stats(windows)
        steps = (windows[:, 1:] - windows[:, :1] - mean) / std
        return torch.cat([windows[:, :1], steps], dim=1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What the denoiser generated (B, H, D) -> normalized windows; inverse of encode."""
        if self.kind == "absolute":
            return x
        mean, std = self._stats(x)
        return torch.cat([x[:, :1], x[:, :1] + x[:, 1:] * std + mean], dim=1)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "absolute":
            return {"kind": "absolute"}
        assert self.mean is not None and self.std is not None
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> WindowCoding:
        """The coding saved by :meth:`to_dict`; None (a planner saved before codings
        existed) is absolute coding, what those planners used."""
        if d is None or d.get("kind", "absolute") == "absolute":
            return cls()
        return cls(d["kind"], np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))
