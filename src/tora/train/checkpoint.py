"""Checkpoints on disk: safetensors for tensors, JSON for everything else, never pickle.

Pickle-based checkpoints (``torch.save``) execute code when loaded, so a checkpoint found on the
internet could run anything; safetensors and JSON cannot. Every write here is atomic
(:mod:`tora.io`): files go to a temporary sibling first and are renamed into place, so a crash
or a kill never leaves a half-written file under the final name.

Two layouts:

* a *model directory* (:func:`save_module` / :func:`load_state_into`): ``model.safetensors``
  plus ``config.json``; ``config.json`` is written last, so its presence marks a complete
  directory, and it records the SHA-256 and size of the weights, so a flipped byte or a
  truncated copy is refused at load with a message that says which of the two it is;
* a *training-state directory* (:func:`save_training_state` / :func:`load_training_state`):
  model, optional EMA model, optimizer state flattened into tensors + JSON, caller-provided
  extra tensors (e.g. RNG states) and JSON, swapped in as a whole directory so a resume
  always sees either the previous complete state or the new one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from tora.errors import CheckpointError
from tora.io import atomic_write_bytes, atomic_write_json, file_sha256, fsync_dir, read_json_object

__all__ = [
    "CONFIG_FILE",
    "MODEL_FILE",
    "TRAINING_STATE_FILE",
    "has_training_state",
    "load_state_into",
    "load_tensors",
    "load_training_state",
    "read_config",
    "read_training_state_doc",
    "save_module",
    "save_tensors",
    "save_training_state",
    "verify_weights",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINING_STATE_FILE = "state.json"
"""Written last inside a training-state directory: its presence means the directory is complete."""
WEIGHTS_SHA256_KEY = "weights_sha256"
"""Key of a model directory's ``config.json`` holding the SHA-256 of its weights as saved."""
WEIGHTS_BYTES_KEY = "weights_bytes"
"""Key of a model directory's ``config.json`` holding the size of its weights as saved."""
_DEFAULT_REMEDY = "retrain it or restore the directory from a copy"

_EMA_FILE = "ema.safetensors"
_OPTIMIZER_FILE = "optimizer.safetensors"
_EXTRA_FILE = "extra.safetensors"
_TRAINING_FORMAT = "tora-training-state"
_TRAINING_VERSION = 1

# Markers used when encoding optimizer param_groups as JSON: JSON has no tuple (AdamW's
# ``betas`` is one, and some optimizers compare types) and cannot hold a tensor (``lr`` may be a
# tensor when ``capturable``/``fused``), so both are tagged and restored on load.
_TUPLE_TAG = "__tuple__"
_TENSOR_TAG = "__tensor__"


# --------------------------------------------------------------------------- tensor files


def _prepare_for_save(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies safetensors accepts.

    safetensors refuses two entries that share storage (tied weights, views); such entries are
    cloned so each one owns its bytes, while ordinary tensors are not copied.
    """
    out: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"cannot save {name!r}: expected a tensor, got {type(tensor)}")
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() > 0 and ptr in seen_storages:
            t = t.clone()
        elif t.numel() > 0:
            seen_storages.add(ptr)
        out[name] = t
    return out


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Atomically write ``tensors`` to a safetensors file, with optional string ``metadata``."""
    meta = None
    if metadata is not None:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise CheckpointError(f"safetensors metadata must map str to str; bad keys: {bad}")
        meta = dict(metadata)
    data = safetensors.torch.save(_prepare_for_save(tensors), metadata=meta)
    atomic_write_bytes(path, data)


def load_tensors(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file onto ``device``.

    Raises :class:`CheckpointError` if the file is missing, truncated or not safetensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return safetensors.torch.load_file(path, device=str(device))
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from exc


# --------------------------------------------------------------------------- model directories


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _load_checked(module: nn.Module, tensors: Mapping[str, torch.Tensor], source: Path) -> None:
    """``module.load_state_dict(tensors)`` after a check that explains every mismatch at once.

    ``load_state_dict`` alone reports only the first size mismatch and in terms of the model;
    listing all of them together with a hint points straight at the usual cause, a model built
    for other dimensions than the checkpoint's.
    """
    expected = module.state_dict()
    problems: list[str] = []
    for key, tensor in tensors.items():
        if key in expected and _shape(expected[key]) != _shape(tensor):
            problems.append(
                f"checkpoint has {key} {_shape(tensor)} but the model expects "
                f"{_shape(expected[key])}"
            )
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if unexpected:
        problems.append(f"not in the model: {', '.join(unexpected)}")
    if problems:
        hint = (
            "was the model built with another configuration than the checkpoint's (e.g. the "
            "dataset's obs_dim/act_dim or the network sizes differ)?"
        )
        raise CheckpointError(
            f"{source} does not fit the model:\n  " + "\n  ".join(problems) + f"\n{hint}"
        )
    module.load_state_dict(dict(tensors), strict=True)


def save_module(
    directory: str | os.PathLike[str], module: nn.Module, config: Mapping[str, Any]
) -> None:
    """Save ``module``'s state dict and its JSON ``config`` into ``directory``.

    ``config.json`` is removed first and written last: a directory that has one always holds
    the matching weights, even if this call is interrupted half-way.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    fsync_dir(directory)
    weights = directory / MODEL_FILE
    save_tensors(weights, module.state_dict(), metadata={"format": "pt"})
    record = {WEIGHTS_SHA256_KEY: file_sha256(weights), WEIGHTS_BYTES_KEY: weights.stat().st_size}
    atomic_write_json(directory / CONFIG_FILE, {**dict(config), **record})


def verify_weights(
    directory: str | os.PathLike[str],
    config: Mapping[str, Any] | None = None,
    remedy: str = _DEFAULT_REMEDY,
) -> str:
    """Check ``directory/model.safetensors`` against the hash its ``config.json`` recorded;
    returns the file's SHA-256.

    The error says which failure it is (missing, truncated, another size, same size but other
    bytes) and ends with ``remedy``: a truncated copy and a flipped bit call for the same fix,
    but telling them apart tells the user whether a copy or the disk went wrong. Directories
    saved before hashes were recorded have nothing to check against and pass.
    """
    directory = Path(directory)
    path = directory / MODEL_FILE
    record = dict(config) if config is not None else read_config(directory)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (config.json vouches for it); {remedy}")
    actual = file_sha256(path)
    expected = record.get(WEIGHTS_SHA256_KEY)
    if expected is None or actual == expected:
        return actual
    size, want = path.stat().st_size, record.get(WEIGHTS_BYTES_KEY)
    if isinstance(want, int) and size < want:
        problem = f"truncated ({size:,} of {want:,} bytes)"
    elif isinstance(want, int) and size != want:
        problem = f"replaced or corrupt ({size:,} bytes where {want:,} were saved)"
    else:
        problem = "corrupt (same size as saved, but its SHA-256 differs from the recorded one)"
    raise CheckpointError(f"{path}: {problem}; {remedy}")


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a model directory as a dict; CheckpointError if missing/corrupt."""
    return read_json_object(
        Path(directory) / CONFIG_FILE,
        missing=f"no such file; {directory} is not a complete checkpoint directory",
    )


def load_state_into(
    directory: str | os.PathLike[str], module: nn.Module, remedy: str = _DEFAULT_REMEDY
) -> nn.Module:
    """Load ``directory/model.safetensors`` into ``module`` (in place) and return ``module``.

    The file is first checked against the hash in ``config.json`` (:func:`verify_weights`;
    ``remedy`` ends its error). Keys and shapes must match exactly; otherwise CheckpointError
    lists every mismatch.
    """
    directory = Path(directory)
    if (directory / CONFIG_FILE).is_file():
        verify_weights(directory, remedy=remedy)
    path = directory / MODEL_FILE
    _load_checked(module, load_tensors(path), path)
    return module


# --------------------------------------------------------------------------- optimizer state


def _encode_json(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-encodable form of ``value``; tensors are moved into ``tensors`` under ``path``."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value
        return {_TENSOR_TAG: path}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE_TAG: [_encode_json(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode_json(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _encode_json(v, f"{path}.{k}", tensors) for k, v in value.items()}
    raise CheckpointError(
        f"cannot save optimizer value {path} of type {type(value).__name__} without pickle"
    )


def _decode_json(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode_json(v, tensors) for v in value]
    if isinstance(value, dict):
        if set(value) == {_TENSOR_TAG}:
            try:
                return tensors[value[_TENSOR_TAG]]
            except KeyError:
                raise CheckpointError(
                    f"optimizer state refers to tensor {value[_TENSOR_TAG]!r}, which is missing"
                ) from None
        if set(value) == {_TUPLE_TAG}:
            return tuple(_decode_json(v, tensors) for v in value[_TUPLE_TAG])
        return {k: _decode_json(v, tensors) for k, v in value.items()}
    return value


def _flatten_optimizer(
    state_dict: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-able tensors and a JSON document.

    Per-parameter state tensors become ``optim.state.<param_id>.<name>``; non-tensor state
    (e.g. a python ``step`` in older optimizers) and the param groups go to JSON.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            key = f"optim.state.{param_id}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value
            else:
                scalars.setdefault(str(param_id), {})[name] = _encode_json(value, key, tensors)
    groups = [
        _encode_json(group, f"optim.param_groups.{i}", tensors)
        for i, group in enumerate(state_dict["param_groups"])
    ]
    # Every id that has a state entry is listed, even one whose entry is empty, so the rebuilt
    # dict has exactly the original keys.
    doc = {
        "state_ids": [str(pid) for pid in state_dict["state"]],
        "state_scalars": scalars,
        "param_groups": groups,
    }
    return tensors, doc


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], doc: Mapping[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {int(pid): {} for pid in doc["state_ids"]}
    prefix = "optim.state."
    for key, tensor in tensors.items():
        if key.startswith(prefix):
            pid, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[name] = tensor
    for pid, per_param in doc["state_scalars"].items():
        for name, value in per_param.items():
            state.setdefault(int(pid), {})[name] = _decode_json(value, tensors)
    groups = [_decode_json(g, tensors) for g in doc["param_groups"]]
    return {"state": state, "param_groups": groups}


# --------------------------------------------------------------------------- training state


def _staging_paths(final: Path) -> tuple[Path, Path]:
    """Sibling directories used while swapping: the new state being written, the old one."""
    return final.with_name(f".{final.name}.new"), final.with_name(f".{final.name}.old")


def _is_complete(directory: Path) -> bool:
    return (directory / TRAINING_STATE_FILE).is_file()


def _recover(final: Path) -> None:
    """Finish or undo a swap that a previous, killed save left half-way.

    Only ever promotes a *complete* directory to ``final``, then removes leftovers.
    """
    new, old = _staging_paths(final)
    if not final.exists():
        if new.exists() and _is_complete(new):
            os.replace(new, final)
        elif old.exists() and _is_complete(old):
            os.replace(old, final)
        fsync_dir(final.parent)
    for leftover in (new, old):
        if leftover.exists() and final.exists():
            shutil.rmtree(leftover)


def _resolve_training_dir(final: Path) -> Path:
    """The complete training-state directory to read, without modifying anything on disk."""
    new, old = _staging_paths(final)
    # Order matters: after a kill between "final -> old" and "new -> final" the newest
    # complete state is in ``new``; ``old`` is the fallback.
    for candidate in (final, new, old):
        if candidate.is_dir() and _is_complete(candidate):
            return candidate
    if final.is_dir():
        raise CheckpointError(
            f"{final}: no {TRAINING_STATE_FILE}; not a complete training-state directory"
        )
    raise CheckpointError(f"{final}: no such training-state directory")


def has_training_state(directory: str | os.PathLike[str]) -> bool:
    """Whether a complete training state can be loaded from ``directory``.

    Also true while a killed save left the only complete copy in a staging sibling, so a
    resume check should use this rather than testing ``directory`` itself.
    """
    try:
        _resolve_training_dir(Path(directory))
    except CheckpointError:
        return False
    return True


def save_training_state(
    directory: str | os.PathLike[str],
    *,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: nn.Module | None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
    extra_json: Mapping[str, Any] | None = None,
) -> None:
    """Save everything needed to resume training into ``directory``, replacing it atomically.

    ``extra_tensors`` carries e.g. RNG states (``torch.get_rng_state()``, uint8 tensors) and
    ``extra_json`` e.g. the config or data-loader position. The state is written to a sibling
    ``.<name>.new`` directory, then swapped in: ``final -> .<name>.old``, ``.new -> final``,
    delete ``.old``. A kill at any moment leaves a complete state in one of the three places,
    which :func:`load_training_state` finds. Not safe for two concurrent writers.
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    _recover(final)
    new, old = _staging_paths(final)
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()

    files = {MODEL_FILE: model.state_dict()}
    if ema is not None:
        files[_EMA_FILE] = ema.state_dict()
    optim_tensors, optim_doc = _flatten_optimizer(optimizer.state_dict())
    files[_OPTIMIZER_FILE] = optim_tensors
    files[_EXTRA_FILE] = dict(extra_tensors or {})
    for name, tensors in files.items():
        save_tensors(new / name, tensors)
    doc = {
        "format": _TRAINING_FORMAT,
        "version": _TRAINING_VERSION,
        "step": int(step),
        "has_ema": ema is not None,
        "optimizer": optim_doc,
        "extra_json": dict(extra_json or {}),
        # Checksums catch silent corruption (bit flips, partial copies between machines) that
        # a well-formed safetensors header would not reveal.
        "sha256": {name: file_sha256(new / name) for name in files},
    }
    atomic_write_json(new / TRAINING_STATE_FILE, doc)  # last: marks ``new`` complete
    fsync_dir(new)

    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)


def read_training_state_doc(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``state.json`` of the complete training state in ``directory`` (step, extra_json,
    ...) without loading any tensor: enough to decide whether the state may be resumed."""
    return _read_state_doc(_resolve_training_dir(Path(directory)))


def _read_state_doc(source: Path) -> dict[str, Any]:
    return read_json_object(
        source / TRAINING_STATE_FILE,
        format_name=_TRAINING_FORMAT,
        version=_TRAINING_VERSION,
        what="training state",
    )


def load_training_state(
    directory: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: nn.Module | None = None,
) -> dict[str, Any]:
    """Restore ``model``, ``optimizer`` (and ``ema``) in place from :func:`save_training_state`.

    Returns ``{"step": int, "extra_tensors": dict[str, Tensor], "extra_json": dict}``.
    """
    source = _resolve_training_dir(Path(directory))
    doc = _read_state_doc(source)
    for name, digest in doc["sha256"].items():
        if file_sha256(source / name) != digest:
            raise CheckpointError(f"{source / name}: checksum mismatch, the file is corrupt")
    if ema is not None and not doc["has_ema"]:
        raise CheckpointError(f"{source}: an EMA model was given but the state has none")

    _load_checked(model, load_tensors(source / MODEL_FILE), source / MODEL_FILE)
    if ema is not None:
        _load_checked(ema, load_tensors(source / _EMA_FILE), source / _EMA_FILE)
    optim_tensors = load_tensors(source / _OPTIMIZER_FILE)
    try:
        optimizer.load_state_dict(_unflatten_optimizer(optim_tensors, doc["optimizer"]))
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{source}: optimizer state does not fit the optimizer (other parameters?): {exc}"
        ) from exc
    return {
        "step": int(doc["step"]),
        "extra_tensors": load_tensors(source / _EXTRA_FILE),
        "extra_json": doc["extra_json"],
    }
