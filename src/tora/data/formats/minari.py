"""Minari datasets (Farama's offline-RL format) from a local dataset directory.

A Minari dataset directory holds ``data/main_data.hdf5`` and ``data/metadata.json``. The HDF5
file has one group per episode (``episode_0``, ``episode_1``, ...) with ``observations``
(T + 1 rows: the final observation is included), ``actions`` (T), ``rewards`` (T,) or (T, K)
for vector rewards, ``terminations``, ``truncations`` and ``infos`` (ignored here). Only Box
(array) observation and action spaces are supported; Dict spaces are stored as groups and
refused with a FormatError.

:func:`save_minari` writes this HDF5 layout plus a small ``metadata.json`` (dataset id, env
spec id, objective names and directions). It is enough for tora to round-trip and for tools
reading the HDF5 directly; it does not serialize gymnasium spaces, which the ``minari`` package
itself needs to open a dataset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tora.data.formats._io import (
    PathLike,
    from_episodes,
    open_hdf5,
    read_dataset,
)
from tora.data.trajectories import Direction, Objective, Trajectories
from tora.errors import DataError, FormatError
from tora.io import atomic_write

_EPISODE = re.compile(r"^episode_(\d+)$")


def resolve_paths(path: PathLike) -> tuple[Path, Path]:
    """(main_data.hdf5, metadata.json) for a dataset directory, its ``data/`` folder, or the
    HDF5 file itself."""
    p = Path(path)
    if p.is_dir():
        p = p / "data" / "main_data.hdf5" if (p / "data").is_dir() else p / "main_data.hdf5"
    if not p.is_file():
        raise FormatError(
            f"{str(path)!r} is not a Minari dataset: expected a directory containing "
            "data/main_data.hdf5, or that file itself"
        )
    return p, p.parent / "metadata.json"


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"cannot read Minari metadata {str(path)!r}: {e}") from e
    if not isinstance(meta, dict):
        raise FormatError(f"Minari metadata {str(path)!r} is not a JSON object")
    return meta


def _env_id(meta: dict[str, Any]) -> str | None:
    spec = meta.get("env_spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            spec = None
    if isinstance(spec, dict) and spec.get("id"):
        return str(spec["id"])
    return str(meta["dataset_id"]) if meta.get("dataset_id") else None


def _objectives(meta: dict[str, Any], k: int, vector: bool) -> tuple[Objective, ...]:
    names = meta.get("reward_names", meta.get("objectives"))
    if not (isinstance(names, list) and len(names) == k):
        names = [f"objective_{i}" for i in range(k)] if vector else ["reward"]
    directions = meta.get("objective_directions")
    if not (isinstance(directions, list) and len(directions) == k):
        directions = [Direction.MAXIMIZE] * k
    return tuple(Objective(str(n), Direction(d)) for n, d in zip(names, directions, strict=True))


def _array(group: h5py.Group, name: str, where: str) -> np.ndarray:
    if isinstance(group.get(name), h5py.Group):
        raise FormatError(
            f"{where}: {name!r} is a group (a Dict space): dict {name} are not supported yet, "
            "only Box (array) spaces"
        )
    return read_dataset(group, name, where)


def _episode(group: h5py.Group, where: str) -> dict[str, np.ndarray]:
    obs = _array(group, "observations", where)
    actions = _array(group, "actions", where)
    t = actions.shape[0]
    if obs.shape[0] != t + 1:
        raise DataError(f"{where}: {obs.shape[0]} observations for {t} actions, expected {t + 1}")
    obs = obs.reshape(t + 1, -1)
    return {
        "observations": obs[:-1],
        "next_observations": obs[1:],
        "actions": actions.reshape(t, -1),
        "rewards": _array(group, "rewards", where),
        "terminals": _array(group, "terminations", where).reshape(-1).astype(bool),
        "timeouts": _array(group, "truncations", where).reshape(-1).astype(bool),
    }


def _episode_names(f: h5py.File, source: str) -> list[str]:
    found = [(int(m.group(1)), key) for key in f if (m := _EPISODE.match(key))]
    if not found:
        raise FormatError(f"{source}: no episode_<n> groups (found {sorted(f.keys())[:10]})")
    return [key for _, key in sorted(found)]


def load_minari(path: PathLike) -> Trajectories:
    """Load a Minari dataset directory (or its main_data.hdf5) as :class:`Trajectories`."""
    data_path, meta_path = resolve_paths(path)
    meta = _read_metadata(meta_path)
    source = repr(str(data_path))
    with open_hdf5(data_path, "Minari") as f:
        episodes = [_episode(f[n], f"{source}/{n}") for n in _episode_names(f, source)]
    if any(len(e["actions"]) == 0 for e in episodes):
        raise DataError(f"{source}: an episode has no steps")
    first = episodes[0]["rewards"]
    k = 1 if first.ndim == 1 else first.shape[1]
    metadata = {
        "env_id": _env_id(meta),
        "dataset_id": meta.get("dataset_id"),
        "source_format": "minari",
    }
    return from_episodes(episodes, _objectives(meta, k, first.ndim > 1), metadata, source)


def _write_episode(group: h5py.Group, traj: Trajectories, i: int, vector: bool) -> None:
    sl = traj.episode_slice(i)
    arrays = {
        "observations": traj.episode_states(i),
        "actions": traj.actions[sl],
        "rewards": traj.rewards[sl] if vector else traj.rewards[sl, 0],
        "terminations": traj.terminals[sl],
        "truncations": traj.timeouts[sl],
    }
    for name, arr in arrays.items():
        group.create_dataset(name, data=arr, track_times=False)
    group.create_group("infos")
    group.attrs["id"] = i
    group.attrs["total_steps"] = sl.stop - sl.start


def _metadata_json(traj: Trajectories) -> str:
    env_id = traj.metadata.get("env_id")
    meta = {
        "dataset_id": traj.metadata.get("dataset_id") or env_id or "tora/dataset-v0",
        "env_spec": json.dumps({"id": env_id}) if env_id else None,
        "total_episodes": traj.num_episodes,
        "total_steps": traj.num_transitions,
        "data_format": "hdf5",
        "reward_names": traj.objective_names,
        "objective_directions": [o.direction.value for o in traj.objectives],
    }
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def save_minari(traj: Trajectories, directory: PathLike) -> None:
    """Write ``traj`` as a Minari dataset directory (``data/main_data.hdf5`` + metadata.json).

    Minari stores T + 1 observations per episode, so each episode's next observations are
    taken to be its following observations plus the final ``next_observations`` row.
    """
    data_dir = Path(directory) / "data"
    vector = not (traj.num_objectives == 1 and traj.objective_names == ["reward"])
    with atomic_write(data_dir / "main_data.hdf5") as tmp, h5py.File(tmp, "w") as f:
        for i in range(traj.num_episodes):
            _write_episode(f.create_group(f"episode_{i}"), traj, i, vector)
        f.attrs["total_episodes"] = traj.num_episodes
        f.attrs["total_steps"] = traj.num_transitions
    with atomic_write(data_dir / "metadata.json") as tmp:
        tmp.write_text(_metadata_json(traj), encoding="utf-8")
