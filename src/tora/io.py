"""Files on disk: the one place in tora-rl that writes, publishes, reads JSON and hashes files.

Every write is atomic: the bytes go to a uniquely named temporary sibling (a rename is atomic
only within one filesystem), are flushed and fsynced, and the sibling is renamed over the
final name, then the directory is fsynced so the rename survives a power cut. A crash or a
kill at any moment leaves either the old file or the new one under the final name, never a
mix, and no temporary file behind.

Writers that need a *path* rather than bytes (h5py, matplotlib, pickle-free binary writers)
use :func:`atomic_write`; several files that belong together (a report and its plots) are
written into a hidden directory and moved in as one unit by :func:`publish_files`.
Checkpoint layouts (safetensors + JSON) are built on these in :mod:`tora.train.checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tora.errors import CheckpointError

__all__ = [
    "PUBLISH_LOCK_FILE",
    "PathLike",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_sha256",
    "fsync_dir",
    "publish_files",
    "read_json_object",
    "text_sha256",
]

PathLike = str | os.PathLike[str]

PUBLISH_LOCK_FILE = ".tora-publish.lock"
"""The lock file :func:`publish_files` holds in the output directory while it moves files in."""


def fsync_dir(directory: PathLike) -> None:
    """Make a rename inside ``directory`` durable (for callers that rename whole directories);
    a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened, renames are durable anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """Flush a file another library wrote (h5py, matplotlib) before it is renamed into place."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. Windows cannot fsync a read-only descriptor; the rename still works
        pass
    finally:
        os.close(fd)


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


@contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception, the
    file written there replaces ``path`` in one step. On an exception it is removed and
    ``path`` is untouched.

    For writers that take a path (``h5py.File(tmp, "w")``, ``fig.savefig(tmp)``). Parent
    directories are created as needed; the file gets the permissions a plain ``open()``
    would give it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(target)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{tmp}: the writer left no file to move to {target}")
        _fsync_file(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    Parent directories are created as needed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(target)
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would;
    # tempfile.mkstemp would leave the final file readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Atomically write ``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as JSON: sorted keys, indent 2, trailing newline (diff-friendly)."""
    atomic_write_text(path, json.dumps(obj, sort_keys=True, indent=2) + "\n")


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so large checkpoints don't fill memory."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_json_object(
    path: PathLike,
    *,
    missing: str = "no such file",
    format_name: str | None = None,
    version: int | None = None,
    what: str = "file",
) -> dict[str, Any]:
    """A JSON object from ``path``, with CheckpointError for every way it can be wrong.

    ``missing`` is the message for an absent file. With ``format_name``, the object's
    ``format`` key must equal it (else "not a tora <what>"); with ``version``, its ``version``.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: {missing}")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{p}: corrupt JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a JSON object, got {type(obj).__name__}")
    if format_name is not None and obj.get("format") != format_name:
        raise CheckpointError(f"{p}: not a tora {what}")
    if version is not None and obj.get("version") != version:
        raise CheckpointError(
            f"{p}: {what} version {obj.get('version')!r} is not supported "
            f"(this tora reads version {version})"
        )
    return obj


def publish_files(
    tmp_dir: PathLike,
    out_dir: PathLike,
    names: list[str] | tuple[str, ...],
) -> list[Path]:
    """Move the files ``names`` from ``tmp_dir`` into ``out_dir`` as one unit; returns the
    paths moved in.

    A writer of several files that belong together (results, tables, plots, the config that
    made them) writes them all into ``tmp_dir``, a directory on the same filesystem as
    ``out_dir`` (e.g. a hidden sibling), then calls this. Holding an exclusive lock on
    ``out_dir/.tora-publish.lock``, it moves each named file present in ``tmp_dir`` over its
    namesake in ``out_dir`` and removes from ``out_dir`` each named file absent from
    ``tmp_dir``, since one left by an earlier writer would sit among files it does not belong
    with. So writers publishing into one directory at the same time leave the files of one of
    them, the last to take the lock, never a mix. Files of ``out_dir`` not in ``names`` are
    never touched. Readers do not take the lock: one reading during a publish may still see
    files of both writers.

    Where ``fcntl`` is missing (Windows) there is no lock: each file is still replaced
    atomically, but concurrent writers may interleave.

    Raises:
        CheckpointError: a name is not a plain file name, or ``out_dir`` is not a directory.
    """
    tmp, out = Path(tmp_dir), Path(out_dir)
    names = list(names)
    for name in names:
        if not name or name in (".", "..", PUBLISH_LOCK_FILE) or Path(name).name != name:
            raise CheckpointError(f"publish_files takes plain file names, got {name!r}")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for name in names:  # flushed before the lock is taken: no need to hold others up for it
        if (tmp / name).is_file():
            _fsync_file(tmp / name)
    try:
        import fcntl  # POSIX only: imported here so that the module loads on Windows
    except ImportError:
        fcntl = None  # type: ignore[assignment]
    fd = os.open(out / PUBLISH_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    moved = []
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        for name in names:
            src, dst = tmp / name, out / name
            if src.is_file():
                os.replace(src, dst)
                moved.append(dst)
            elif dst.is_file() or dst.is_symlink():
                dst.unlink()
        fsync_dir(out)
    finally:
        os.close(fd)  # closing the descriptor releases the lock
    return moved
