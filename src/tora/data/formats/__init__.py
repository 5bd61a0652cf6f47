"""Load offline datasets from local files into :class:`~tora.data.Trajectories`.

Supported formats (:data:`FORMATS`):

- ``d4morl``: a D4MORL pickle (list of trajectory dicts), read with a restricted unpickler;
- ``dsrl``: a DSRL flat HDF5 file with rewards and costs;
- ``minari``: a Minari dataset directory (``data/main_data.hdf5`` + ``data/metadata.json``);
- ``tora``: this project's own HDF5 format (see :mod:`tora.data.formats.native`).

:func:`load_dataset` detects the format from the file's content and layout unless told;
:func:`save_dataset` writes any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tora.data.formats._io import HDF5_MAGIC, PathLike, open_hdf5
from tora.data.formats.d4morl import load_d4morl, save_d4morl
from tora.data.formats.dsrl import load_dsrl, save_dsrl
from tora.data.formats.minari import load_minari, save_minari
from tora.data.formats.native import FORMAT_NAME, load_native, save_native
from tora.data.formats.safe_pickle import safe_load
from tora.data.trajectories import Trajectories
from tora.errors import FormatError

FORMATS: tuple[str, ...] = ("d4morl", "dsrl", "minari", "tora")

_LOADERS: dict[str, Callable[[PathLike], Trajectories]] = {
    "d4morl": load_d4morl,
    "dsrl": load_dsrl,
    "minari": load_minari,
    "tora": load_native,
}
_SAVERS: dict[str, Callable[[Trajectories, PathLike], None]] = {
    "d4morl": save_d4morl,
    "dsrl": save_dsrl,
    "minari": save_minari,
    "tora": save_native,
}
_SUFFIX_FORMATS = {".h5": "tora", ".pkl": "d4morl", ".pickle": "d4morl", ".hdf5": "dsrl"}
_SUPPORTED = f"supported formats: {', '.join(FORMATS)}"


def _check_format_name(format: str) -> str:
    name = format.lower()
    if name not in FORMATS:
        raise FormatError(f"unknown dataset format {format!r}; {_SUPPORTED}")
    return name


def _detect_directory(path: Path) -> str:
    if (path / "data" / "main_data.hdf5").is_file() or (path / "main_data.hdf5").is_file():
        return "minari"
    raise FormatError(
        f"directory {str(path)!r} is not a recognised dataset (a Minari dataset has "
        f"data/main_data.hdf5); {_SUPPORTED}"
    )


def _detect_hdf5(path: Path) -> str:
    with open_hdf5(path, "HDF5") as f:
        fmt = f.attrs.get("format")
        if (fmt.decode() if isinstance(fmt, bytes) else fmt) == FORMAT_NAME:
            return "tora"
        keys = set(f.keys())
    if any(k.startswith("episode_") for k in keys):
        return "minari"
    if {"observations", "actions", "rewards", "costs"} <= keys:
        return "dsrl"
    raise FormatError(
        f"HDF5 file {str(path)!r} has an unrecognised layout (top-level keys "
        f"{sorted(keys)[:10]}); {_SUPPORTED}"
    )


def _looks_like_pickle(head: bytes) -> bool:
    # Protocols 2-5 start with the PROTO opcode (0x80) followed by the protocol number.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def detect_format(path: PathLike) -> str:
    """The name in :data:`FORMATS` of the dataset at ``path``, judged by content and layout."""
    p = Path(path)
    if not p.exists():
        raise FormatError(f"dataset path {str(p)!r} does not exist")
    if p.is_dir():
        return _detect_directory(p)
    with p.open("rb") as f:
        head = f.read(len(HDF5_MAGIC))
    if head.startswith(HDF5_MAGIC):
        return _detect_hdf5(p)
    if _looks_like_pickle(head):
        return "d4morl"
    what = "an empty file" if not head else "neither an HDF5 file nor a pickle"
    raise FormatError(f"cannot recognise {str(p)!r}: {what}; {_SUPPORTED}")


def load_dataset(path: PathLike, *, format: str | None = None) -> Trajectories:
    """Load the dataset at ``path``; its format is detected unless ``format`` names it."""
    name = detect_format(path) if format is None else _check_format_name(format)
    if format is not None and not Path(path).exists():
        raise FormatError(f"dataset path {str(path)!r} does not exist")
    return _LOADERS[name](path)


def save_dataset(traj: Trajectories, path: PathLike, *, format: str | None = None) -> None:
    """Write ``traj`` to ``path`` as ``format``, or as the format its suffix implies
    (``.h5`` tora, ``.pkl`` d4morl, ``.hdf5`` dsrl; Minari needs ``format="minari"``)."""
    if format is None:
        suffix = Path(path).suffix.lower()
        if suffix not in _SUFFIX_FORMATS:
            raise FormatError(f"cannot infer a format from {str(path)!r}; pass format=...")
        format = _SUFFIX_FORMATS[suffix]
    _SAVERS[_check_format_name(format)](traj, path)


__all__ = [
    "FORMATS",
    "detect_format",
    "load_d4morl",
    "load_dataset",
    "load_dsrl",
    "load_minari",
    "load_native",
    "safe_load",
    "save_d4morl",
    "save_dataset",
    "save_dsrl",
    "save_minari",
    "save_native",
]
