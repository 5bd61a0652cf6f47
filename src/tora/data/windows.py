"""Windows of future states: what the diffusion planner models.

A window starting at step t of an episode holds the H states s_t, s_{t+m}, ..., s_{t+(H-1)m}
(horizon H, stride m). Its first state is the current state at planning time, inpainted
rather than generated. Indices past the episode's final state repeat that state, so every
transition can start a window and late-episode behaviour is not dropped from training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tora.data.trajectories import Trajectories
from tora.errors import DataError


@dataclass(frozen=True)
class WindowSpec:
    """Shape of a planning window."""

    horizon: int
    stride: int = 1

    def __post_init__(self) -> None:
        if self.horizon < 2 or self.stride < 1:
            raise DataError(
                f"need horizon >= 2 and stride >= 1, got horizon={self.horizon}, "
                f"stride={self.stride}"
            )

    @property
    def span(self) -> int:
        """Environment steps from the first to the last state of a window."""
        return (self.horizon - 1) * self.stride


class WindowIndex:
    """Random access to state windows of a :class:`Trajectories`.

    ``states`` stacks every episode's states s_0..s_L back to back (one more row per episode
    than it has transitions); ``starts`` holds, for every transition, the row of its state.
    """

    def __init__(self, traj: Trajectories, spec: WindowSpec) -> None:
        self.spec = spec
        chunks, starts, ends = [], [], []
        offset = 0
        for i in range(traj.num_episodes):
            s = traj.episode_states(i)
            chunks.append(s)
            n = s.shape[0] - 1  # transitions in this episode
            starts.append(offset + np.arange(n))
            ends.append(np.full(n, offset + n))  # row of the episode's final state
            offset += s.shape[0]
        self.states = np.concatenate(chunks).astype(np.float32)
        self.starts = np.concatenate(starts)
        self.last_rows = np.concatenate(ends)

    def __len__(self) -> int:
        return int(self.starts.size)

    def rows(self, transition_idx: np.ndarray) -> np.ndarray:
        """(B, H) state rows of the windows that start at the given transitions."""
        idx = np.asarray(transition_idx, dtype=np.int64)
        offsets = np.arange(self.spec.horizon) * self.spec.stride
        rows = self.starts[idx, None] + offsets[None, :]
        return np.minimum(rows, self.last_rows[idx, None])

    def windows(self, transition_idx: np.ndarray) -> np.ndarray:
        """(B, H, obs_dim) state windows starting at the given transitions."""
        return self.states[self.rows(transition_idx)]

    def pairs_for_inverse_dynamics(self, transition_idx: np.ndarray) -> np.ndarray:
        """(B, 2, obs_dim): s_t and s_{t+m}, the inputs of the inverse dynamics model."""
        return self.windows(transition_idx)[:, :2]
