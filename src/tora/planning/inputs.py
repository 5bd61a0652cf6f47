"""The checks every policy runs on ``act(obs, weights)``, in one place.

The TORA agent and every baseline accept the same inputs (one observation or a batch; one
preference for the batch or one row per observation) and must reject the same bad ones with
the same errors, or a benchmark would compare methods on different terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tora.errors import DataError, ShapeMismatchError
from tora.preferences import Preferences, spread_rows, validate_weights


def batch_inputs(
    obs: np.ndarray | Sequence[float],
    weights: Preferences | np.ndarray | Sequence[float],
    obs_dim: int,
    objective_names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(observations (B, obs_dim) float32, weights (B, K) float64, whether one observation
    was given without a batch axis).

    Raises ShapeMismatchError for a wrong observation shape (ragged or non-numeric rows
    included) or a weight-row count that is
    neither 1 nor B, DataError for non-finite observations, InvalidWeightsError (from
    :func:`~tora.preferences.validate_weights`) for weights that are not a preference.
    """
    try:
        o = np.asarray(obs, dtype=np.float32)
    except (TypeError, ValueError) as exc:  # ragged rows, text: NumPy's message names neither
        raise ShapeMismatchError(
            f"observations must be numbers shaped ({obs_dim},) or (B, {obs_dim}) with rows of "
            f"equal length; NumPy could not read them as one array ({exc})"
        ) from exc
    single = o.ndim == 1
    o = o[None] if single else o
    if o.ndim != 2 or o.shape[1] != obs_dim:
        raise ShapeMismatchError(
            f"observation batch has shape {np.shape(obs)}; expected ({obs_dim},) or (B, {obs_dim})"
        )
    if not np.isfinite(o).all():
        row = int(np.argwhere(~np.isfinite(o))[0, 0])
        raise DataError(f"observations contain NaN or inf (row {row}): {o[row].tolist()}")
    # A Preferences (checked once at the edge, e.g. by rollout_sweep) is only matched against
    # the objectives here, not checked again on every step.
    w = validate_weights(weights, len(objective_names), list(objective_names))
    return o, spread_rows(w, o.shape[0]), single


def check_spaces(
    obs_shape: tuple[int, ...],
    act_shape: tuple[int, ...],
    obs_dim: int,
    act_dim: int,
    what: str = "the models",
) -> None:
    """Raise ShapeMismatchError if an environment's spaces do not fit a policy's sizes."""
    if tuple(obs_shape) != (obs_dim,) or tuple(act_shape) != (act_dim,):
        raise ShapeMismatchError(
            f"environment has observations {tuple(obs_shape)} and actions {tuple(act_shape)}, "
            f"but {what} expect ({obs_dim},) and ({act_dim},): were they trained on this "
            "environment?"
        )
