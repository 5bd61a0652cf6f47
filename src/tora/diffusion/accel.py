"""Faster evaluation of the composed denoiser inside the sampling loop.

A plan calls the composed denoiser once per sampler step (10-100 times) with the same shapes,
and on a GPU these small networks are bound by kernel launches and Python, not arithmetic.
:func:`accelerate` wraps a (x, t, weights) -> eps module with the standard remedies:

* ``precision="bf16"``: :func:`torch.autocast` to bfloat16. Worth it on CUDA GPUs with bf16
  tensor cores. The CPU autocast also runs, but on most CPUs (no AMX / AVX512-BF16) it is
  slower than float32, and either way the network keeps only about 2-3 significant digits.
* ``compile="cuda_graph"``: capture one denoiser call per input shape in a CUDA graph and
  replay it, so the denoiser costs one launch per step instead of one per kernel (the
  sampler's own update arithmetic stays eager). Needs CUDA; elsewhere it warns and runs
  eagerly.
* ``compile="compile"``: :func:`torch.compile`. If compiling fails (no compiler, an
  unsupported op), it warns and runs eagerly.

Every fallback emits an :class:`AccelerationWarning` and keeps the eager result, so an
accelerated call is never wrong, only possibly not faster. The returned callable computes the
same eps as ``eps_module(x, t, weights)`` up to the rounding of the chosen precision. It is
for inference: it runs without autograd, and the weights must already be validated (as
:func:`tora.diffusion.compose.check_weights` or ``ComposedDenoiser.bind`` do).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from tora.diffusion.compose import ComposedDenoiser
from tora.errors import ConfigError

Precision = Literal["fp32", "bf16"]
CompileMode = Literal["none", "compile", "cuda_graph"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
COMPILE_MODES: tuple[str, ...] = ("none", "compile", "cuda_graph")

WeightedEpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class AccelConfig:
    """How the composed denoiser runs inside the sampling loop (:func:`accelerate`)."""

    precision: Precision = "fp32"
    """fp32, or bf16 (autocast; worth it on CUDA GPUs with bf16 tensor cores, slower on most
    CPUs)."""
    compile: CompileMode = "none"
    """none; compile (torch.compile); cuda_graph (capture one denoiser call per batch shape
    and replay it: CUDA only, elsewhere it warns and runs eagerly)."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(
                f"unknown compile mode {self.compile!r}; choose one of {COMPILE_MODES}"
            )

    @property
    def eager_fp32(self) -> bool:
        """True for the defaults: the plain call, nothing to wrap."""
        return self.precision == "fp32" and self.compile == "none"


class AccelerationWarning(UserWarning):
    """An acceleration was asked for but is not available here; the eager path runs instead."""


def _module_device(module: Any) -> torch.device:
    if isinstance(module, nn.Module):
        for tensor in module.parameters():
            return tensor.device
        for tensor in module.buffers():
            return tensor.device
    return torch.device("cpu")


def _base_fn(eps_module: WeightedEpsFn, graph_safe: bool) -> WeightedEpsFn:
    """The plain (x, t, weights) -> eps call to accelerate."""
    if isinstance(eps_module, ComposedDenoiser):
        # Weights are validated once by the caller, not at every step; and a captured or
        # compiled call must not read the weights back to the host to skip zero-weight models.
        skip = not graph_safe

        def composed(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return eps_module(x, t, w, validate=False, skip_zero_weights=skip)

        return composed
    return eps_module


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    t: torch.Tensor
    w: torch.Tensor
    out: torch.Tensor


class _CudaGraphRunner:
    """Replays one captured CUDA graph per input signature (shapes and dtypes).

    The graph reads fixed input buffers and writes a fixed output buffer: each call copies
    its inputs in, replays, and returns a copy of the output, so results of earlier calls are
    never overwritten. A new batch size captures a new graph (a few eager calls of warm-up,
    then the capture); all graphs share one memory pool. The cache is unbounded: a sampler
    sees one or two batch sizes.
    """

    warmup_calls = 3  # lets cuBLAS / allocator settle before capture, as PyTorch advises

    def __init__(self, fn: WeightedEpsFn, device: torch.device) -> None:
        self.fn = fn
        self.device = device
        self.graphs: dict[tuple[Any, ...], _Captured] = {}
        self.pool: Any = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        key = (x.shape, x.dtype, t.shape, t.dtype, w.shape, w.dtype)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(x, t, w)
        entry.x.copy_(x)
        entry.t.copy_(t)
        entry.w.copy_(w)
        entry.graph.replay()
        return entry.out.clone()

    def _capture(self, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> _Captured:
        sx, st, sw = (a.detach().to(self.device).clone() for a in (x, t, w))
        # Warm-up on a side stream, as torch.cuda.graphs documents: lazy initialisation
        # (cuBLAS handles, the stacked copies of "auto" composition) must not be captured.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):
                self.fn(sx, st, sw)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = self.fn(sx, st, sw)
        if self.pool is None:
            self.pool = graph.pool()
        return _Captured(graph, sx, st, sw, out)


class AcceleratedEps:
    """(x, t, weights) -> eps, evaluated as :func:`accelerate` configured it.

    ``precision`` and ``compile`` say what actually runs: they fall back to "fp32" / "none"
    where the requested acceleration is unavailable (``compile`` may change to "none" at the
    first call, when a ``torch.compile`` or a graph capture fails).
    """

    def __init__(
        self,
        eps_module: WeightedEpsFn,
        precision: Precision,
        compile: CompileMode,
        device: torch.device,
        compile_options: dict[str, Any] | None = None,
    ) -> None:
        self.device = device
        self.requested = (precision, compile)
        self.precision: Precision = precision
        self.compile: CompileMode = compile
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            warnings.warn(
                "bf16 was asked for but this GPU does not support bfloat16; running in fp32",
                AccelerationWarning,
                stacklevel=3,
            )
            self.precision = "fp32"
        if compile == "cuda_graph" and device.type != "cuda":
            warnings.warn(
                f"CUDA graphs need a CUDA device, not {device}; running eagerly",
                AccelerationWarning,
                stacklevel=3,
            )
            self.compile = "none"
        self._eager = self._with_precision(_base_fn(eps_module, graph_safe=False))
        self._fast: WeightedEpsFn | None = None
        if self.compile != "none":
            fn = self._with_precision(_base_fn(eps_module, graph_safe=True))
            if self.compile == "cuda_graph":
                self._fast = _CudaGraphRunner(fn, device)
            else:
                try:
                    self._fast = torch.compile(fn, **(compile_options or {}))
                except Exception as exc:  # e.g. an unsupported Python version or platform
                    self._fall_back(exc)

    def _with_precision(self, fn: WeightedEpsFn) -> WeightedEpsFn:
        if self.precision == "fp32":
            return fn
        device_type = self.device.type

        def bf16(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
                eps = fn(x, t, w)
            # The sampler's update arithmetic stays in the input's precision.
            return eps.to(x.dtype)

        return bf16

    def _fall_back(self, exc: BaseException) -> None:
        what = "CUDA graph capture" if self.compile == "cuda_graph" else "torch.compile"
        warnings.warn(
            f"{what} failed ({type(exc).__name__}: {exc}); running eagerly",
            AccelerationWarning,
            stacklevel=4,
        )
        self.compile = "none"
        self._fast = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self._fast is not None:
                try:
                    return self._fast(x, t, weights)
                except Exception as exc:
                    # Compiling and capturing happen lazily, at the first call of each shape.
                    # If the eager call fails too, the inputs are at fault: it raises their
                    # ordinary error and the fast path stays. Otherwise the fast path broke.
                    eps = self._eager(x, t, weights)
                    self._fall_back(exc)
                    return eps
            return self._eager(x, t, weights)


def accelerate(
    eps_module: WeightedEpsFn,
    precision: Precision = "fp32",
    compile: CompileMode = "none",
    device: torch.device | str | None = None,
    compile_options: dict[str, Any] | None = None,
) -> AcceleratedEps:
    """Wrap ``eps_module`` (x, t, weights) -> eps, typically a
    :class:`~tora.diffusion.compose.ComposedDenoiser`, for fast repeated inference.

    ``precision``: "fp32", or "bf16" (autocast; on CPUs usually slower than fp32).
    ``compile``: "none", "compile" (:func:`torch.compile`, ``compile_options`` passed on) or
    "cuda_graph" (one captured graph per batch shape). ``device``: where it runs; by default
    the device of the module's parameters. Unavailable options warn with
    :class:`AccelerationWarning` and fall back to eager fp32 (see the module docstring).
    A module other than ``ComposedDenoiser`` must be free of host synchronisation to be
    captured or compiled without graph breaks.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if compile not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile!r}; choose one of {COMPILE_MODES}")
    dev = torch.device(device) if device is not None else _module_device(eps_module)
    return AcceleratedEps(eps_module, precision, compile, dev, compile_options)


__all__ = [
    "COMPILE_MODES",
    "PRECISIONS",
    "AccelConfig",
    "AcceleratedEps",
    "AccelerationWarning",
    "CompileMode",
    "Precision",
    "accelerate",
]
