"""The one trajectory container every loader returns and every method consumes.

Transitions of all episodes are stored back to back in flat arrays; ``episode_bounds`` holds
the offsets, so episode ``i`` is the slice ``bounds[i]:bounds[i+1]``. Rewards are a matrix
(T, K), one column per objective; each objective has a name and a direction (a cost is an
objective to minimize).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tora.errors import DataError, UnknownObjectiveError


class Direction(str, enum.Enum):
    """Whether larger (maximize) or smaller (minimize, e.g. a cost) values are better."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


@dataclass(frozen=True)
class Objective:
    """One column of the reward matrix."""

    name: str
    direction: Direction = Direction.MAXIMIZE

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise DataError(f"objective name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "direction", Direction(self.direction))

    @property
    def sign(self) -> float:
        """+1 for maximize, -1 for minimize: multiply a value by it to make larger better."""
        return 1.0 if self.direction is Direction.MAXIMIZE else -1.0

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction.value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Objective:
        return cls(str(d["name"]), Direction(d.get("direction", "maximize")))


def objectives_from_names(
    names: Iterable[str], minimize: Iterable[str] = ()
) -> tuple[Objective, ...]:
    """Objectives named ``names``; those also in ``minimize`` get ``Direction.MINIMIZE``."""
    low = set(minimize)
    return tuple(
        Objective(n, Direction.MINIMIZE if n in low else Direction.MAXIMIZE) for n in names
    )


@dataclass
class Trajectories:
    """Offline data: flat per-transition arrays plus episode offsets.

    Shapes (T transitions, E episodes, K objectives):
        observations, next_observations: (T, obs_dim) float32
        actions: (T, act_dim) float32
        rewards: (T, K) float32, column k is ``objectives[k]``
        terminals, timeouts: (T,) bool; a terminal ends the episode in the MDP (no bootstrap),
            a timeout only truncates it
        episode_bounds: (E + 1,) int64, starting at 0 and ending at T, strictly increasing
        preferences: optional (E, K) float32, the preference an episode was collected under
            (D4MORL stores one per trajectory)
    ``metadata`` holds at least ``env_id`` (may be None) and ``source_format``.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_bounds: np.ndarray
    objectives: tuple[Objective, ...]
    preferences: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.next_observations = np.asarray(self.next_observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        rewards = np.asarray(self.rewards, dtype=np.float32)
        self.rewards = rewards[:, None] if rewards.ndim == 1 else rewards
        self.terminals = np.asarray(self.terminals).astype(bool)
        self.timeouts = np.asarray(self.timeouts).astype(bool)
        self.episode_bounds = np.asarray(self.episode_bounds, dtype=np.int64)
        self.objectives = tuple(
            o if isinstance(o, Objective) else Objective(str(o)) for o in self.objectives
        )
        if self.preferences is not None:
            self.preferences = np.asarray(self.preferences, dtype=np.float32)
        self.metadata = dict(self.metadata)
        self.metadata.setdefault("env_id", None)
        self.metadata.setdefault("source_format", "unknown")
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`DataError` naming the first inconsistent or non-finite array."""
        t = self.observations.shape[0]
        if self.observations.ndim != 2:
            raise DataError(f"observations must be 2-D (T, obs_dim), got {self.observations.shape}")
        if self.actions.ndim != 2:
            raise DataError(f"actions must be 2-D (T, act_dim), got {self.actions.shape}")
        if self.rewards.ndim != 2:
            raise DataError(f"rewards must be (T,) or (T, K), got {self.rewards.shape}")
        expected = {
            "actions": (t,),
            "rewards": (t,),
            "next_observations": (t, self.observations.shape[1]),
            "terminals": (t,),
            "timeouts": (t,),
        }
        for name, shape in expected.items():
            got = getattr(self, name).shape[: len(shape)]
            if got != shape:
                raise DataError(
                    f"{name} has shape {getattr(self, name).shape}, expected leading {shape} "
                    f"to match observations {self.observations.shape}"
                )
        if len(self.objectives) != self.rewards.shape[1]:
            raise DataError(
                f"{len(self.objectives)} objectives named {self.objective_names} but rewards "
                f"have {self.rewards.shape[1]} columns"
            )
        if len(set(self.objective_names)) != len(self.objectives):
            raise DataError(f"objective names must be unique, got {self.objective_names}")
        b = self.episode_bounds
        if b.ndim != 1 or b.size < 2 or b[0] != 0 or b[-1] != t or np.any(np.diff(b) <= 0):
            raise DataError(
                "episode_bounds must start at 0, end at the number of transitions "
                f"({t}) and strictly increase; got {b[:5]}...{b[-3:]} (size {b.size})"
            )
        if self.preferences is not None and self.preferences.shape != (
            self.num_episodes,
            self.num_objectives,
        ):
            raise DataError(
                f"preferences must be (episodes, objectives) = "
                f"{(self.num_episodes, self.num_objectives)}, got {self.preferences.shape}"
            )
        for name in ("observations", "next_observations", "actions", "rewards", "preferences"):
            arr = getattr(self, name)
            if arr is not None and not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr))[0]
                raise DataError(
                    f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
                    "clean the data or drop those episodes before training"
                )

    # --------------------------------------------------------------- properties
    @property
    def num_transitions(self) -> int:
        return int(self.observations.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_bounds.size - 1)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_objectives(self) -> int:
        return int(self.rewards.shape[1])

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def has_costs(self) -> bool:
        return any(o.direction is Direction.MINIMIZE for o in self.objectives)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_bounds)

    def fingerprint(self) -> str:
        """Hex SHA-256 of the data itself: every array (dtype, shape, bytes) and the
        objectives, not ``metadata``, so the same data read from another path or format has
        the same fingerprint. Training states record it to refuse resuming on other data."""
        digest = hashlib.sha256()
        header = {"objectives": [o.to_dict() for o in self.objectives]}
        digest.update(json.dumps(header, sort_keys=True).encode())
        arrays = (
            self.observations,
            self.actions,
            self.rewards,
            self.next_observations,
            self.terminals,
            self.timeouts,
            self.episode_bounds,
            self.preferences,
        )
        for array in arrays:
            if array is None:
                digest.update(b"none")
                continue
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def objective_index(self, name: str) -> int:
        """Column of objective ``name``; raises :class:`UnknownObjectiveError` listing choices."""
        names = self.objective_names
        if name not in names:
            raise UnknownObjectiveError(f"unknown objective {name!r}; this dataset has {names}")
        return names.index(name)

    # ----------------------------------------------------------------- access
    def episode_slice(self, i: int) -> slice:
        return slice(int(self.episode_bounds[i]), int(self.episode_bounds[i + 1]))

    def episode_states(self, i: int) -> np.ndarray:
        """States s_0..s_L of episode ``i``: its observations plus the final next observation."""
        sl = self.episode_slice(i)
        return np.concatenate([self.observations[sl], self.next_observations[sl][-1:]], axis=0)

    def episode_returns(self, discount: float = 1.0) -> np.ndarray:
        """(E, K) discounted return of every episode for every objective."""
        rewards = self.rewards.astype(np.float64)
        if discount != 1.0:
            # Discount each step by its position inside its own episode.
            position = np.arange(self.num_transitions) - np.repeat(
                self.episode_bounds[:-1], self.episode_lengths
            )
            rewards = rewards * (discount**position)[:, None]
        return np.add.reduceat(rewards, self.episode_bounds[:-1], axis=0)

    def select_episodes(self, indices: Sequence[int] | np.ndarray) -> Trajectories:
        """A new container holding only the given episodes, in the given order."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            raise DataError("cannot select zero episodes")
        if idx.min() < 0 or idx.max() >= self.num_episodes:
            raise DataError(f"episode indices must lie in [0, {self.num_episodes})")
        rows = np.concatenate([np.arange(*self.episode_bounds[i : i + 2]) for i in idx])
        lengths = self.episode_lengths[idx]
        return Trajectories(
            observations=self.observations[rows],
            actions=self.actions[rows],
            rewards=self.rewards[rows],
            next_observations=self.next_observations[rows],
            terminals=self.terminals[rows],
            timeouts=self.timeouts[rows],
            episode_bounds=np.concatenate([[0], np.cumsum(lengths)]),
            objectives=self.objectives,
            preferences=None if self.preferences is None else self.preferences[idx],
            metadata=dict(self.metadata),
        )

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[Mapping[str, np.ndarray]],
        objectives: Sequence[Objective | str],
        metadata: Mapping[str, Any] | None = None,
    ) -> Trajectories:
        """Build from per-episode dicts with keys observations, actions, rewards,
        next_observations and optionally terminals, timeouts, preference (K,)."""
        if len(episodes) == 0:
            raise DataError("no episodes given")
        cat = {
            k: np.concatenate([np.asarray(e[k]) for e in episodes])
            for k in ("observations", "actions", "rewards", "next_observations")
        }
        lengths = [len(np.asarray(e["actions"])) for e in episodes]
        terminals = np.concatenate(
            [
                np.asarray(e.get("terminals", np.zeros(n, bool)))
                for e, n in zip(episodes, lengths, strict=True)
            ]
        )
        timeouts = np.concatenate(
            [
                np.asarray(e.get("timeouts", np.zeros(n, bool)))
                for e, n in zip(episodes, lengths, strict=True)
            ]
        )
        prefs = None
        if all("preference" in e for e in episodes):
            prefs = np.stack([np.asarray(e["preference"], dtype=np.float32) for e in episodes])
        return cls(
            **cat,
            terminals=terminals,
            timeouts=timeouts,
            episode_bounds=np.concatenate([[0], np.cumsum(lengths)]),
            objectives=tuple(o if isinstance(o, Objective) else Objective(o) for o in objectives),
            preferences=prefs,
            metadata=dict(metadata or {}),
        )

    def summary(self) -> dict[str, Any]:
        """The facts ``tora data inspect`` prints, as a JSON-ready dict."""
        returns = self.episode_returns()
        return {
            "format": self.metadata.get("source_format"),
            "env_id": self.metadata.get("env_id"),
            "episodes": self.num_episodes,
            "transitions": self.num_transitions,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "objectives": self.objective_names,
            "directions": [o.direction.value for o in self.objectives],
            "has_costs": self.has_costs,
            "episode_length": {
                "min": int(self.episode_lengths.min()),
                "mean": float(self.episode_lengths.mean()),
                "max": int(self.episode_lengths.max()),
            },
            "return_min": returns.min(0).tolist(),
            "return_mean": returns.mean(0).tolist(),
            "return_max": returns.max(0).tolist(),
            "terminals": int(self.terminals.sum()),
            "timeouts": int(self.timeouts.sum()),
        }
