"""Choosing the torch device from ``auto|cpu|cuda``."""

from __future__ import annotations

import torch

from tora.errors import ToraError


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" picks CUDA when available, else the CPU; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ToraError("--device cuda was asked for but torch sees no CUDA GPU; use auto or cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ToraError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)
