"""Composition of objective models: eps = sum_i w_i eps_i (TORA, seeds/000 Eq. 4).

Weights arrive with every call, one row per batch item, so one loaded set of models serves any
preference and a whole preference sweep samples as one batch. Summing noise predictions sums
scores, i.e. samples from a product of the objective models' distributions, each raised to its
weight: the diffusion counterpart of adding KL-regularized rewards.

The K models can run in two ways (``mode`` of :class:`ComposedDenoiser`):

* ``"sequential"``: one model after another, skipping any model whose weight is zero on the
  whole batch. Best on the CPU, where the cost is arithmetic and a dropped objective is free.
* ``"stacked"``: the K models are fine-tuned copies of one reference network, so their
  parameters are stacked along a new leading dimension (:func:`torch.func.stack_module_state`)
  and all K run as one :func:`torch.func.vmap`-ed :func:`torch.func.functional_call`. On a GPU
  the cost of these small networks is kernel launches, not arithmetic, and stacking launches
  each layer once for all K instead of K times. It also never reads the weights back to the
  host, so it can be captured in a CUDA graph.

``"auto"`` (the default) picks stacked on CUDA and sequential elsewhere.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from tora.errors import InvalidWeightsError, ShapeMismatchError
from tora.preferences import validate_weights

ComposeMode = Literal["auto", "sequential", "stacked"]
COMPOSE_MODES: tuple[str, ...] = ("auto", "sequential", "stacked")


def check_weights(
    weights: torch.Tensor | np.ndarray | Sequence[float],
    num_models: int,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Validated (B, K) float64 weights (see :func:`tora.preferences.validate_weights`)."""
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().double().numpy()
    return torch.from_numpy(validate_weights(weights, num_models, names))


# ------------------------------------------------------------------------------ stacking
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


class _StackedModels:
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


# ---------------------------------------------------------------------------- composition
class ComposedDenoiser(nn.Module):
    """sum_i w_i eps_i(x, t) over K objective denoisers.

    x: (B, H, D), t: (B,), weights: (B, K) -> (B, H, D)

    ``mode`` chooses how the K models run (see the module docstring): "sequential",
    "stacked", or "auto" (stacked on CUDA, sequential elsewhere, resolved per call from the
    input's device). In sequential mode a model whose weight is zero for the whole batch is
    not evaluated, so dropping an objective costs nothing, and a one-hot weight returns that
    model's output exactly. Stacked mode evaluates all K models.

    Stacked mode runs on *copies* of the models' parameters and buffers, made when it is first
    needed (at construction for ``mode="stacked"``, at the first CUDA call for "auto") and
    remade by ``.to()``, ``.cuda()``, ``.half()`` etc. If the models' tensors are changed in
    any other way afterwards (``load_state_dict``, an optimizer step), call :meth:`refresh`.
    The copies double the parameter memory. With autograd needing the models' gradients,
    "auto" runs sequentially and "stacked" raises, since gradients of the copies would never
    reach the models.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        names: Sequence[str] | None = None,
        mode: ComposeMode = "auto",
    ) -> None:
        super().__init__()
        if len(models) == 0:
            raise InvalidWeightsError("composition needs at least one objective model")
        if mode not in COMPOSE_MODES:
            raise ValueError(f"unknown compose mode {mode!r}; choose one of {COMPOSE_MODES}")
        self.models = nn.ModuleList(models)
        self.names = (
            list(names) if names is not None else [f"model_{i}" for i in range(len(models))]
        )
        self.mode: ComposeMode = mode
        self._stacked: _StackedModels | None = None
        # None: not checked yet. "auto" checks lazily and quietly falls back to sequential.
        self._stackable: bool | None = None
        if mode == "stacked":
            self.refresh()

    # ----------------------------------------------------------------- stacked state
    def refresh(self) -> None:
        """(Re)build the stacked copies of the models' tensors from the models as they are now.

        Raises :class:`~tora.errors.ShapeMismatchError` if the models differ in architecture.
        """
        check_same_architecture(list(self.models), self.names)
        self._stackable = True
        self._stacked = _StackedModels(list(self.models))

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> ComposedDenoiser:
        # .to(), .cuda(), .float() ... all go through _apply: the moved or cast models need
        # their stacked copies remade, or stacked mode would read the old device's tensors.
        super()._apply(fn, recurse)
        if self._stacked is not None:
            self.refresh()
        return self

    def _stackable_now(self) -> bool:
        if self._stackable is None:
            try:
                check_same_architecture(list(self.models), self.names)
                self._stackable = True
            except ShapeMismatchError:
                self._stackable = False
        return self._stackable

    def _grad_needed(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.models.parameters())

    def execution_mode(self, device: torch.device | str) -> Literal["sequential", "stacked"]:
        """The mode a call with inputs on ``device`` runs in (what "auto" resolves to)."""
        if self.mode == "stacked":
            return "stacked"
        if self.mode == "sequential":
            return "sequential"
        if torch.device(device).type == "cuda" and self._stackable_now():
            return "stacked"
        return "sequential"

    # ----------------------------------------------------------------------- calling
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        weights: torch.Tensor,
        validate: bool = True,
        skip_zero_weights: bool = True,
    ) -> torch.Tensor:
        """``validate=False`` skips the checks for weights already validated by the caller
        (the sampling loop calls this 10-100 times per plan with the same weights).

        ``skip_zero_weights=False`` makes sequential mode evaluate every model: deciding to
        skip reads the weights back to the host, which a CUDA graph capture forbids and which
        breaks a ``torch.compile`` graph in two.
        """
        if validate:
            weights = check_weights(weights, len(self.models), self.names)
        w = weights.to(x.device, x.dtype)
        if w.shape[0] == 1 and x.shape[0] > 1:
            w = w.expand(x.shape[0], -1)
        if w.shape[0] != x.shape[0]:
            raise InvalidWeightsError(f"got {w.shape[0]} weight rows for a batch of {x.shape[0]}")
        if self.execution_mode(x.device) == "stacked":
            if not self._grad_needed():
                return self._forward_stacked(x, t, w)
            if self.mode == "stacked":
                raise RuntimeError(
                    "stacked composition runs on copies of the models' parameters, so "
                    "gradients would not reach the models; use mode='sequential' (or 'auto') "
                    "when training through the composition, or run under torch.no_grad()"
                )
        return self._forward_sequential(x, t, w, skip_zero_weights)

    def _forward_sequential(
        self, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, skip_zero: bool
    ) -> torch.Tensor:
        out: torch.Tensor | None = None
        for k, model in enumerate(self.models):
            wk = w[:, k]
            if skip_zero and not bool((wk != 0).any()):
                continue
            term = wk.view(-1, *([1] * (x.dim() - 1))) * model(x, t)
            out = term if out is None else out + term
        assert out is not None  # rows sum to 1, so some weight is positive
        return out

    def _forward_stacked(self, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self._stacked is None:  # "auto" on its first CUDA call
            self.refresh()
        assert self._stacked is not None
        eps = self._stacked(x, t, self.training)  # (K, B, H, D)
        wk = w.t().reshape(len(self.models), x.shape[0], *([1] * (x.dim() - 1)))
        return (wk * eps).sum(0)

    def bind(
        self, weights: torch.Tensor | np.ndarray | Sequence[float]
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The (x, t) -> eps function for fixed weights, as samplers expect."""
        w = check_weights(weights, len(self.models), self.names)
        return lambda x, t: self.forward(x, t, w, validate=False)
