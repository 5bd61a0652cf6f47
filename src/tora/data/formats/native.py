"""tora's own trajectory file format: one HDF5 file (suffix ``.h5``), version 1.

Layout (T transitions, E episodes, K objectives; full description in docs/data-format.md)::

    /                       root attributes, written in this order:
        format      = "tora-trajectories"
        version     = 1                      (int64)
        objectives  = JSON list of {"name": str, "direction": "maximize" | "minimize"}
        metadata    = JSON object (keys sorted), at least env_id and source_format
    /observations           (T, obs_dim) float32
    /next_observations      (T, obs_dim) float32
    /actions                (T, act_dim) float32
    /rewards                (T, K) float32, column k is objectives[k]
    /terminals              (T,) uint8 (0/1; bool is accepted on read)
    /timeouts               (T,) uint8 (0/1; bool is accepted on read)
    /episode_bounds         (E + 1,) int64, 0 = b_0 < b_1 < ... < b_E = T
    /preferences            (E, K) float32, optional

Writes are deterministic: the same container saved twice gives byte-identical files (no
dataset timestamps, fixed attribute and dataset order, sorted JSON keys), so files can be
hashed and compared. Writes are atomic (temporary file in the same directory + ``os.replace``).
A file whose ``version`` is newer than :data:`VERSION` is refused: upgrade tora-rl to read it.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from tora.data.formats._io import PathLike, open_hdf5, read_dataset
from tora.data.trajectories import Objective, Trajectories
from tora.errors import FormatError
from tora.io import atomic_write

FORMAT_NAME = "tora-trajectories"
VERSION = 1
SUFFIX = ".h5"


def _json_default(value: Any) -> Any:
    """Make numpy values and other stragglers in ``metadata`` JSON-serializable."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _datasets(traj: Trajectories) -> dict[str, np.ndarray]:
    arrays = {
        "observations": traj.observations,
        "next_observations": traj.next_observations,
        "actions": traj.actions,
        "rewards": traj.rewards,
        # uint8 rather than HDF5's bool enum: every HDF5 reader understands it.
        "terminals": traj.terminals.astype(np.uint8),
        "timeouts": traj.timeouts.astype(np.uint8),
        "episode_bounds": traj.episode_bounds.astype(np.int64),
    }
    if traj.preferences is not None:
        arrays["preferences"] = traj.preferences.astype(np.float32)
    return arrays


def save_native(traj: Trajectories, path: PathLike) -> None:
    """Write ``traj`` to ``path`` in the tora HDF5 format, atomically and deterministically."""
    objectives = json.dumps([o.to_dict() for o in traj.objectives])
    metadata = json.dumps(traj.metadata, sort_keys=True, default=_json_default)
    with atomic_write(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["version"] = np.int64(VERSION)
        f.attrs["objectives"] = objectives
        f.attrs["metadata"] = metadata
        for name, arr in _datasets(traj).items():
            # track_times=False: a creation timestamp would make identical saves differ.
            f.create_dataset(name, data=np.ascontiguousarray(arr), track_times=False)


def _attr_str(f: h5py.File, key: str, source: str) -> str:
    if key not in f.attrs:
        raise FormatError(f"{source}: missing root attribute {key!r}")
    value = f.attrs[key]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_header(f: h5py.File, source: str) -> None:
    if f.attrs.get("format") is None or _attr_str(f, "format", source) != FORMAT_NAME:
        raise FormatError(f"{source}: not a tora trajectories file (format attribute missing)")
    try:
        version = int(f.attrs["version"])
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{source}: missing or invalid format version") from e
    if version > VERSION:
        raise FormatError(
            f"{source} uses tora trajectories format version {version}, but this tora-rl "
            f"reads versions up to {VERSION}: upgrade tora-rl to read it"
        )
    if version < 1:
        raise FormatError(f"{source}: invalid format version {version}")


def _json_attr(f: h5py.File, key: str, source: str) -> Any:
    try:
        return json.loads(_attr_str(f, key, source))
    except json.JSONDecodeError as e:
        raise FormatError(f"{source}: attribute {key!r} is not valid JSON ({e})") from e


def _objectives(raw: Any, source: str) -> tuple[Objective, ...]:
    try:
        return tuple(Objective.from_dict(d) for d in raw)
    except (TypeError, KeyError, ValueError) as e:
        raise FormatError(f"{source}: malformed objectives attribute ({e})") from e


def load_native(path: PathLike) -> Trajectories:
    """Read a file written by :func:`save_native`."""
    source = repr(str(path))
    with open_hdf5(path, "tora trajectories") as f:
        _check_header(f, source)
        objectives = _objectives(_json_attr(f, "objectives", source), source)
        metadata = _json_attr(f, "metadata", source)
        arrays = {name: read_dataset(f, name, source) for name in _datasets_names(f)}
    if not isinstance(metadata, dict):
        raise FormatError(f"{source}: metadata attribute is not a JSON object")
    # Remember where the data came from before it was converted to this format.
    if metadata.get("source_format") not in (None, "tora", "unknown"):
        metadata.setdefault("converted_from", metadata["source_format"])
    metadata["source_format"] = "tora"
    return Trajectories(**arrays, objectives=objectives, metadata=metadata)


def _datasets_names(f: h5py.File) -> list[str]:
    required = [
        "observations",
        "next_observations",
        "actions",
        "rewards",
        "terminals",
        "timeouts",
        "episode_bounds",
    ]
    return [*required, "preferences"] if "preferences" in f else required
