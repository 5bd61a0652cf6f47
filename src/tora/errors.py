"""Exceptions raised by tora-rl.

Every error a user can cause by giving bad input derives from :class:`ToraError`, so callers
can catch one type; each also derives from the builtin it refines (``ValueError``, ...), so
code that already catches those keeps working.
"""

from __future__ import annotations


class ToraError(Exception):
    """Base class of all tora-rl errors caused by user input."""


class DataError(ToraError, ValueError):
    """A dataset is malformed: wrong shapes, NaN/inf values, inconsistent episode bounds."""


class FormatError(ToraError, ValueError):
    """A file is missing, truncated, corrupt, unsafe or not in the expected format."""


class ShapeMismatchError(ToraError, ValueError):
    """Dimensions disagree between a dataset, a checkpoint and/or an environment."""


class UnknownObjectiveError(ToraError, KeyError):
    """An objective name that the dataset or the loaded models do not have."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class InvalidWeightsError(ToraError, ValueError):
    """Preference weights that are not finite, non-negative, summing to 1, one per model."""


class ConfigError(ToraError, ValueError):
    """A setting outside the values it may take (a negative count, an impossible combination)."""


class CheckpointError(ToraError, ValueError):
    """A checkpoint directory is missing files, corrupt, or incompatible with the request."""


class StaleRunError(CheckpointError):
    """Saved training was started from other inputs (data, reference, settings) than a call
    to continue it; resuming would mix them, so it is refused until the user starts over."""
