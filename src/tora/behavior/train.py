"""A set of ARS behaviour policies spread over the preference simplex, trained with warm starts.

D4MORL's behaviour policies are a front of PGMORL (Xu et al., ICML 2020) checkpoints. PGMORL
grows its population by continuing from already-trained policies rather than from scratch,
and the project's own ARS runs show why that matters: started from zero, a mixed preference
on MO-HalfCheetah stays standing still (a local optimum) while a policy warm-started from the
speed-only one keeps running. So the set is trained as a chain: the simplex vertices
(single-objective preferences) start from zero, then every other preference starts from the
M and normalization of its nearest finished neighbour, growing outwards from the vertices
(ties go to the neighbour with the shorter chain behind it, then to the lower grid index, so
for two objectives the chain alternates between the two ends and meets in the middle).

Layout of ``out_dir``::

    index.json                       plan (weights, order, parents, config) + finished policies
    policy_007.safetensors / .json   one finished policy (see tora.behavior.policy)
    policy_007.state.safetensors     the policy being trained: M, statistics, iteration

Resuming: rerun the same call. Finished policies (listed in ``index.json``) are loaded, the
current one continues from its state file, which is rewritten atomically after every
``checkpoint_every`` iterations, so a kill at any moment loses at most that many iterations.
Because all randomness is keyed by (seed, policy, iteration, direction), the resumed set is
identical to an uninterrupted one.

The Drone's circle task has a third kind (:class:`~tora.behavior.flight.FlightConfig`): no
chain, every policy is a cascade flight controller whose setpoints one shared search picks per
row (:mod:`tora.behavior.flight`); the search record ``search.json`` makes it resumable too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tora.behavior.ars import (
    ARSConfig,
    IterationInfo,
    RolloutRunner,
    env_spaces,
    resolve_config,
    train_ars,
)
from tora.behavior.flight import FlightConfig, FlightPolicy, choose_pair, search_flight
from tora.behavior.loader import load_behavior_policy
from tora.behavior.policy import LinearPolicy, load_policy, policy_paths
from tora.behavior.ppo import MLPPolicy, PPOConfig, train_ppo
from tora.behavior.rollout import derive_seed, objective_signs, scalarize
from tora.behavior.safe import preference_grid
from tora.envs import curriculum_kwargs, make_env
from tora.errors import CheckpointError, ToraError
from tora.io import atomic_write_json, read_json_object

__all__ = [
    "INDEX_FILE",
    "SetProgress",
    "chain_order",
    "load_behavior_set",
    "train_behavior_set",
]

INDEX_FILE = "index.json"
_SET_FORMAT = "tora-behavior-set"
_SET_VERSION = 1
# Settings that do not change the trained policies; a resume may use other values.
_FREE_SETTINGS = ("workers", "checkpoint_every")
_LATER_SETTINGS = ("root_iterations", "warmup_iterations", "bias")
# Seed-key tag of a root's warm-up stage, so its streams differ from the true-task stage's.
_WARMUP_KEY = 1


@dataclass(frozen=True)
class SetProgress:
    """What a :func:`train_behavior_set` callback receives."""

    policy_index: int
    """Row of the preference grid being trained."""
    position: int
    """Place of that policy in the training chain (0 = trained first)."""
    parent: int | None
    """Grid row whose finished policy it started from (None: from zero)."""
    info: IterationInfo
    """The ARS event (start of training, or an iteration just finished)."""


def chain_order(
    weights: np.ndarray, chain_from: str = "corners"
) -> tuple[list[int], list[int | None]]:
    """Training order of the grid rows and each row's warm-start parent.

    With ``chain_from="corners"``, vertices of the simplex (a weight of exactly 1) come first,
    from zero (parent None); with ``"first"`` only row 0 starts from zero, with ``"ends"``
    rows 0 and n - 1. Then,
    repeatedly, the untrained row closest to any trained row, which becomes its parent.
    Ties go to the parent with the fewest ancestors, then to lower row indices. Distances are
    rounded to 9 decimals so that rounding in the grid does not decide ties.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    if chain_from == "first":
        roots = [0]
    elif chain_from == "ends":
        roots = sorted({0, n - 1})
    elif chain_from == "corners":
        roots = [i for i in range(n) if np.isclose(w[i].max(), 1.0)] or [0]
    else:
        raise ValueError(f"chain_from must be 'corners', 'first' or 'ends', got {chain_from!r}")
    order: list[int] = list(roots)
    parents: list[int | None] = [None] * n
    depth = dict.fromkeys(roots, 0)
    remaining = [i for i in range(n) if i not in depth]
    dist = np.round(np.linalg.norm(w[:, None, :] - w[None, :, :], axis=-1), 9)
    while remaining:
        _, _, child, parent = min((dist[r, t], depth[t], r, t) for r in remaining for t in order)
        parents[child] = parent
        depth[child] = depth[parent] + 1
        order.append(child)
        remaining.remove(child)
    return order, parents


def _stem(i: int) -> str:
    return f"policy_{i:03d}"


def _settings(config: ARSConfig | PPOConfig | FlightConfig) -> dict[str, Any]:
    if isinstance(config, FlightConfig):
        return {"algorithm": "flight", **config.settings()}
    if isinstance(config, PPOConfig):
        # What decides the policies: the PPO fingerprint plus the chain's shape and lengths.
        return {
            "algorithm": "ppo",
            **config.fingerprint(),
            "updates": config.updates,
            "child_updates": config.child_updates,
            "chain_from": config.chain_from,
        }
    settings = {k: v for k, v in asdict(config).items() if k not in _FREE_SETTINGS}
    # Sets written before these settings existed did not record them: leaving them out while
    # they are 0 keeps such a set resumable.
    for name in _LATER_SETTINGS:
        if not settings[name]:
            del settings[name]
    return settings


def read_set_index(path: Path) -> dict[str, Any]:
    """A behaviour set's ``index.json``, checked (CheckpointError if missing or corrupt)."""
    return read_json_object(
        path,
        missing="no such file; not a behaviour-policy set",
        format_name=_SET_FORMAT,
        version=_SET_VERSION,
        what="behaviour-policy set index",
    )


def _open_index(path: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The existing index if it has the same plan (else CheckpointError), or a new one."""
    if not path.is_file():
        index = {**plan, "policies": [], "complete": False}
        atomic_write_json(path, index)
        return index
    index = read_set_index(path)
    changed = [k for k in plan if index.get(k) != plan[k]]
    if changed:
        raise CheckpointError(
            f"{path} was written by a run with other {', '.join(changed)}; rerun with the "
            "original arguments to resume, or train into a new directory"
        )
    return index


def train_behavior_set(
    env_id: str,
    out_dir: str | os.PathLike[str],
    num_policies: int,
    config: ARSConfig | PPOConfig | FlightConfig,
    progress: bool = True,
    callback: Callable[[SetProgress], None] | None = None,
) -> list[LinearPolicy | MLPPolicy | FlightPolicy]:
    """Train (or resume) one policy per row of the env's preference grid: linear policies
    with ARS (an :class:`ARSConfig`) or MLP policies with PPO (a
    :class:`~tora.behavior.ppo.PPOConfig`, for tasks a linear map cannot do; the chain,
    layout and resumption are the same, a PPO policy's training state is the directory
    ``policy_NNN.state/``).

    The grid is ``simplex_grid(K, num_policies)``, except on the safe-RL tasks, whose rows
    are cost-penalty weights (:func:`tora.behavior.safe.penalty_grid`); either way row 0 puts
    all weight on objective 0 (the reward), where the default chain starts.

    Args:
        env_id: a Gymnasium/tora env id; K is the length of its reward vector (a scalar reward
            is one objective, giving a single policy).
        out_dir: where policies, their training states and ``index.json`` go.
        num_policies: grid size (e.g. 11 for two objectives, 21 for three).
        config: ARS settings, shared by all policies (fields left at None take the env's
            defaults, :func:`tora.behavior.ars.resolve_config`); policy i's streams are keyed
            ``(config.seed, i)``, evaluation starts by ``config.seed`` (the same for all).
        progress: one progress bar per policy with its mean scalarized return.
        callback: called with a :class:`SetProgress` at the start of each policy trained by
            this call and after each of its iterations; raising from it stops training (the
            checkpoint of that iteration is already written).

    Returns:
        The policies in grid order; each ``info`` has iterations, env_steps, seconds,
        return_vector, scalarized_return, index, parent.

    Raises:
        CheckpointError: ``out_dir`` holds a set trained with other arguments, or a corrupt
            file.
    """
    if isinstance(config, PPOConfig):
        return _train_ppo_set(env_id, Path(out_dir), num_policies, config, progress)
    if isinstance(config, FlightConfig):
        return _train_flight_set(env_id, Path(out_dir), num_policies, config, progress)
    config = resolve_config(config, env_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan, weights, order, parents, spaces = _set_plan(
        env_id, num_policies, config, str(config.chain_from)
    )
    obs_dim, low, high = spaces
    index_path = out / INDEX_FILE
    index = _open_index(index_path, plan)
    finished = {int(e["index"]) for e in index["policies"]}
    policies: dict[int, LinearPolicy] = {}
    runner: RolloutRunner | None = None  # started only if something is left to train
    try:
        for position, i in enumerate(order):
            if i in finished:
                policies[i] = load_policy(out / _index_entry(index, i)["file"])
                continue
            parent = parents[i]

            def relay(info: IterationInfo, i: int = i, pos: int = position) -> None:
                if callback is not None:
                    callback(SetProgress(i, pos, parents[i], info))

            label = ", ".join(f"{x:.2f}" for x in weights[i])
            desc = f"policy {position + 1}/{len(order)} w=({label})"
            warmup: LinearPolicy | None = None
            if parent is not None:
                init, stage = policies[parent], config
            else:
                init = LinearPolicy.zeros(obs_dim, low, high, env_id, bias=bool(config.bias))
                stage = replace(config, iterations=config.root_iterations or config.iterations)
                if config.warmup_iterations:
                    warmup = init = _warm_up(
                        env_id, weights[i], config, init, out, i, relay, progress, desc
                    )
            if runner is None:
                runner = RolloutRunner(env_id, config.workers)
            policy = train_ars(
                env_id,
                weights[i],
                stage,
                init=init,
                state_path=out / f"{_stem(i)}.state.safetensors",
                key=(config.seed, i),
                runner=runner,
                callback=relay,
                progress=progress,
                desc=desc,
            )
            policy.info.update(index=i, parent=parent, chain_position=position)
            if warmup is not None:
                policy.info["warmup"] = _stage_record(warmup)
            _record_finished(index, index_path, len(order), i, parent, policy)
            (out / f"{_stem(i)}.state.safetensors").unlink(missing_ok=True)
            policies[i] = policy
    finally:
        if runner is not None:
            runner.close()
    return [policies[i] for i in range(len(order))]


def _set_plan(
    env_id: str, num_policies: int, config: ARSConfig | PPOConfig, chain_from: str
) -> tuple[dict[str, Any], np.ndarray, list[int], list[int | None], tuple[Any, ...]]:
    """The index's plan, the grid, its training order and parents, and the env's spaces."""

    obs_dim, low, high, k = env_spaces(env_id)
    weights, positions = preference_grid(env_id, k, num_policies)
    order, parents = chain_order(positions, chain_from)
    plan = {
        "format": _SET_FORMAT,
        "version": _SET_VERSION,
        "env_id": env_id,
        "num_policies": int(num_policies),
        "num_objectives": k,
        "obs_dim": obs_dim,
        "act_dim": int(low.size),
        "config": _settings(config),
        "weights": weights.tolist(),
        "order": order,
        "parents": parents,
    }
    return plan, weights, order, parents, (obs_dim, low, high)


def _train_ppo_set(
    env_id: str, out: Path, num_policies: int, config: PPOConfig, progress: bool
) -> list[LinearPolicy | MLPPolicy]:
    """:func:`train_behavior_set` with PPO: roots train ``updates``, the others
    ``child_updates`` from their parent's network; keys ``(seed, i)`` per policy."""
    out.mkdir(parents=True, exist_ok=True)
    plan, weights, order, parents, _ = _set_plan(env_id, num_policies, config, config.chain_from)
    index_path = out / INDEX_FILE
    index = _open_index(index_path, plan)
    finished = {int(e["index"]) for e in index["policies"]}
    policies: dict[int, MLPPolicy] = {}
    for position, i in enumerate(order):
        if i in finished:
            policies[i] = load_behavior_policy(out / _index_entry(index, i)["file"])
            continue
        parent = parents[i]
        updates = config.updates if parent is None else config.child_updates or config.updates
        # Policy i's streams: the set's seed and the row, as ARS keys them.
        stage = replace(config, updates=updates, seed=derive_seed(config.seed, i))
        label = ", ".join(f"{x:.2f}" for x in weights[i])
        policy = train_ppo(
            env_id,
            weights[i],
            stage,
            init=None if parent is None else policies[parent],
            state_path=out / f"{_stem(i)}.state",
            progress=progress,
            desc=f"policy {position + 1}/{len(order)} w=({label})",
        )
        policy.info.update(index=i, parent=parent, chain_position=position)
        _record_finished(index, index_path, len(order), i, parent, policy)
        shutil.rmtree(out / f"{_stem(i)}.state", ignore_errors=True)
        policies[i] = policy
    return [policies[i] for i in range(len(order))]


def _train_flight_set(
    env_id: str, out: Path, num_policies: int, config: FlightConfig, progress: bool
) -> list[LinearPolicy | MLPPolicy | FlightPolicy]:
    """:func:`train_behavior_set` with flight controllers: one search over the (radius, speed)
    grid, then each row takes the pair its preference scores highest."""
    out.mkdir(parents=True, exist_ok=True)
    plan, weights, _, _, _ = _set_plan(env_id, num_policies, config, "first")
    # No warm starts: every row is chosen from the same search, in grid order.
    plan["order"], plan["parents"] = list(range(len(weights))), [None] * len(weights)
    index_path = out / INDEX_FILE
    index = _open_index(index_path, plan)
    results = search_flight(env_id, config, out / "search.json", progress)
    signs = objective_signs(env_id)
    total_steps = sum(int(r["steps"]) for r in results)
    total_seconds = sum(float(r["seconds"]) for r in results)
    finished = {int(e["index"]) for e in index["policies"]}
    policies: dict[int, LinearPolicy | MLPPolicy | FlightPolicy] = {}
    for i, w in enumerate(weights):
        if i in finished:
            policies[i] = load_behavior_policy(out / _index_entry(index, i)["file"])
            continue
        j = choose_pair(results, w, signs)
        best = results[j]
        returns = np.asarray(best["return_vector"], dtype=np.float64)
        policy = FlightPolicy(
            config.params(best["radius"], best["speed"]),
            env_id,
            w,
            {
                "return_vector": returns.tolist(),
                "scalarized_return": float(scalarize(returns, w, signs)),
                # The chosen pair's own search episodes; the whole search is shared by all
                # rows and recorded once per policy under "search".
                "env_steps": int(best["steps"]),
                "eval_steps": int(best["steps"]),
                "seconds": float(best["seconds"]),
                "search": {
                    "pairs": len(results),
                    "env_steps": total_steps,
                    "seconds": total_seconds,
                    "chosen": j,
                },
                "index": i,
                "parent": None,
            },
        )
        _record_finished(index, index_path, len(weights), i, None, policy)
        policies[i] = policy
    return [policies[i] for i in range(len(weights))]


def _warm_up(
    env_id: str,
    weights: np.ndarray,
    config: ARSConfig,
    start: LinearPolicy,
    out: Path,
    i: int,
    callback: Callable[[IterationInfo], None],
    progress: bool,
    desc: str,
) -> LinearPolicy:
    """Train root ``i`` from ``start`` (its zero policy) on the env's easier variant
    (resumable; kept on disk).

    The finished warm-up is saved as ``policy_<i>.warmup`` so a resume after it does not
    repeat it; its state file follows the same rules as the true-task stage's.
    """
    stem = out / f"{_stem(i)}.warmup"
    if policy_paths(stem)[1].is_file():
        return load_policy(stem)
    kwargs = curriculum_kwargs(env_id)
    if not kwargs:
        raise ToraError(
            f"{env_id} declares no easier variant to warm up on (curriculum_kwargs); "
            "set warmup_iterations to 0"
        )
    factory = partial(make_env, env_id, **kwargs)
    stage = replace(config, iterations=config.warmup_iterations, eval_episodes=0)
    with RolloutRunner(factory, config.workers) as runner:
        policy = train_ars(
            factory,
            weights,
            stage,
            init=start,
            state_path=out / f"{_stem(i)}.warmup.state.safetensors",
            key=(config.seed, i, _WARMUP_KEY),
            runner=runner,
            callback=callback,
            progress=progress,
            desc=f"{desc} warm-up {kwargs}",
        )
    policy.env_id = env_id
    policy.info["env_kwargs"] = kwargs
    policy.save(stem)
    (out / f"{_stem(i)}.warmup.state.safetensors").unlink(missing_ok=True)
    return policy


def _stage_record(policy: LinearPolicy) -> dict[str, Any]:
    keep = ("iterations", "env_steps", "seconds", "env_kwargs")
    return {k: policy.info[k] for k in keep if k in policy.info}


def _record_finished(
    index: dict[str, Any],
    index_path: Path,
    total: int,
    i: int,
    parent: int | None,
    policy: LinearPolicy | MLPPolicy | FlightPolicy,
) -> None:
    """Save finished policy ``i`` next to the index and list it there. The index is the
    record of what is finished: written after the policy files and before the caller drops
    the training state, so a kill in between only repeats the evaluation."""
    _, json_path = policy.save(index_path.parent / _stem(i))
    index["policies"].append(_entry(i, parent, json_path.name, policy))
    index["policies"].sort(key=lambda e: e["index"])
    index["complete"] = len(index["policies"]) == total
    atomic_write_json(index_path, index)


def _entry(
    i: int, parent: int | None, file: str, policy: LinearPolicy | MLPPolicy | FlightPolicy
) -> dict[str, Any]:
    info = policy.info
    # ARS counts iterations, PPO updates; an index entry names whichever the policy has.
    length = {k: info[k] for k in ("iterations", "updates") if k in info}
    return {
        "index": i,
        "file": file,
        "weights": policy.weights.tolist(),
        "parent": parent,
        "return_vector": info["return_vector"],
        "scalarized_return": info["scalarized_return"],
        **length,
        "env_steps": info["env_steps"],
        "eval_steps": info["eval_steps"],
        "seconds": info["seconds"],
        **({"warmup": info["warmup"]} if "warmup" in info else {}),
    }


def _index_entry(index: dict[str, Any], i: int) -> dict[str, Any]:
    for entry in index["policies"]:
        if int(entry["index"]) == i:
            return entry
    raise CheckpointError(f"policy {i} is not listed in the index")


def load_behavior_set(
    directory: str | os.PathLike[str], allow_incomplete: bool = False
) -> list[LinearPolicy | MLPPolicy | FlightPolicy]:
    """The finished policies of a set in grid order, each with its index entry in ``info``.

    Raises CheckpointError if the index or a policy file is missing or corrupt, a policy's
    weights differ from its index entry, or the set is unfinished and ``allow_incomplete``
    is false.
    """
    root = Path(directory)
    index = read_set_index(root / INDEX_FILE)
    if not index.get("complete") and not allow_incomplete:
        done, total = len(index["policies"]), len(index["weights"])
        raise CheckpointError(
            f"{root}: only {done} of {total} policies are finished; resume training, or pass "
            "allow_incomplete=True"
        )
    out = []
    for entry in index["policies"]:
        policy = load_behavior_policy(root / entry["file"])
        if policy.weights.tolist() != entry["weights"]:
            raise CheckpointError(f"{root / entry['file']}: weights differ from {INDEX_FILE}")
        policy.info["index_entry"] = dict(entry)
        out.append(policy)
    return out
