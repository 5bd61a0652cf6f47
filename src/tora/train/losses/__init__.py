"""Pure loss functions. Each returns ``(loss, stats)`` (a scalar tensor to minimize and a dict of
floats worth logging), except the helpers that return one tensor, and each can be checked by hand
on tiny tensors.

- :mod:`~tora.train.losses.diffusion`: denoising and Diffusion-DPO (the TORA planners);
- :mod:`~tora.train.losses.regression`: inverse dynamics, behaviour cloning, value critics;
- :mod:`~tora.train.losses.cpl`: Contrastive Preference Learning (the text-game policies);
- :mod:`~tora.train.losses.iql`: IQL's critic losses;
- :mod:`~tora.train.losses.dime` and :mod:`~tora.train.losses.dime_offline`: DiME and linear
  scalarization, on bandits, offline and in finetuning.
"""

from tora.train.losses.diffusion import Stats, denoising_loss, diffusion_dpo_loss, window_errors
from tora.train.losses.regression import (
    behavior_cloning_loss,
    inverse_dynamics_loss,
    value_regression_loss,
)

__all__ = [
    "Stats",
    "behavior_cloning_loss",
    "denoising_loss",
    "diffusion_dpo_loss",
    "inverse_dynamics_loss",
    "value_regression_loss",
    "window_errors",
]
