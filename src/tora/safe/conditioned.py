"""A diffusion planner conditioned on (reward-to-go, cost-to-go) targets: the baseline for TORA.

The conditioning idea of CDT (Liu et al. 2023) and OASIS (Yao et al. 2024), in the planner
TORA uses: one denoiser over windows of future states, conditioned on what the rest of the
episode should earn and may cost, trained with condition dropout so that classifier-free
guidance (:func:`tora.policies.cond_diffusion.guided_eps`) can push towards the targets. It
is trained by :func:`tora.policies.cond_diffusion.train_conditioned_planner`, exactly like
CondDiffusion(P) but with this condition.

Condition of the window starting at step t of an episode: ``(G_t / r_scale, K_t / c_scale)``
with G_t the reward-to-go and K_t the cost-to-go (undiscounted sums to the episode's end);
the scales are the dataset's largest episode return and cost, so both entries are about 0-1.

Targets at evaluation, as CDT chooses them: the cost target is the threshold kappa; the
reward target is the highest return of a dataset episode that costs less than kappa (the best
return the data shows to be reachable under the budget; with none, that of the cheapest
episode). Both are updated every step with what the episode has earned and spent (the cost
target never below 0), so the planner always sees what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tora.configs import config_from_dict
from tora.data.trajectories import Trajectories
from tora.diffusion.samplers import SamplerConfig, sample
from tora.errors import CheckpointError, ToraError
from tora.nn.denoisers import ConditionedDenoiser
from tora.nn.inverse_dynamics import InverseDynamics
from tora.policies.cond_diffusion import (
    CondDiffusionConfig,
    guided_eps,
    load_conditioned_parts,
    train_conditioned_planner,
)
from tora.policies.supervised import average_returns_to_go
from tora.safe.rollout import EpisodeState
from tora.train.planner_io import PlannerSpec

CONDITION = "return_cost"

__all__ = [
    "CONDITION",
    "ReturnCostPolicy",
    "load_return_cost",
    "reward_target",
    "to_go",
    "train_return_cost",
]


def to_go(traj: Trajectories) -> np.ndarray:
    """(T, K) undiscounted sums of each objective from every step to its episode's end."""
    ends = np.repeat(traj.episode_bounds[1:], traj.episode_lengths)
    remaining = ends - np.arange(traj.num_transitions)
    return average_returns_to_go(traj) * remaining[:, None]


def reward_target(returns: np.ndarray, costs: np.ndarray, threshold: float) -> float:
    """The best episode return among episodes costing less than ``threshold`` (else the
    return of the cheapest episode, ties broken by return)."""
    returns, costs = np.asarray(returns, float), np.asarray(costs, float)
    under = costs < threshold
    if under.any():
        return float(returns[under].max())
    return float(returns[np.lexsort((-returns, costs))[0]])


def train_return_cost(
    traj: Trajectories,
    out_dir: Path,
    config: CondDiffusionConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train the (reward-to-go, cost-to-go)-conditioned planner and its inverse dynamics."""
    config = config or CondDiffusionConfig()
    names = traj.objective_names
    if names[:2] != ["reward", "cost"]:
        raise ToraError(f"a safe-RL dataset has objectives ['reward', 'cost'], got {names}")
    returns = traj.episode_returns()
    scale = np.array([max(abs(returns[:, 0]).max(), 1e-6), max(returns[:, 1].max(), 1.0)])
    cond = to_go(traj)[:, :2] / scale
    extra = {
        "cond_scale": scale.tolist(),
        "episode_returns": returns[:, 0].tolist(),
        "episode_costs": returns[:, 1].tolist(),
    }
    return train_conditioned_planner(
        traj, out_dir, config, cond, CONDITION, extra, device, progress
    )


@dataclass
class ReturnCostPolicy:
    """A loaded (return, cost)-conditioned planner; row j of a batch of episodes acts for
    threshold ``threshold[j]`` towards return ``reward_goal[j]``.

    ``act(obs, state)`` is a :data:`tora.safe.rollout.StepPolicy`."""

    model: ConditionedDenoiser
    spec: PlannerSpec
    inverse: InverseDynamics
    scale: np.ndarray
    reward_goal: np.ndarray
    threshold: np.ndarray
    guidance: float
    sampler: SamplerConfig
    generator: torch.Generator

    def condition(self, state: EpisodeState) -> torch.Tensor:
        """(B, 2) the scaled targets left for the active rows."""
        reward_left = self.reward_goal[state.rows] - state.reward
        cost_left = np.maximum(self.threshold[state.rows] - state.cost, 0.0)
        cond = np.stack([reward_left, cost_left], axis=1) / self.scale
        return torch.as_tensor(cond, dtype=torch.float32)

    @torch.no_grad()
    def act(self, obs: np.ndarray, state: EpisodeState) -> np.ndarray:
        spec = self.spec
        first = spec.normalizer.normalize(torch.as_tensor(np.asarray(obs, np.float32)))
        cond = self.condition(state)
        shape = (first.shape[0], spec.horizon, spec.obs_dim)
        plan = sample(
            lambda x, t: guided_eps(self.model, x, t, cond, self.guidance),
            spec.schedule,
            shape,
            first,
            self.sampler,
            self.generator,
        )
        plan = spec.decode(plan)
        return self.inverse(plan[:, 0], plan[:, 1]).cpu().numpy()


def load_return_cost(out_dir: Path, thresholds: Sequence[float], seed: int = 0) -> ReturnCostPolicy:
    """The planner of ``out_dir`` for a batch whose row j acts for ``thresholds[j]`` (targets
    as in the module docstring), on the CPU, its sampling noise seeded with ``seed``."""
    model, spec, inverse, config = load_conditioned_parts(Path(out_dir), "cpu", CONDITION)
    try:
        scale = np.asarray(config["cond_scale"], dtype=np.float64)
        returns, costs = config["episode_returns"], config["episode_costs"]
        kappas = np.asarray(thresholds, dtype=np.float64)
        goals = np.array([reward_target(returns, costs, k) for k in kappas])
        sampler = config_from_dict(SamplerConfig, config["sampler"])
        guidance = float(config["guidance"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{out_dir}: malformed return/cost planner config: {exc!r}") from exc
    model.eval().requires_grad_(False)
    inverse.eval()
    generator = torch.Generator().manual_seed(int(seed))
    return ReturnCostPolicy(
        model, spec, inverse, scale, goals, kappas, guidance, sampler, generator
    )
