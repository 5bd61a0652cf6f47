"""Helpers shared by the format modules: existence checks and safe HDF5 reads (writes go
through :func:`tora.io.atomic_write`).

Every loader reports problems with the file itself (missing, truncated, not HDF5, a dataset
absent) as :class:`~tora.errors.FormatError`; these helpers do that translation in one place so
the individual formats only describe their layouts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tora.data.trajectories import Objective, Trajectories
from tora.errors import DataError, FormatError, ToraError
from tora.io import PathLike

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def require_file(path: PathLike, what: str) -> Path:
    """``path`` as a :class:`Path`; FormatError if it is not an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{what} file {str(p)!r} does not exist")
    if not p.is_file():
        raise FormatError(f"{what} path {str(p)!r} is not a regular file")
    return p


@contextmanager
def open_hdf5(path: PathLike, what: str) -> Iterator[h5py.File]:
    """Open an HDF5 file read-only; turn low-level read failures into FormatError.

    h5py reports a truncated or corrupt file as ``OSError`` (sometimes only when a dataset is
    read, not at open time), so the whole ``with`` body is covered.
    """
    p = require_file(path, what)
    try:
        with h5py.File(p, "r") as f:
            yield f
    except OSError as e:
        raise FormatError(
            f"cannot read {what} file {str(p)!r}: not a valid HDF5 file, or truncated/corrupt ({e})"
        ) from e


def from_episodes(
    episodes: Sequence[Mapping[str, np.ndarray]],
    objectives: Sequence[Objective],
    metadata: Mapping[str, Any],
    source: str,
) -> Trajectories:
    """:meth:`Trajectories.from_episodes`, reporting episodes of unequal widths as DataError
    (numpy's concatenate would raise a bare ValueError)."""
    try:
        return Trajectories.from_episodes(episodes, objectives, metadata)
    except ToraError:
        raise
    except ValueError as e:
        raise DataError(f"{source}: episodes disagree in array widths ({e})") from e


def read_dataset(group: h5py.Group, name: str, where: str) -> np.ndarray:
    """The array stored at ``group[name]``; FormatError naming what is there if it is absent."""
    if name not in group:
        raise FormatError(f"{where}: missing dataset {name!r} (found {sorted(group.keys())})")
    node = group[name]
    if not isinstance(node, h5py.Dataset):
        raise FormatError(f"{where}: {name!r} is a group, expected a dataset")
    return np.asarray(node[()])
