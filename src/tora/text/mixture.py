"""Mixing per-objective text policies at inference: pi(a|s) = sum_i w_i pi_i(a|s).

The text-game seed's Eq. 3: one CPL policy per objective, combined over the offered choices
with user weights (finite, non-negative, summing to 1, one per policy; checked by
:func:`tora.preferences.validate_weights`). Weights arrive with each call, so one loaded set
of policies serves any preference. Policies with weight 0 are not evaluated, so one-hot
weights give that policy's distribution exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tora.errors import ToraError
from tora.preferences import validate_weights
from tora.text.agents import offered_choices, scene_text
from tora.text.cpl import TextPolicy


class PolicyMixture:
    """Per-objective :class:`~tora.text.cpl.TextPolicy` objects, mixed with given weights."""

    def __init__(self, policies: Sequence[TextPolicy]) -> None:
        if not policies:
            raise ToraError("a policy mixture needs at least one policy")
        self.policies = list(policies)

    @classmethod
    def load(cls, runs: Sequence[str | os.PathLike[str]]) -> PolicyMixture:
        """The policies saved in ``runs`` (one directory per objective), in weight order."""
        return cls([TextPolicy.load(run) for run in runs])

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def check_weights(self, weights: ArrayLike) -> np.ndarray:
        """``weights`` as a float64 (K,) vector; raises InvalidWeightsError unless they are
        finite, non-negative, sum to 1 and number one per policy."""
        arr = validate_weights(weights, len(self.policies), self.names)
        if arr.shape[0] != 1:
            raise ToraError(f"give one weight vector per call, got {arr.shape[0]}")
        return arr[0]

    def probs(self, scene: str, choices: Sequence[str], weights: ArrayLike) -> np.ndarray:
        """sum_i w_i pi_i(.|scene) over ``choices``, float64 (C,)."""
        w = self.check_weights(weights)
        out = np.zeros(len(choices), dtype=np.float64)
        for weight, policy in zip(w, self.policies, strict=True):
            if weight > 0:
                out += weight * policy.probs(scene, choices)
        return out


class MixtureAgent:
    """Plays with a mixture at fixed weights: the most likely choice (``greedy``) or one
    drawn from the mixed distribution with a seeded generator."""

    def __init__(
        self,
        mixture: PolicyMixture,
        weights: ArrayLike,
        *,
        greedy: bool = False,
        seed: int | Sequence[int] | None = None,
    ) -> None:
        self.mixture = mixture
        self.weights = mixture.check_weights(weights)
        self.greedy = greedy
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: str, info: Mapping[str, Any]) -> int:
        offered = offered_choices(info)
        choices = [info["choices"][i] for i in offered]
        p = self.mixture.probs(scene_text(obs, info["choices"]), choices, self.weights)
        if self.greedy:
            return int(offered[int(np.argmax(p))])
        return int(offered[self.rng.choice(len(p), p=p / p.sum())])


__all__ = ["MixtureAgent", "PolicyMixture"]
