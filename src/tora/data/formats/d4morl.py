"""D4MORL datasets (Zhu, Dang & Grover 2023, the PEDA code) from a local pickle.

A D4MORL file such as ``MO-HalfCheetah-v2_50000_expert_uniform.pkl`` is a pickled list of
trajectory dicts, each with ``observations`` (T, obs), ``next_observations`` (T, obs),
``actions`` (T, act), ``raw_rewards`` (T, K), ``preference`` (T, K; the same row on every step)
and ``terminals`` (T,). There is no scalar reward and no timeout flag: an episode that ends
without a terminal was cut by the time limit, so its last step is marked as a timeout here.

Files are read with :func:`~tora.data.formats.safe_pickle.safe_load`, never plain ``pickle``.
:func:`save_d4morl` writes the same layout (protocol 4, so any Python 3.4+ reads it). Arrays
pickled under numpy 2 name ``numpy._core``; a reader on an old numpy 1.x may not resolve it.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tora.data.formats._io import PathLike, from_episodes
from tora.data.formats.safe_pickle import safe_load
from tora.data.trajectories import Direction, Objective, Trajectories
from tora.errors import DataError, FormatError
from tora.io import atomic_write

# Objective names of the D4MORL environments (PEDA `environments/*.py`), all maximized.
ENV_OBJECTIVES: dict[str, tuple[str, ...]] = {
    "MO-HalfCheetah-v2": ("speed", "energy"),
    "MO-Walker2d-v2": ("speed", "energy"),
    "MO-Hopper-v2": ("speed", "jump"),
    "MO-Hopper-v3": ("speed", "jump", "energy"),
    "MO-Swimmer-v2": ("speed", "energy"),
    "MO-Ant-v2": ("x_speed", "y_speed"),
}
_QUALITIES = ("expert", "amateur")
_PREFERENCE_DISTS = ("uniform", "wide", "narrow")
_REQUIRED_KEYS = (
    "observations",
    "next_observations",
    "actions",
    "raw_rewards",
    "preference",
    "terminals",
)


def parse_file_name(path: PathLike) -> dict[str, Any]:
    """``env_id`` (None if unrecognised), and ``quality``/``preference_dist`` when present.

    ``MO-HalfCheetah-v2_50000_expert_uniform.pkl`` gives env_id ``MO-HalfCheetah-v2``, quality
    ``expert``, preference_dist ``uniform``.
    """
    tokens = Path(path).name.split(".")[0].split("_")
    first = tokens[0]
    # An env id we do not know still looks like "Name-v<digits>".
    looks_like_env = "-v" in first and first.rsplit("-v", 1)[1].isdigit()
    info: dict[str, Any] = {"env_id": first if looks_like_env else None}
    for key, choices in (("quality", _QUALITIES), ("preference_dist", _PREFERENCE_DISTS)):
        found = [t for t in tokens[1:] if t in choices]
        if found:
            info[key] = found[0]
    return info


def _objectives(env_id: str | None, k: int) -> tuple[Objective, ...]:
    names = ENV_OBJECTIVES.get(env_id or "")
    if names is None or len(names) != k:
        names = tuple(f"objective_{i}" for i in range(k))
    return tuple(Objective(n, Direction.MAXIMIZE) for n in names)


def _as_episode(raw: Any, i: int) -> dict[str, np.ndarray]:
    """One trajectory dict converted to the keys :meth:`Trajectories.from_episodes` expects."""
    if not isinstance(raw, Mapping):
        raise FormatError(f"D4MORL trajectory {i} is a {type(raw).__name__}, expected a dict")
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise FormatError(f"D4MORL trajectory {i} lacks keys {missing} (has {sorted(raw)})")
    rewards = np.asarray(raw["raw_rewards"], dtype=np.float32)
    rewards = rewards[:, None] if rewards.ndim == 1 else rewards
    terminals = np.asarray(raw["terminals"]).reshape(-1).astype(bool)
    timeouts = np.zeros_like(terminals)
    if terminals.size and not terminals[-1]:
        timeouts[-1] = True  # ended without a terminal: the time limit cut it
    preference = np.asarray(raw["preference"], dtype=np.float32)
    return {
        "observations": np.asarray(raw["observations"], dtype=np.float32),
        "next_observations": np.asarray(raw["next_observations"], dtype=np.float32),
        "actions": np.asarray(raw["actions"], dtype=np.float32),
        "rewards": rewards,
        "terminals": terminals,
        "timeouts": timeouts,
        "preference": preference[0] if preference.ndim == 2 else preference,
    }


def _episodes(data: Any, source: str) -> list[dict[str, np.ndarray]]:
    if not isinstance(data, (list, tuple)):
        raise FormatError(f"{source}: expected a list of trajectory dicts, got {type(data)}")
    episodes = [_as_episode(raw, i) for i, raw in enumerate(data)]
    kept = [e for e in episodes if len(e["actions"]) > 0]
    if len(kept) < len(episodes):
        warnings.warn(
            f"{source}: dropped {len(episodes) - len(kept)} empty trajectories", stacklevel=3
        )
    if not kept:
        raise DataError(f"{source}: no non-empty trajectories")
    return kept


def load_d4morl(path: PathLike) -> Trajectories:
    """Load a D4MORL pickle (a list of trajectory dicts) as :class:`Trajectories`."""
    episodes = _episodes(safe_load(path), repr(str(path)))
    info = parse_file_name(path)
    k = episodes[0]["rewards"].shape[1]
    metadata = {**info, "source_format": "d4morl"}
    return from_episodes(episodes, _objectives(info["env_id"], k), metadata, repr(str(path)))


def _preferences(traj: Trajectories) -> np.ndarray:
    if traj.preferences is not None:
        return traj.preferences
    k = traj.num_objectives
    return np.full((traj.num_episodes, k), 1.0 / k, dtype=np.float32)


def to_d4morl_list(traj: Trajectories) -> list[dict[str, np.ndarray]]:
    """The container as D4MORL's list of per-trajectory dicts (preference tiled per step)."""
    prefs = _preferences(traj)
    out: list[dict[str, np.ndarray]] = []
    for i in range(traj.num_episodes):
        sl = traj.episode_slice(i)
        length = sl.stop - sl.start
        out.append(
            {
                "observations": traj.observations[sl].copy(),
                "next_observations": traj.next_observations[sl].copy(),
                "actions": traj.actions[sl].copy(),
                "raw_rewards": traj.rewards[sl].copy(),
                "preference": np.tile(prefs[i], (length, 1)),
                "terminals": traj.terminals[sl].copy(),
            }
        )
    return out


def save_d4morl(traj: Trajectories, path: PathLike) -> None:
    """Write ``traj`` as a D4MORL pickle, atomically.

    D4MORL stores neither objective names nor directions nor timeouts: they come back from the
    file name and from "last step not terminal" on load, so a minimized objective would load
    as maximized (a warning says so).
    """
    if traj.has_costs:
        warnings.warn(
            "D4MORL files do not record objective directions: minimized objectives "
            f"{[o.name for o in traj.objectives if o.direction is Direction.MINIMIZE]} "
            "will load as maximized",
            stacklevel=2,
        )
    with atomic_write(path) as tmp, tmp.open("wb") as f:
        pickle.dump(to_d4morl_list(traj), f, protocol=4)
