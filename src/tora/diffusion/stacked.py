"""The stacked execution engine of :class:`~tora.diffusion.compose.ComposedDenoiser`: K
fine-tuned copies of one reference network run as one vmapped call over their stacked
parameters, which on a GPU launches each layer once for all K models instead of K times.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from tora.errors import ShapeMismatchError

__all__ = ["StackedModels", "architecture_signature", "check_same_architecture"]

_PLAIN = (bool, int, float, str, type(None))


def _plain_attributes(module: nn.Module) -> dict[str, Any]:
    """A module's non-tensor settings (``in_features``, ``eps``, ``num_heads``, ...).

    Stacked execution runs one skeleton module with each model's tensors swapped in, so any
    setting outside the tensors is taken from the first model; these must agree too.
    """
    out: dict[str, Any] = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, _PLAIN) or (
            isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)
        ):
            out[key] = value
    return out


def architecture_signature(model: nn.Module) -> dict[str, Any]:
    """What must agree between models for them to run stacked: module classes and settings,
    and the names, shapes and dtypes of parameters and buffers."""
    sig: dict[str, Any] = {}
    for name, module in model.named_modules():
        prefix = name or "<root>"
        sig[f"{prefix} (class)"] = type(module).__qualname__
        for key, value in _plain_attributes(module).items():
            sig[f"{prefix}.{key}"] = value
    for kind, tensors in (
        ("parameter", model.named_parameters()),
        ("buffer", model.named_buffers()),
    ):
        for name, tensor in tensors:
            sig[f"{name} ({kind})"] = (tuple(tensor.shape), tensor.dtype)
    return sig


def check_same_architecture(models: Sequence[nn.Module], names: Sequence[str]) -> None:
    """Raise :class:`ShapeMismatchError` naming the first difference between ``models[0]`` and
    another model, if any."""
    ref = architecture_signature(models[0])
    for model, name in zip(models[1:], names[1:], strict=True):
        sig = architecture_signature(model)
        for key in sorted(ref.keys() | sig.keys()):
            a, b = ref.get(key, "<absent>"), sig.get(key, "<absent>")
            if a != b:
                raise ShapeMismatchError(
                    f"stacked composition needs objective models of one architecture, but "
                    f"{names[0]!r} and {name!r} differ at {key}: {a} vs {b}; use "
                    f"mode='sequential' for models of different architectures"
                )
    if not ref or not any(k.endswith("(parameter)") or k.endswith("(buffer)") for k in ref):
        raise ShapeMismatchError(
            "stacked composition needs models whose parameters and buffers hold everything "
            "that differs between them; these have none; use mode='sequential'"
        )


@contextlib.contextmanager
def _vmappable_attention(enabled: bool) -> Iterator[None]:
    """Keep attention on kernels that vmap can batch, for the duration of one stacked call.

    In eval mode, ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` call fused
    kernels with no vmap batching rule, and so does (at least) the CPU flash kernel of
    ``scaled_dot_product_attention``; functorch then loops over the K models one by one (with
    a warning), which undoes the point of stacking. The unfused layers and the math SDPA
    kernel do the same arithmetic, and at planning's few tokens per window the fused kernels
    gain nothing. The fast-path switch is process-global, so it is restored right after.
    """
    if not enabled:
        yield
        return
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


class StackedModels:
    """All K models as one vmapped call over stacked copies of their parameters and buffers.

    A plain object, not an ``nn.Module``: the stacked tensors are copies and must stay out of
    ``parameters()`` and ``state_dict()`` of the composed module.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        params, buffers = stack_module_state(list(models))
        # Detached: inference copies. Gradients must reach the models themselves, so when
        # autograd needs them the composed module runs sequentially ("auto") or refuses.
        # One flat tuple rather than two dicts: vmap flattens its inputs at every call, and
        # the call's Python overhead is what stacking exists to save.
        self.names = (*params, *buffers)
        self.tensors = tuple(v.detach() for v in (*params.values(), *buffers.values()))
        # The skeleton only supplies the code and the non-tensor settings; "meta" tensors take
        # no memory, and every tensor is replaced by a stacked slice at call time.
        self.skeleton = copy.deepcopy(models[0]).to("meta")
        self.has_attention = any(
            isinstance(m, nn.MultiheadAttention | nn.TransformerEncoderLayer)
            for m in self.skeleton.modules()
        )
        self.num_models = len(models)

        def one(
            tensors: tuple[torch.Tensor, ...], x: torch.Tensor, t: torch.Tensor
        ) -> torch.Tensor:
            return functional_call(
                self.skeleton, dict(zip(self.names, tensors, strict=True)), (x, t)
            )

        # randomness="different": in training mode each model draws its own dropout masks,
        # as when the models run one after another.
        self.call = vmap(one, in_dims=(0, None, None), randomness="different")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, training: bool) -> torch.Tensor:
        """(K, B, ...) outputs of all K models."""
        if self.skeleton.training != training:  # .train() walks every submodule: not per call
            self.skeleton.train(training)
        with _vmappable_attention(self.has_attention):
            return self.call(self.tensors, x, t)
