"""Composition of objective models: eps = sum_i w_i eps_i (TORA, seeds/000 Eq. 4).

Weights arrive with every call, one row per batch item, so one loaded set of models serves any
preference and a whole preference sweep samples as one batch. Summing noise predictions sums
scores, i.e. samples from a product of the objective models' distributions, each raised to its
weight: the diffusion counterpart of adding KL-regularized rewards.

The K models can run in two ways (``mode`` of :class:`ComposedDenoiser`):

* ``"sequential"``: one model after another, skipping any model whose weight is zero on the
  whole batch. Best on the CPU, where the cost is arithmetic and a dropped objective is free.
* ``"stacked"`` (:mod:`tora.diffusion.stacked`): the K models are fine-tuned copies of one
  reference network, so their parameters are stacked along a new leading dimension
  (:func:`torch.func.stack_module_state`) and all K run as one :func:`torch.func.vmap`-ed
  :func:`torch.func.functional_call`. On a GPU the cost of these small networks is kernel
  launches, not arithmetic, and stacking launches each layer once for all K instead of K
  times. It also never reads the weights back to the host, so it can be captured in a CUDA
  graph.

``"auto"`` (the default) picks stacked on CUDA and sequential elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tora.diffusion.stacked import StackedModels, check_same_architecture
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


def weighted_sum(eps: torch.Tensor | Sequence[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    """sum_k w[:, k] * eps_k: the composition itself, which both execution modes call.

    ``eps``: the K outputs, as K tensors (B, ...) or one stacked (K, B, ...) tensor; ``w``:
    (B, K) weights in the outputs' dtype and device. A list is accumulated model by model in
    its order, so a one-hot weight row returns that model's output exactly.
    """
    if isinstance(eps, torch.Tensor):
        k, b = eps.shape[0], eps.shape[1]
        return (w.t().reshape(k, b, *([1] * (eps.dim() - 2))) * eps).sum(0)
    out: torch.Tensor | None = None
    for k, e in enumerate(eps):
        term = w[:, k].view(-1, *([1] * (e.dim() - 1))) * e
        out = term if out is None else out + term
    if out is None:
        raise InvalidWeightsError("weighted_sum needs at least one model output")
    return out


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
        self._stacked: StackedModels | None = None
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
        self._stacked = StackedModels(list(self.models))

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
        # Rows sum to 1, so some model has a positive weight and the list is never empty.
        used = [k for k in range(len(self.models)) if not skip_zero or bool((w[:, k] != 0).any())]
        return weighted_sum([self.models[k](x, t) for k in used], w[:, used])

    def _forward_stacked(self, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self._stacked is None:  # "auto" on its first CUDA call
            self.refresh()
        assert self._stacked is not None
        return weighted_sum(self._stacked(x, t, self.training), w)  # eps: (K, B, H, D)

    def bind(
        self, weights: torch.Tensor | np.ndarray | Sequence[float], validate: bool = True
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The (x, t) -> eps function for fixed weights, as samplers expect. ``validate=False``
        for weights the caller has already checked (a (B, K) tensor on the inputs' device)."""
        w = check_weights(weights, len(self.models), self.names) if validate else weights
        return lambda x, t: self.forward(x, t, w, validate=False)  # type: ignore[arg-type]
