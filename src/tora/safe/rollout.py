"""Batched episodes whose policy sees what each episode has earned and spent so far.

:func:`tora.evaluate.rollout.rollout_sweep` calls a policy with observations and fixed weight
rows. A cost budget needs more: a controller that moves w_c as the cost is spent, or a
planner conditioned on the cost left, must see each episode's running reward and cost. Here
the policy is called as ``policy(obs, state)`` with an :class:`EpisodeState` for the active
rows; episodes that finish drop out of the batch, as in ``rollout_sweep``.

The environment's reward vector is read as ``[reward, cost]`` (the safety envs' convention,
through :func:`tora.evaluate.vector.reward_vector`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tora.envs import make_env
from tora.errors import ToraError
from tora.evaluate.rollout import drive_episodes
from tora.evaluate.vector import EnvPool


@dataclass(frozen=True)
class EpisodeState:
    """What a step policy knows about the active rows of the batch (all arrays (B,))."""

    rows: np.ndarray
    """Indices of the active episodes among all the batch's episodes (fixed per episode)."""
    step: int
    """Steps taken so far (the same for every active row)."""
    reward: np.ndarray
    """Reward earned so far in each active episode."""
    cost: np.ndarray
    """Cost spent so far in each active episode."""


StepPolicy = Callable[[np.ndarray, EpisodeState], np.ndarray]
"""(observations (B, obs_dim), state of those B rows) -> actions (B, act_dim)."""


@dataclass(frozen=True)
class Episodes:
    """Returns of a batch of episodes, one entry per episode (row), each (N,)."""

    returns: np.ndarray
    costs: np.ndarray
    lengths: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "returns": self.returns.tolist(),
            "costs": self.costs.tolist(),
            "lengths": self.lengths.tolist(),
        }


LOCKSTEP_ENVS = 64
"""Most environments :func:`run_episodes` keeps alive at once. A Bullet-Safety-Gym env holds
its own physics server, so a selection batch of 240 episodes in one lockstep made a task's
suite row peak at 16-21 GB; in blocks of 64, CarRun's row peaked at 6.0 GB and DroneRun's at
4.7 GB (BENCHMARKS.md section 6). A table batch (3 thresholds x 20 episodes) still runs as
one block."""


def run_episodes(
    policy: StepPolicy,
    env_id: str,
    seeds: Sequence[int],
    progress: bool = True,
    desc: str = "episodes",
    batch: int = LOCKSTEP_ENVS,
) -> Episodes:
    """One episode per reset seed in ``seeds``; row j is reset with ``seeds[j]``. Episodes
    advance in lockstep in consecutive blocks of at most ``batch`` rows, and the policy is
    called once per step for every unfinished episode of the block. ``EpisodeState.rows``
    are always indices into ``seeds``, so a policy that keys its noise by row acts the same
    whatever the block size."""
    if len(seeds) == 0:
        raise ToraError("run_episodes needs at least one seed")
    if batch < 1:
        raise ToraError(f"batch must be >= 1, got {batch}")
    n = len(seeds)
    blocks = [(lo, min(n, lo + batch)) for lo in range(0, n, batch)]
    totals, lengths = [], []
    for k, (lo, hi) in enumerate(blocks):
        label = desc if len(blocks) == 1 else f"{desc} {k + 1}/{len(blocks)}"
        t, ln = _run_block(policy, env_id, seeds[lo:hi], lo, progress, label)
        totals.append(t)
        lengths.append(ln)
    total = np.concatenate(totals)
    if total.shape[1] < 2:
        raise ToraError(f"{env_id} reports no cost: its reward vector has one entry")
    return Episodes(total[:, 0], total[:, 1], np.concatenate(lengths))


def _run_block(
    policy: StepPolicy,
    env_id: str,
    seeds: Sequence[int],
    offset: int,
    progress: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed reward vectors (m, K) and lengths (m,) of one lockstep block whose first row
    is row ``offset`` of the whole batch."""

    def act(idx: np.ndarray, obs: np.ndarray, step: int, sums: np.ndarray | None) -> np.ndarray:
        if sums is not None and sums.shape[1] < 2:
            raise ToraError(f"{env_id} reports no cost: its reward vector has one entry")
        earned = np.zeros((idx.size, 2)) if sums is None else sums[:, :2]
        rows = idx + offset
        return policy(obs, EpisodeState(rows, step, earned[:, 0].copy(), earned[:, 1].copy()))

    with EnvPool(partial(make_env, env_id), len(seeds), workers=0) as pool:
        obs = pool.reset([int(s) for s in seeds]).astype(np.float32)
        limit = pool.max_episode_steps or 10**6
        with tqdm(desc=desc, total=limit, disable=not progress, leave=False) as bar:
            totals, lengths, _ = drive_episodes(pool, obs, act, limit, bar)
    return totals, lengths
