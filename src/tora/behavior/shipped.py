"""Behaviour policy sets that ship inside the package, so data can be made without training.

D4MORL (Zhu, Dang & Grover 2023) rolled out a fixed set of PGMORL behaviour policies per
environment; tora-rl trains its own (:func:`tora.behavior.train_behavior_set`) and ships the
finished sets as small files under ``tora/behavior/policies/<env name>/``, where ``<env name>``
is the resolved env id without its ``tora/`` namespace (``MO-HalfCheetah-v0`` for
``tora/MO-HalfCheetah-v0``; any other ``/`` becomes ``__`` so the name stays one folder). A
set's folder is exactly what ``train_behavior_set`` writes: ``index.json`` plus one
``policy_NNN.safetensors`` / ``.json`` pair per policy (training state files are not needed).
Environments without a shipped set need ``tora behavior train ENV`` and ``--policies DIR``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tora.behavior.policy import LinearPolicy
from tora.behavior.ppo import MLPPolicy
from tora.behavior.train import INDEX_FILE, load_behavior_set
from tora.envs import resolve_env_id
from tora.errors import ToraError

__all__ = [
    "POLICIES_DIR",
    "load_shipped_policies",
    "policy_set_digest",
    "shipped_policy_dir",
    "shipped_policy_envs",
]

POLICIES_DIR = Path(__file__).resolve().parent / "policies"
"""Root of the shipped sets. The module's own directory rather than importlib.resources:
the policy loaders need real file paths, and tora-rl is always installed as plain files
(never from a zip), where both give the same folder."""

_NAMESPACE = "tora/"


def _folder_name(env_id: str) -> str:
    name = env_id[len(_NAMESPACE) :] if env_id.startswith(_NAMESPACE) else env_id
    # Other namespaces (e.g. "module:Name" or "ns/Name") must not create nested folders.
    return name.replace("/", "__").replace(":", "__")


def shipped_policy_dir(env_id: str) -> Path:
    """Folder where the shipped policy set of ``env_id`` lives (whether or not it exists).

    ``env_id`` may be any id :func:`tora.envs.resolve_env_id` accepts (e.g. D4MORL's
    ``MO-HalfCheetah-v2``); it is resolved first, so aliases share one folder.
    """

    return POLICIES_DIR / _folder_name(resolve_env_id(env_id))


def shipped_policy_envs() -> list[str]:
    """Names of the folders that hold a shipped set (sorted; empty if none ship)."""
    if not POLICIES_DIR.is_dir():
        return []
    return sorted(p.name for p in POLICIES_DIR.iterdir() if (p / INDEX_FILE).is_file())


def load_shipped_policies(env_id: str) -> list[LinearPolicy | MLPPolicy]:
    """The shipped behaviour policies of ``env_id``, in grid order.

    Raises:
        ToraError: no set ships for this environment (the message says how to train one).
        CheckpointError: the shipped files are corrupt or incomplete (a packaging bug).
    """

    resolved = resolve_env_id(env_id)
    folder = shipped_policy_dir(resolved)
    if not (folder / INDEX_FILE).is_file():
        available = ", ".join(shipped_policy_envs()) or "none"
        raise ToraError(
            f"no behaviour policies ship for {resolved}; train them with "
            f"`tora behavior train --env {resolved}` and pass --policies DIR "
            f"(shipped sets: {available}; tora/Cruise-v0 needs none, it has scripted behaviour)"
        )
    return load_behavior_set(folder)


def policy_set_digest(folder: str | Path) -> str:
    """SHA-256 (hex) of a behaviour set's files: ``index.json`` and every ``policy_*`` file,
    by name and content. Data made from two sets with the same digest is made by the same
    policies; the benchmark suites put its first characters in their data file names so a
    retrained or swapped set never reuses data made by the old one. ``command.json`` and
    training state are left out: they describe how the set was trained, not what it does."""
    root = Path(folder)
    names = sorted(p.name for p in root.glob("policy_*") if p.is_file())
    if not (root / INDEX_FILE).is_file() or not names:
        raise ToraError(f"{root} holds no behaviour set (no {INDEX_FILE} or no policy files)")
    h = hashlib.sha256()
    for name in [INDEX_FILE, *names]:
        data = (root / name).read_bytes()
        # Name and length first, so no two different file lists can hash the same bytes.
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
