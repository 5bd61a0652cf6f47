"""The JSON body of ``POST /act``, turned into the arrays :meth:`Agent.act` takes.

The observation and weight checks are the Python API's own (:func:`tora.planning.inputs.
batch_inputs`, hence :func:`tora.preferences.validate_weights`), so a client reads the message
a Python caller would. Only what JSON alone can get wrong (a missing or misspelt field, text
where numbers belong, weights given by objective name) is checked here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tora.errors import DataError, ShapeMismatchError, UnknownObjectiveError
from tora.planning.inputs import batch_inputs

ACT_FIELDS = ("obs", "weights", "seed")
"""The fields a request may have; "seed" is optional."""


@dataclass(frozen=True)
class ActInputs:
    """One checked request: what the agent is called with, and how to shape the answer."""

    obs: np.ndarray
    """(B, obs_dim) float32 observations."""
    weights: np.ndarray
    """(B, K) float64 preferences, one row per observation."""
    single: bool
    """The request gave one observation without a batch axis: answer one action, not a list."""
    seed: int | None
    """The request's own noise seed, or None to take the server's stream."""

    @property
    def rows(self) -> int:
        return int(self.obs.shape[0])


def parse_act_body(doc: Any, obs_dim: int, objective_names: Sequence[str]) -> ActInputs:
    """Check a decoded ``/act`` body against a served agent's sizes and objectives.

    Raises the Python API's errors: ShapeMismatchError (observation shape, weight-row count),
    InvalidWeightsError (weights that are not a preference), UnknownObjectiveError (a weight
    for an objective the agent does not compose), DataError (anything else malformed).
    """
    if not isinstance(doc, dict):
        raise DataError(
            f'the body must be a JSON object {{"obs": ..., "weights": ...}}; got {_kind(doc)}'
        )
    unknown = [key for key in doc if key not in ACT_FIELDS]
    if unknown:
        raise DataError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; a request has "
            '"obs", "weights" and optionally "seed"'
        )
    missing = [key for key in ("obs", "weights") if key not in doc]
    if missing:
        raise DataError(f"the request has no {' and no '.join(map(repr, missing))}")
    weights = doc["weights"]
    if isinstance(weights, Mapping):
        weights = weights_by_name(weights, objective_names)
    elif isinstance(weights, list) and weights and all(isinstance(w, Mapping) for w in weights):
        weights = [weights_by_name(row, objective_names) for row in weights]
    obs, w, single = batch_inputs(
        _observations(doc["obs"], obs_dim), weights, obs_dim, objective_names
    )
    return ActInputs(obs, w, single, _seed(doc.get("seed")))


def weights_by_name(weights: Mapping[str, Any], objective_names: Sequence[str]) -> list[Any]:
    """``{"speed": 0.7, "energy": 0.3}`` as a row in ``objective_names`` order; objectives
    left out weigh 0 (the values are checked as any weights are, afterwards)."""
    unknown = [name for name in weights if name not in objective_names]
    if unknown:
        raise UnknownObjectiveError(
            f"no objective model {', '.join(map(repr, unknown))} is served; weights by name "
            f"take {', '.join(objective_names)}"
        )
    return [weights.get(name, 0.0) for name in objective_names]


def _observations(value: Any, obs_dim: int) -> np.ndarray:
    """The observations as a float32 array, or the error batch_inputs would give for its
    shape; text, objects and ragged lists are refused here, where their JSON is known."""
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ShapeMismatchError(
            f'"obs" must be one observation of {obs_dim} numbers or a list of them '
            f"(B, {obs_dim}); got {_kind(value)} that is not a rectangular array of numbers"
        ) from exc


def _seed(value: Any) -> int | None:
    # bool is an int in Python, and JSON true is no seed.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f'"seed" must be a non-negative integer, got {value!r}')
    return value


def _kind(value: Any) -> str:
    """A short description of a JSON value for error messages (not the value: it may be huge)."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), f"a {type(value).__name__}")
