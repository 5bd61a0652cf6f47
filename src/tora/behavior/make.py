"""One call that makes an offline dataset for any supported env, as ``tora data make`` does.

The built-in Cruise task uses its scripted controllers; every other env rolls out a behaviour
policy set (the one that ships with tora-rl, or a directory from ``tora behavior train``):
the safe-RL tasks DSRL's way, spread over the cost-penalty grid and action-noise levels
(:func:`tora.behavior.safe.collect_safe`), the others with D4MORL's per-episode preferences
(:func:`tora.behavior.collect.collect_with_policies`). The benchmark suite and the CLI share
this function, so a dataset made by either is the same bytes for the same arguments.
"""

from __future__ import annotations

from pathlib import Path

from tora.behavior.collect import collect_with_policies
from tora.behavior.safe import collect_safe, is_safety_task
from tora.behavior.shipped import load_shipped_policies, policy_set_digest, shipped_policy_dir
from tora.behavior.train import INDEX_FILE, load_behavior_set
from tora.data.trajectories import Trajectories
from tora.envs import CRUISE_ID, resolve_env_id
from tora.envs.scripted import collect_cruise


def is_scripted(env_id: str, policies_dir: str | Path | None = None) -> bool:
    """Whether ``env_id`` is made by scripted behaviour (Cruise without a policy set)."""

    return resolve_env_id(env_id) == CRUISE_ID and not policies_dir


def collection_kind(env_id: str, policies_dir: str | Path | None = None) -> str:
    """How data of ``env_id`` is made: ``"scripted"`` (Cruise without a policy set),
    ``"dsrl"`` (the safe-RL tasks) or ``"d4morl"`` (every other env)."""

    if is_scripted(env_id, policies_dir):
        return "scripted"
    return "dsrl" if is_safety_task(env_id) else "d4morl"


def data_source_tag(env_id: str) -> str:
    """What makes ``env_id``'s data without a policy folder, short enough for a file name:
    ``"scripted"`` for Cruise's scripted behaviour, else ``"set"`` and the first 12 hex
    characters of the shipped set's :func:`~tora.behavior.shipped.policy_set_digest`.
    Raises ToraError when no set ships for ``env_id``."""

    if is_scripted(env_id):
        return "scripted"
    folder = shipped_policy_dir(env_id)
    if not (folder / INDEX_FILE).is_file():  # the test load_shipped_policies makes
        load_shipped_policies(env_id)  # raises the error that says how to train a set
    return "set" + policy_set_digest(folder)[:12]


def make_dataset(
    env_id: str,
    episodes: int = 1000,
    quality: str = "expert",
    prefs: str = "uniform",
    seed: int = 0,
    policies_dir: str | Path | None = None,
    progress: bool = True,
) -> Trajectories:
    """Collect ``episodes`` episodes of ``env_id``; the same arguments give the same data.

    ``quality`` and ``prefs`` do not apply to Cruise's scripted behaviour (its controllers
    already span the trade-off) nor to the safe-RL tasks (their cost-penalty grid and noise
    levels do), and are ignored there.
    """

    resolved = resolve_env_id(env_id)
    kind = collection_kind(resolved, policies_dir)
    if kind == "scripted":
        return collect_cruise(episodes, seed, progress)
    if policies_dir:
        policies = load_behavior_set(policies_dir)
        source = f"dir:{Path(policies_dir).name}"
    else:
        policies = load_shipped_policies(resolved)
        source = f"shipped:{shipped_policy_dir(resolved).name}"
    if kind == "dsrl":
        traj = collect_safe(resolved, policies, episodes, seed, progress)
    else:
        traj = collect_with_policies(resolved, policies, episodes, quality, prefs, seed, progress)
    # The set's folder name, never its absolute path: the file must not depend on where the
    # policies happen to live, or identical data would give different bytes.
    traj.metadata["policy_set"] = source
    return traj
