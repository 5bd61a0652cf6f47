"""LS and DiME on the toy bandits: one Gaussian policy per trade-off, a sweep, its front.

The bandits are stateless, so the "critic" is exact: ``Q_k(a) = r_k(a)``. Each trade-off
``alpha`` (the weight on ``r1``; ``r2`` gets ``1 - alpha``) has its own diagonal Gaussian
policy ``N(mean, std^2)`` over the action, trained by the improvement/projection scheme of
:mod:`tora.train.losses.dime` (DiME paper, seeds/003, Sec. 3-4 and App. B):

1. every ``target_period`` steps the policy is copied into a frozen sampling policy ``pi_i``
   (the paper's target network, updated every 100 learner steps, Table 3);
2. each step draws ``num_actions`` actions from ``pi_i``, scores them with the rewards, and
   takes one Adam step on the LS or DiME loss: the weighted log-likelihood that fits
   ``pi_theta`` to the improved policy (or DiME's mixture of per-objective ones), plus the
   temperature duals with KL bound ``epsilon``.

A period is thus one EM iteration whose M-step is ``target_period`` Adam steps. Without it
(sampling from the policy being fitted) each Adam step moves the mean by about its learning
rate whatever the weights say, and DiME drifted to the ends of Fonseca-Fleming's front.

The trade-offs of a sweep are trained together as rows of one batch, each row with its own
parameters and temperatures (the losses accept one trade-off and temperature per row), and
every row sees the same action noise (common random numbers): rows differ by ``alpha``
alone, and a seed gives the same sweep every time. Each row is evaluated as the paper does,
at its policy's mean action.

The choice of ``epsilon`` matters for DiME on a one-dimensional concave front. DiME's
interior solutions are wide policies (std 0.7-0.9 on Fonseca-Fleming) whose mean sits between
the two experts ``q_1`` and ``q_2``: the M-step fits one Gaussian to a two-humped mixture. They
persist only while each expert can still reach its own objective's optimum from the policy
within the KL bound; otherwise the policy narrows and drifts to the nearer end, like LS. The
paper gives no bound for its bandits (its default 0.1 is for humanoid control). Measured on
Fonseca-Fleming (21 trade-offs, 6000 steps, seed 0): with ``epsilon = 0.1`` DiME still held 5
interior points (hypervolume 0.43), but they kept drifting outwards with more iterations
(exact EM iterated 300 times kept only ``alpha = 0.5``); with ``epsilon = 1``, the default
here, the interior points (``alpha`` from 0.3 to 0.7) are fixed points (0.47); LS's points sit
at the ends for every ``epsilon`` tried (0.1 to 2). The bandits' Pareto sets are segments in
action space, so an average of the two experts' actions is always Pareto-optimal; the mean of
a wide compromise policy need not be on problems without that property.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from tora.configs import config_to_dict
from tora.dime.bandits import Bandit, make_bandit
from tora.errors import InvalidWeightsError
from tora.evaluate.pareto import hypervolume
from tora.evaluate.plots import color_cycle, new_figure, save_figure
from tora.train.losses.dime import dime_loss, ls_loss

__all__ = [
    "DEFAULT_ALPHAS",
    "METHODS",
    "BanditSolverConfig",
    "BanditSweep",
    "plot_bandit_sweeps",
    "run_bandit_sweep",
]

METHODS: tuple[str, ...] = ("ls", "dime")

DEFAULT_ALPHAS: np.ndarray = np.linspace(0.0, 1.0, 21)
"""The trade-off grid of a sweep: 21 weights on ``r1`` from 0 to 1, both ends included."""

# Points sampled on the true front to compute its hypervolume (the best a sweep can reach).
_FRONT_POINTS = 1001


@dataclass
class BanditSolverConfig:
    """How each trade-off's policy is trained (the same for LS and DiME)."""

    steps: int = 6000
    """Adam steps per trade-off (60 improvement/projection iterations of 100 steps)."""
    num_actions: int = 30
    """Actions sampled from the sampling policy per step (the paper's "actions sampled per
    state", Table 3). The KL estimate of an improvement step cannot exceed log of this, so
    ``epsilon`` must stay below it."""
    epsilon: float = 1.0
    """KL bound of each improvement step: of LS's one improved policy and of each of DiME's
    per-objective ones. See the module docstring for why 1 and not the paper's 0.1."""
    target_period: int = 100
    """Steps between copies of the policy into the frozen sampling policy ``pi_i``: one
    improvement/projection iteration (the paper's target network period, Table 3)."""
    policy_lr: float = 0.02
    """Adam learning rate of the policy's mean and log-std; it decays linearly to 0 over the
    run, so that the final mean does not jitter by a learning rate's worth of steps."""
    dual_lr: float = 0.01
    """Adam learning rate of the log-temperatures (the paper's rate for its dual variables,
    Table 3; here on ``log eta``, so that the temperature stays positive). The dual's
    gradient in ``log eta`` is ``eta (epsilon - KL)``, which shrinks with ``eta``: once a
    policy has narrowed onto a point its temperature lags and its steps fall below the bound,
    which only matters after it has converged."""
    init_temperature: float = 10.0
    """Initial temperature of every improved policy (the paper's 10, Table 3)."""
    init_std: float = 1.0
    """Initial policy standard deviation, per action dimension."""
    init_mean: float | None = None
    """Initial policy mean, per action dimension; ``None`` for the centre of the action box."""

    def __post_init__(self) -> None:
        for name in ("steps", "num_actions", "target_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("policy_lr", "dual_lr", "init_temperature", "init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.epsilon < math.log(self.num_actions):
            raise ValueError(
                f"epsilon must lie in (0, log(num_actions)) = (0, {math.log(self.num_actions):.3g})"
                f": the KL estimate from {self.num_actions} samples cannot exceed that; got "
                f"{self.epsilon}"
            )


@dataclass(frozen=True)
class BanditSweep:
    """What one sweep found: a final policy per trade-off and the front of their means.

    Row ``i`` of every array belongs to trade-off ``alphas[i]`` (the weight on ``r1``).
    """

    problem: str
    """The bandit's name."""
    method: str
    """``"ls"`` or ``"dime"``."""
    seed: int
    """Seed of the action noise."""
    config: BanditSolverConfig
    """The training settings used."""
    alphas: np.ndarray
    """``(n,)`` trade-offs."""
    actions: np.ndarray
    """``(n, d)`` final mean actions, clipped to the action box (what is evaluated)."""
    stds: np.ndarray
    """``(n, d)`` final policy standard deviations."""
    rewards: np.ndarray
    """``(n, 2)`` reward vectors of the mean actions."""
    temperatures: np.ndarray
    """``(n, K)`` final temperatures (``K = 1`` for LS, 2 for DiME)."""
    hypervolume: float
    """Hypervolume of ``rewards`` w.r.t. ``ref_point``."""
    front_hypervolume: float
    """Hypervolume of the true front (densely sampled): the most a sweep can reach."""
    ref_point: np.ndarray
    """``(2,)`` the bandit's reference point (:meth:`~tora.dime.bandits.Bandit.ref_point`)."""
    seconds: float
    """Wall-clock time of the training, excluding the metrics."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, BanditSolverConfig):
                value = config_to_dict(value)
            out[field.name] = value
        return out


def run_bandit_sweep(
    problem: str | Bandit,
    method: str,
    alphas: ArrayLike = DEFAULT_ALPHAS,
    steps: int | None = None,
    seed: int = 0,
    config: BanditSolverConfig | None = None,
) -> BanditSweep:
    """Train one policy per trade-off on a bandit with LS or DiME and measure the front.

    Args:
        problem: a bandit, or its name (``"schaffer"``, ``"fonseca_fleming"``).
        method: ``"ls"`` (linear scalarization) or ``"dime"``.
        alphas: ``(n,)`` trade-offs in ``[0, 1]``, the weight on ``r1``.
        steps: Adam steps; overrides ``config.steps`` when given.
        seed: seeds the action noise; the same seed gives the same sweep.
        config: training settings (default :class:`BanditSolverConfig`).

    Returns:
        A :class:`BanditSweep`.

    Raises:
        ValueError: unknown problem or method, or invalid settings.
        InvalidWeightsError: trade-offs empty, not 1-D, not finite or outside ``[0, 1]``.
    """
    bandit = make_bandit(problem) if isinstance(problem, str) else problem
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    cfg = config or BanditSolverConfig()
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    alpha = _check_alphas(alphas)

    start = time.perf_counter()
    mean, log_std, log_eta = _train(bandit, method, alpha, cfg, seed)
    seconds = time.perf_counter() - start

    actions = mean.clamp(bandit.low, bandit.high).to(torch.float64)
    rewards = bandit.rewards(actions).numpy()
    ref = bandit.ref_point()
    return BanditSweep(
        problem=bandit.name,
        method=method,
        seed=seed,
        config=cfg,
        alphas=alpha,
        actions=actions.numpy(),
        stds=log_std.exp().numpy().astype(np.float64),
        rewards=rewards,
        temperatures=log_eta.exp().numpy().astype(np.float64),
        hypervolume=hypervolume(rewards, ref),
        front_hypervolume=hypervolume(bandit.pareto_front(_FRONT_POINTS), ref),
        ref_point=ref,
        seconds=seconds,
    )


def _check_alphas(alphas: ArrayLike) -> np.ndarray:
    arr = np.asarray(alphas, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidWeightsError(f"alphas must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr >= 0) & (arr <= 1)):
        raise InvalidWeightsError(f"alphas must lie in [0, 1], got {arr.tolist()}")
    return arr


def _gaussian_log_prob(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """``log N(actions; mean, diag(exp(log_std))^2)``: actions ``(B, N, d)``, mean and log_std
    ``(B, d)``; returns ``(B, N)``."""
    z = (actions - mean.unsqueeze(1)) * torch.exp(-log_std).unsqueeze(1)
    per_dim = -0.5 * z.pow(2) - log_std.unsqueeze(1) - 0.5 * math.log(2 * math.pi)
    return per_dim.sum(dim=-1)


def _train(
    bandit: Bandit, method: str, alpha: np.ndarray, cfg: BanditSolverConfig, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train one Gaussian per trade-off; returns the final (mean, log_std, log_eta), detached."""
    rows, dim = alpha.shape[0], bandit.action_dim
    centre = 0.5 * (bandit.low + bandit.high)
    init_mean = centre if cfg.init_mean is None else cfg.init_mean
    mean = torch.full((rows, dim), float(init_mean), requires_grad=True)
    log_std = torch.full((rows, dim), math.log(cfg.init_std), requires_grad=True)
    # LS has one improved policy (of the scalarized reward), DiME one per objective.
    num_temps = 1 if method == "ls" else 2
    log_eta = torch.full((rows, num_temps), math.log(cfg.init_temperature), requires_grad=True)
    tradeoffs = torch.tensor(np.stack([alpha, 1.0 - alpha], axis=-1), dtype=torch.float32)

    optimizer = torch.optim.Adam(
        [
            {"params": [mean, log_std], "lr": cfg.policy_lr},
            {"params": [log_eta], "lr": cfg.dual_lr},
        ],
        foreach=True,  # three small tensors: one fused update beats three per-tensor ones
    )
    # Only the policy's rate decays: the temperatures must keep tracking the KL bound.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda step: 1.0 - step / cfg.steps, lambda step: 1.0]
    )
    generator = torch.Generator().manual_seed(seed)
    target_mean, target_std = mean.detach().clone(), log_std.detach().exp()
    for step in range(cfg.steps):
        if step % cfg.target_period == 0:
            target_mean, target_std = mean.detach().clone(), log_std.detach().exp()
        noise = torch.randn(cfg.num_actions, dim, generator=generator)
        actions = target_mean.unsqueeze(1) + target_std.unsqueeze(1) * noise  # (B, N, d)
        q_values = bandit.rewards(actions)  # (B, N, 2)
        log_probs = _gaussian_log_prob(actions, mean, log_std)
        if method == "ls":
            loss, _ = ls_loss(log_probs, q_values, tradeoffs, log_eta.exp(), cfg.epsilon)
        else:
            loss, _ = dime_loss(log_probs, q_values, tradeoffs, log_eta.exp(), cfg.epsilon)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return mean.detach(), log_std.detach(), log_eta.detach()


def plot_bandit_sweeps(
    sweeps: Sequence[BanditSweep], path: str | PathLike[str], title: str = ""
) -> Path:
    """Draw the true front of the sweeps' bandit and each sweep's points; write a PNG.

    The true front is a line; each sweep's reward vectors are markers coloured by method and
    labelled with their hypervolume; the reference point is a cross. All sweeps must be on
    the same bandit.

    Returns:
        The path written.
    """
    if not sweeps:
        raise ValueError("plot_bandit_sweeps needs at least one sweep")
    problems = {s.problem for s in sweeps}
    if len(problems) > 1:
        raise ValueError(f"all sweeps must be on one bandit, got {sorted(problems)}")
    bandit = make_bandit(sweeps[0].problem, sweeps[0].actions.shape[1])
    front = bandit.pareto_front(_FRONT_POINTS)
    ref = sweeps[0].ref_point

    fig = new_figure((5.6, 4.6))
    ax = fig.add_subplot()
    ax.plot(front[:, 0], front[:, 1], color="0.6", lw=2, label="true front", zorder=1)
    colors = [c["color"] for c in color_cycle(len(sweeps))]
    for i, (sweep, color) in enumerate(zip(sweeps, colors, strict=True)):
        # Hollow markers, each series smaller than the one before: LS and DiME often land on
        # the same end points, and a filled marker would hide the other method's.
        ax.scatter(
            sweep.rewards[:, 0],
            sweep.rewards[:, 1],
            marker="osD^v"[i % 5],
            s=70 / (i + 1),
            facecolors="none",
            edgecolors=color,
            linewidths=1.4,
            label=f"{sweep.method.upper()} (HV {sweep.hypervolume:.3g})",
            zorder=2,
        )
    ax.scatter([ref[0]], [ref[1]], marker="x", s=50, color="black", label="reference point")
    names = bandit.objective_names
    ax.set_xlabel(f"{names[0]} = -f1(a)")
    ax.set_ylabel(f"{names[1]} = -f2(a)")
    ax.set_title(title or bandit.name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)
