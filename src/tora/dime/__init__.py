"""DiME (Distillation of a Mixture of Experts) next to linear scalarization (LS).

From Abdolmaleki et al., "On Multi-Objective Policy Optimization as a Tool for Reinforcement
Learning: Case Studies in Offline RL and Finetuning" (seeds/003). ``losses`` holds both
methods' policy-improvement losses as pure functions; ``bandits`` the paper's two toy bandits
(Schaffer: convex front; Fonseca-Fleming: concave front); ``solvers`` trains a Gaussian policy
per trade-off on a bandit, sweeps the trade-off and measures and plots the front found.
Offline RL: ``critic`` (IQL), ``offline`` (LS / DiME against the data prior, ``tora dime
train``), ``mo`` (DiME over the environment's objectives, the ``dime_p`` benchmark method);
online: ``finetune`` (from a teacher, fixed or learned trade-off, ``tora dime finetune``).
"""

from tora.dime.bandits import BANDITS, Bandit, FonsecaFleming, Schaffer, make_bandit
from tora.dime.solvers import (
    DEFAULT_ALPHAS,
    METHODS,
    BanditSolverConfig,
    BanditSweep,
    plot_bandit_sweeps,
    run_bandit_sweep,
)
from tora.train.losses.dime import (
    dime_loss,
    improvement_weights,
    kl_from_weights,
    ls_loss,
    temperature_dual,
    weighted_log_likelihood,
)

__all__ = [
    "BANDITS",
    "DEFAULT_ALPHAS",
    "METHODS",
    "Bandit",
    "BanditSolverConfig",
    "BanditSweep",
    "FonsecaFleming",
    "Schaffer",
    "dime_loss",
    "improvement_weights",
    "kl_from_weights",
    "ls_loss",
    "make_bandit",
    "plot_bandit_sweeps",
    "run_bandit_sweep",
    "temperature_dual",
    "weighted_log_likelihood",
]
