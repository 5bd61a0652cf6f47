"""DSRL offline safe-RL datasets (Bullet-Safety-Gym tasks) from a local flat HDF5 file.

A DSRL file such as ``SafetyCarRun-v0-40-651.hdf5`` holds flat per-transition datasets:
``observations``, ``next_observations``, ``actions``, ``rewards`` (N,), ``costs`` (N,),
``terminals`` and ``timeouts``. Episodes end where ``terminals | timeouts`` is set. The result
has two objectives: ``reward`` (maximize) and ``cost`` (minimize).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np

from tora.data.formats._io import PathLike, open_hdf5, read_dataset
from tora.data.trajectories import Direction, Objective, Trajectories
from tora.errors import DataError
from tora.io import atomic_write

OBJECTIVES = (Objective("reward", Direction.MAXIMIZE), Objective("cost", Direction.MINIMIZE))
_ARRAYS = (
    "observations",
    "next_observations",
    "actions",
    "rewards",
    "costs",
    "terminals",
    "timeouts",
)
# "SafetyCarRun-v0-40-651" -> "SafetyCarRun-v0": the env id is everything up to "-v<digits>".
_ENV_ID = re.compile(r"^([A-Za-z][\w.]*-v\d+)(?:[-_].*)?$")


def env_id_from_name(path: PathLike) -> str | None:
    """The env id a DSRL file name starts with, or None."""
    stem = Path(path).name.split(".hdf5")[0].split(".h5")[0]
    match = _ENV_ID.match(stem)
    return match.group(1) if match else None


def episode_bounds(ends: np.ndarray, source: str) -> np.ndarray:
    """Offsets of episodes that end where ``ends`` is True; a trailing rest is kept, with a
    warning, as a last (partial) episode."""
    n = ends.shape[0]
    if n == 0:
        raise DataError(f"{source}: the file holds no transitions")
    bounds = np.concatenate([[0], np.flatnonzero(ends) + 1]).astype(np.int64)
    if bounds[-1] != n:
        warnings.warn(
            f"{source}: the last {n - bounds[-1]} transitions have neither a terminal nor a "
            "timeout flag; kept as a final partial episode",
            stacklevel=3,
        )
        bounds = np.append(bounds, n)
    return bounds


def _env_id(path: Path, attrs: h5py.AttributeManager) -> str | None:
    from_name = env_id_from_name(path)
    if from_name is not None:
        return from_name
    for key in ("env_id", "env_name"):
        if key in attrs:
            return str(attrs[key])
    return None


def load_dsrl(path: PathLike) -> Trajectories:
    """Load a DSRL flat HDF5 file as :class:`Trajectories` with objectives (reward, cost)."""
    source = repr(str(path))
    with open_hdf5(path, "DSRL") as f:
        arrays = {name: read_dataset(f, name, source) for name in _ARRAYS}
        env_id = _env_id(Path(path), f.attrs)
    terminals = arrays["terminals"].reshape(-1).astype(bool)
    timeouts = arrays["timeouts"].reshape(-1).astype(bool)
    if terminals.shape != timeouts.shape:
        raise DataError(f"{source}: terminals {terminals.shape} vs timeouts {timeouts.shape}")
    columns = [arrays["rewards"].reshape(-1), arrays["costs"].reshape(-1)]
    if columns[0].shape != columns[1].shape:
        raise DataError(f"{source}: rewards {columns[0].shape} vs costs {columns[1].shape}")
    rewards = np.stack(columns, axis=1).astype(np.float32)
    return Trajectories(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=rewards,
        next_observations=arrays["next_observations"],
        terminals=terminals,
        timeouts=timeouts,
        episode_bounds=episode_bounds(terminals | timeouts, source),
        objectives=OBJECTIVES,
        metadata={"env_id": env_id, "source_format": "dsrl"},
    )


def _reward_cost_columns(traj: Trajectories) -> tuple[int, int]:
    """Columns of the reward and the cost: by name if present, else by direction."""
    names = traj.objective_names
    if traj.num_objectives == 2 and {"reward", "cost"} <= set(names):
        return names.index("reward"), names.index("cost")
    directions = [o.direction for o in traj.objectives]
    if traj.num_objectives == 2 and set(directions) == {Direction.MAXIMIZE, Direction.MINIMIZE}:
        return directions.index(Direction.MAXIMIZE), directions.index(Direction.MINIMIZE)
    raise DataError(
        "DSRL holds exactly two objectives, a reward (maximize) and a cost (minimize); "
        f"this dataset has {names} with directions {[d.value for d in directions]}"
    )


def save_dsrl(traj: Trajectories, path: PathLike) -> None:
    """Write a (reward, cost) container as a DSRL flat HDF5 file, atomically.

    DSRL finds episode ends from the flags alone, so an episode whose last step has neither
    flag gets a timeout there; otherwise it would merge with the next one when read back.
    """
    r, c = _reward_cost_columns(traj)
    timeouts = traj.timeouts.copy()
    last = traj.episode_bounds[1:] - 1
    timeouts[last] |= ~traj.terminals[last]
    arrays = {
        "observations": traj.observations,
        "next_observations": traj.next_observations,
        "actions": traj.actions,
        "rewards": traj.rewards[:, r],
        "costs": traj.rewards[:, c],
        "terminals": traj.terminals,
        "timeouts": timeouts,
    }
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr, track_times=False)
        if traj.metadata.get("env_id"):
            f.attrs["env_id"] = str(traj.metadata["env_id"])
