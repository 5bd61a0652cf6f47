"""DiME over the environment's objectives as a benchmark method (:mod:`tora.dime.mo`).

One policy ``pi(a | s, w)`` trained with one IQL critic per objective and a fixed-weight data
prior, on preferences it samples itself from the simplex. It never reads the dataset's
per-episode preference labels (``Trajectories.preferences``), so the table lists it as not
seeing preferences, like TORA, and its label carries no "(P)", which in D4MORL's tables marks
methods trained on those labels (BC(P), MORvS(P)). The method id ``dime_p`` says only that the
policy is preference-conditioned.
"""

from __future__ import annotations

from tora.dime.mo import LABEL, DimePConfig, load_dime_p, train_dime_p
from tora.policies.base import Method

__all__ = ["DIME_P"]

DIME_P = Method("dime_p", LABEL, DimePConfig, train_dime_p, load_dime_p, sees_preferences=False)
