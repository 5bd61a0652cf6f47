"""Augmented Random Search (Mania, Guy & Recht, NeurIPS 2018), V2-t, on a scalarized return.

Each iteration samples N directions delta ~ N(0, I) of M's shape, rolls out M + nu delta and
M - nu delta from the same start state, scores each episode by ``w . (sign * R)`` (R: the
episode's per-objective return vector, :func:`tora.evaluate.rollout.reward_vector` per step;
sign: +1 for an objective to maximize, -1 for one to minimize, from
:func:`tora.envs.objective_directions`, so a preference (w_r, w_c) on a safe-RL task scores
``w_r R - w_c C``; :func:`scalarize`), keeps the b directions with the largest
``max(r+, r-)`` and steps

    M += alpha / (b sigma_R) * sum_top (r+ - r-) delta,

sigma_R being the standard deviation of the 2b kept returns ("V2": observations are whitened
with running statistics of the visited states; "-t": only the top b directions count).

Reproducibility. Every random number is a function of (seed key, iteration, direction): the
directions of iteration i come from ``SeedSequence([*key, DIRECTIONS, i])``, the start state of
direction j's pair from ``SeedSequence([*key, ROLLOUT, i, j])``, so the iteration number is the
whole RNG position a resume needs, and a rollout's result does not depend on which worker
process ran it. Rollouts return their visited-state statistics, merged in direction order
(+ before -) after the iteration, so the normalization is the same for any worker count.
Environments must be deterministic given ``reset(seed=...)`` (Gymnasium's MuJoCo and tora's
envs are), because workers reuse one env instance for many rollouts.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import safetensors
import torch
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from tora.behavior.policy import LinearPolicy, RunningStat, linear_action
from tora.behavior.rollout import (
    EnvSource,
    build_env,
    derive_seed,
    objective_signs,
    scalarize,
)
from tora.envs import SAFETY_ENV_IDS, resolve_env_id
from tora.errors import CheckpointError, ShapeMismatchError, ToraError
from tora.evaluate.rollout import reward_vector
from tora.train.checkpoint import load_tensors, save_tensors

__all__ = [
    "ARSConfig",
    "ARSState",
    "IterationInfo",
    "RolloutResult",
    "RolloutRunner",
    "RolloutTask",
    "UpdateInfo",
    "ars_iteration",
    "ars_update",
    "env_spaces",
    "evaluate_policy",
    "load_state",
    "resolve_config",
    "sample_directions",
    "save_state",
    "train_ars",
]

# Distinct first words keep the three random streams apart.
_DIRECTIONS, _ROLLOUT, _EVAL = 0, 1, 2
_STATE_FORMAT = "tora-ars-state"


@dataclass
class ARSConfig:
    """Settings of ARS V2-t. Fields left at None take the env's defaults
    (:func:`resolve_config`): on the MuJoCo tasks (and any other env) those of the
    MO-HalfCheetah run in the project's reference notes, on the safe-RL tasks a smaller
    budget that fits their 100-300-step episodes into an hour of one core per set."""

    directions: int | None = None
    """Random directions N sampled per iteration (2N rollouts); none: 16 (safe-RL tasks: 8)."""
    top: int | None = None
    """Directions b with the best max(r+, r-) that enter the update; none: half of N."""
    step_size: float = 0.02
    """Step size alpha."""
    noise: float = 0.03
    """Exploration noise nu: rollouts use M +- nu delta."""
    iterations: int | None = None
    """ARS iterations per policy; none: 100 (safe-RL tasks: 30, each warm-started from its
    neighbour on the cost-penalty chain)."""
    root_iterations: int | None = None
    """Iterations of the policies a set trains from zero (its chain roots); 0: ``iterations``.
    A root starts from nothing while the others inherit a gait, so it may need more. None: 0
    (safe-RL tasks: 60)."""
    warmup_iterations: int = 0
    """Iterations a root first spends on the env's easier variant (its ``curriculum_kwargs``,
    e.g. MO-Ant with a tenth of the control cost) before training on the true task; 0: none."""
    episode_steps: int | None = None
    """Steps per rollout at most; none: the env's time limit (500 on the MuJoCo tasks, as
    D4MORL's episodes; 100 to 300 on the safe-RL tasks). The env may end it sooner."""
    bias: bool | None = None
    """Give the linear policies a bias (a constant action offset, trained like M); none: only
    on the safe-RL tasks, where a ball, car or drone must push constantly from a start that is
    symmetric about the observation mean, which a policy without a bias cannot learn
    (tora.behavior.policy). The MuJoCo sets were trained without one."""
    workers: int = 1
    """Rollout processes; results are identical for any number."""
    seed: int = 0
    """Seed of directions and start states: the same seed repeats the run exactly."""
    eval_episodes: int = 5
    """Deterministic episodes (no noise) whose mean return vector is reported per policy."""
    checkpoint_every: int = 1
    """Iterations between resumable checkpoints (1: a kill loses at most one iteration)."""
    chain_from: Literal["corners", "first", "ends"] | None = None
    """Warm-start chain of a policy set: "corners" trains every simplex corner from zero and
    grows inwards from all of them; "first" trains only the first preference (all weight on
    objective 0) from zero and grows from it, so every policy inherits its gait; "ends" trains
    the first and the last row of the grid from zero and grows inwards from both. None:
    "first" (safe-RL tasks: "ends", see tora.behavior.safe). "first" is the MuJoCo default: on
    MO-HalfCheetah "corners" left the energy-leaning half of the set standing still
    (behaviour HV 4.98e6), "first" did not (5.41e6; BENCHMARKS.md)."""

    def __post_init__(self) -> None:
        directions = self.directions if self.directions is not None else self.top or 1
        top = self.top if self.top is not None else 1
        if directions < 1 or not 1 <= top <= directions:
            raise ValueError(
                f"need 1 <= top <= directions, got top={self.top}, directions={self.directions}"
            )
        if self.step_size <= 0 or self.noise <= 0:
            raise ValueError("step_size and noise must be positive")
        counts = (self.iterations, self.root_iterations, self.warmup_iterations)
        if min(*(c or 0 for c in counts), self.eval_episodes) < 0:
            raise ValueError(
                "iterations, root_iterations, warmup_iterations, eval_episodes >= 0 required"
            )
        if self.episode_steps is not None and self.episode_steps < 1:
            raise ValueError(f"episode_steps must be at least 1, got {self.episode_steps}")
        if self.workers < 1 or self.checkpoint_every < 1:
            raise ValueError("workers and checkpoint_every must be at least 1")

    def fingerprint(self) -> dict[str, Any]:
        """The fields that decide the result of an iteration (a resume must keep them)."""
        keep = ("directions", "top", "step_size", "noise", "episode_steps", "seed")
        found = {k: v for k, v in asdict(self).items() if k in keep}
        if self.bias:  # only when set, so states written before the option existed still load
            found["bias"] = True
        return found


_DEFAULTS: dict[str, dict[str, Any]] = {
    # D4MORL-style MuJoCo locomotion: the MO-HalfCheetah run in the reference notes; the
    # shipped MuJoCo sets were trained with these.
    "default": {
        "directions": 16,
        "iterations": 100,
        "root_iterations": 0,
        "bias": False,
        "chain_from": "first",
    },
    # Bullet-Safety-Gym: 16 to 38 policy weights and short episodes; measured on SafetyBallRun,
    # the reward-only root reaches its plateau in about 30 iterations of 16 directions.
    "safe": {
        "directions": 8,
        "iterations": 30,
        "root_iterations": 60,
        "bias": True,
        "chain_from": "ends",
    },
}


def _time_limit(env: EnvSource) -> int:
    if isinstance(env, str):
        limit = gym.spec(resolve_env_id(env)).max_episode_steps
    else:
        e = env()
        limit = e.spec.max_episode_steps if e.spec is not None else None
        e.close()
    if not limit:
        raise ToraError(
            f"{env!r} has no time limit; set ARSConfig.episode_steps (--ars-episode-steps)"
        )
    return int(limit)


def _is_safety_task(env: EnvSource) -> bool:
    if not isinstance(env, str):
        return False
    return resolve_env_id(env) in SAFETY_ENV_IDS


def resolve_config(config: ARSConfig, env: EnvSource) -> ARSConfig:
    """``config`` with every field left at None set to the env's default: ``episode_steps``
    the env's time limit, ``top`` half of ``directions``, the others from the safe-RL table
    on those tasks and from the MuJoCo table elsewhere (see the fields' docs). Explicit values
    are kept, so resolving twice changes nothing.

    Raises ToraError if ``episode_steps`` is None and the env has no time limit.
    """
    table = _DEFAULTS["safe" if _is_safety_task(env) else "default"]
    filled = {k: v for k, v in table.items() if getattr(config, k) is None}
    directions = filled.get("directions", config.directions)
    if config.top is None:
        filled["top"] = max(1, directions // 2)
    if config.episode_steps is None:
        filled["episode_steps"] = _time_limit(env)
    return replace(config, **filled) if filled else config


# --------------------------------------------------------------------------- randomness


def sample_directions(
    key: Sequence[int], iteration: int, directions: int, shape: tuple[int, ...]
) -> np.ndarray:
    """(directions, *shape) standard normal perturbations of iteration ``iteration``."""
    rng = np.random.default_rng(np.random.SeedSequence([*key, _DIRECTIONS, iteration]))
    return rng.standard_normal((directions, *shape))


# --------------------------------------------------------------------------- the update


@dataclass(frozen=True)
class UpdateInfo:
    """What one ARS step used."""

    top: np.ndarray
    """Indices of the kept directions, best first."""
    sigma: float
    """Standard deviation of the 2b kept returns."""
    step_norm: float
    """Frobenius norm of the change of M."""


def ars_update(
    M: np.ndarray,
    deltas: np.ndarray,
    r_plus: ArrayLike,
    r_minus: ArrayLike,
    step_size: float,
    top: int,
) -> tuple[np.ndarray, UpdateInfo]:
    """One ARS V2-t step: ``M + alpha / (b sigma_R) sum_{top b} (r+ - r-) delta`` (pure).

    Directions are ranked by ``max(r+, r-)``; ties keep the lower index (stable sort), so the
    step is deterministic. If the kept returns are all equal the step is zero: there is no
    signal, and dividing by sigma_R = 0 would not be defined.
    """
    rp, rm = np.asarray(r_plus, np.float64), np.asarray(r_minus, np.float64)
    order = np.argsort(-np.maximum(rp, rm), kind="stable")[:top]
    kept = np.concatenate([rp[order], rm[order]])
    sigma = float(kept.std())
    if sigma == 0.0:
        return M.copy(), UpdateInfo(order, 0.0, 0.0)
    step = np.tensordot(rp[order] - rm[order], deltas[order], axes=1)
    step *= step_size / (top * sigma)
    return M + step, UpdateInfo(order, sigma, float(np.linalg.norm(step)))


# --------------------------------------------------------------------------- rollouts


@dataclass(frozen=True)
class RolloutTask:
    """One episode of a fixed linear policy from a seeded start."""

    M: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seed: int
    max_steps: int
    collect_states: bool = True


@dataclass(frozen=True)
class RolloutResult:
    """Return vector, length and (if collected) visited-state statistics of one episode."""

    returns: np.ndarray
    steps: int
    states: RunningStat | None


def _run_episode(env: gym.Env, task: RolloutTask) -> RolloutResult:
    obs, _ = env.reset(seed=task.seed)
    visited: list[np.ndarray] = []
    total: np.ndarray | None = None
    steps = 0
    while steps < task.max_steps:
        s = np.asarray(obs, dtype=np.float64).reshape(-1)
        if task.collect_states:
            visited.append(s)
        action = linear_action(task.M, task.mean, task.std, task.low, task.high, s)
        obs, reward, terminated, truncated, info = env.step(action)
        r = reward_vector(reward, info)
        total = r.copy() if total is None else total + r
        steps += 1
        if terminated or truncated:
            break
    assert total is not None
    stats = RunningStat.from_batch(np.stack(visited)) if task.collect_states else None
    return RolloutResult(total, steps, stats)


_worker_env: gym.Env | None = None


def _worker_init(env: EnvSource) -> None:
    global _worker_env
    _worker_env = build_env(env)


def _worker_run(task: RolloutTask) -> RolloutResult:
    assert _worker_env is not None
    return _run_episode(_worker_env, task)


class RolloutRunner:
    """Runs rollout tasks in this process (workers=1) or in worker processes; results come back
    in task order.

    Workers start with the ``forkserver`` method where available (else ``spawn``): forking a
    process that holds torch's and tqdm's threads can deadlock, and ``spawn`` would re-import
    tora (about 2 s) in every worker of every pool, whereas a forkserver imports it once. Like
    any non-fork start method this re-imports the caller's ``__main__`` in the workers, so a
    script using ``workers > 1`` needs the ``if __name__ == "__main__":`` guard. A
    ``ProcessPoolExecutor`` rather than a ``multiprocessing.Pool``: if workers die (e.g. a
    script without that guard) it raises instead of restarting them forever.
    """

    def __init__(self, env: EnvSource, workers: int = 1) -> None:
        self.env_source = env
        self.workers = int(workers)
        self._env: gym.Env | None = None
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload(["tora.behavior.ars"])
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_worker_init, initargs=(env,)
            )
        else:
            self._env = build_env(env)

    def run(self, tasks: Sequence[RolloutTask]) -> list[RolloutResult]:
        if self._pool is not None:
            # A few chunks per worker: fewer round trips for short episodes, balanced load.
            chunk = max(1, math.ceil(len(tasks) / (4 * self.workers)))
            try:
                return list(self._pool.map(_worker_run, tasks, chunksize=chunk))
            except BrokenProcessPool as exc:
                raise RuntimeError(
                    "an ARS rollout worker died; if this runs from a script, put the code "
                    'under `if __name__ == "__main__":` (workers re-import the main module), '
                    "or use workers=1"
                ) from exc
        assert self._env is not None
        return [_run_episode(self._env, t) for t in tasks]

    def close(self) -> None:
        """Release the workers (waiting for running rollouts) and the env."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> RolloutRunner:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()


def env_spaces(env: EnvSource) -> tuple[int, np.ndarray, np.ndarray, int]:
    """(obs_dim, action low, action high, number of objectives) of an env.

    The number of objectives is read from one probe step, as envs disagree on where they
    declare it (mo-gymnasium's ``reward_space``, tora's ``info["reward_vector"]``, none).
    """
    e = build_env(env)
    try:
        obs_space, act_space = e.observation_space, e.action_space
        if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
            raise ShapeMismatchError(f"ARS needs a 1-D Box action space, got {act_space}")
        if obs_space.shape is None or len(obs_space.shape) != 1:
            raise ShapeMismatchError(f"ARS needs flat observations, got {obs_space}")
        e.reset(seed=0)
        _, reward, _, _, info = e.step(np.zeros(act_space.shape, dtype=act_space.dtype))
        k = reward_vector(reward, info).size
        low = np.asarray(act_space.low, np.float64)
        high = np.asarray(act_space.high, np.float64)
        return int(obs_space.shape[0]), low, high, k
    finally:
        e.close()


# --------------------------------------------------------------------------- training state


@dataclass
class ARSState:
    """Everything a resumed run needs: the policy and the iteration (= the RNG position)."""

    policy: LinearPolicy
    iteration: int = 0
    env_steps: int = 0
    seconds: float = 0.0
    history: list[float] = field(default_factory=list)
    """Mean scalarized return of each iteration's 2N rollouts."""
    signs: np.ndarray | None = None
    """Direction of each objective in the score (:func:`scalarize`); None: all maximized. Not
    saved: it is a property of the env, read again on resume."""


def save_state(
    path: str | os.PathLike[str], state: ARSState, config: ARSConfig, key: Sequence[int]
) -> None:
    """Atomically write ``state`` to one safetensors file (one rename: never half-written)."""
    tensors = state.policy.to_tensors()
    tensors["iteration"] = torch.tensor(state.iteration, dtype=torch.int64)
    tensors["env_steps"] = torch.tensor(state.env_steps, dtype=torch.int64)
    tensors["seconds"] = torch.tensor(state.seconds, dtype=torch.float64)
    tensors["history"] = torch.tensor(state.history, dtype=torch.float64)
    tensors["weights"] = torch.from_numpy(state.policy.weights.copy())
    tensors["key"] = torch.tensor(list(key), dtype=torch.int64)
    save_tensors(path, tensors, metadata={"format": _STATE_FORMAT, **_fingerprint(config)})


def _fingerprint(config: ARSConfig) -> dict[str, str]:
    return {k: repr(v) for k, v in config.fingerprint().items()}


def load_state(
    path: str | os.PathLike[str],
    like: LinearPolicy,
    config: ARSConfig,
    key: Sequence[int],
) -> ARSState:
    """Read a state written by :func:`save_state` for a run shaped like ``like``.

    Raises CheckpointError if the file is corrupt or belongs to another run (other
    weights, seed key, shapes or update-relevant settings).
    """
    path = Path(path)
    tensors = load_tensors(path)
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != _STATE_FORMAT:
        raise CheckpointError(f"{path}: not an ARS training state")
    changed = [k for k, v in _fingerprint(config).items() if meta.get(k) != v]
    if changed:
        raise CheckpointError(
            f"{path}: saved with other settings ({', '.join(changed)}); use a new directory "
            "or the original settings"
        )
    policy = LinearPolicy.from_tensors(tensors, like.obs_dim, like.act_dim, str(path), like.bias)
    try:
        same_weights = np.array_equal(tensors["weights"].numpy(), like.weights)
        same_run = same_weights and tensors["key"].tolist() == list(key)
        iteration = int(tensors["iteration"].item())
        env_steps = int(tensors["env_steps"].item())
        seconds = float(tensors["seconds"].item())
        history = tensors["history"].tolist()
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing tensor {exc}") from exc
    if not same_run or len(history) != iteration:
        raise CheckpointError(f"{path}: the state belongs to another run (weights or seed)")
    policy.env_id, policy.weights = like.env_id, like.weights.copy()
    return ARSState(policy, iteration, env_steps, seconds, history)


# --------------------------------------------------------------------------- iterations


@dataclass(frozen=True)
class IterationInfo:
    """Passed to a training callback at the start and after every iteration."""

    event: Literal["start", "iteration"]
    """"start": before the first iteration run by this call (M is the initial or resumed M)."""
    iteration: int
    """Iterations completed so far."""
    mean_return: float
    """Mean scalarized return of the iteration's rollouts (NaN at "start")."""
    env_steps: int
    """Environment steps of training so far."""
    M: np.ndarray
    """A copy of the current weights."""


def ars_iteration(
    state: ARSState, config: ARSConfig, runner: RolloutRunner, key: Sequence[int]
) -> float:
    """Run one iteration in place on ``state``; returns the mean scalarized rollout return."""
    policy = state.policy
    deltas = sample_directions(key, state.iteration, config.directions, policy.M.shape)
    mean, std = policy.mean, policy.std  # frozen for the whole iteration
    tasks = []
    for j, delta in enumerate(deltas):
        # Both signs start from the same state: common random numbers make r+ - r- measure
        # the direction, not the luck of the start.
        seed = derive_seed(*key, _ROLLOUT, state.iteration, j)
        for sign in (1.0, -1.0):
            M = policy.M + sign * config.noise * delta
            tasks.append(
                RolloutTask(M, mean, std, policy.low, policy.high, seed, config.episode_steps)
            )
    results = runner.run(tasks)
    returns = np.stack([r.returns for r in results])
    if returns.shape[1] != policy.weights.size:
        raise ShapeMismatchError(
            f"the env returns {returns.shape[1]} objectives but the weights have "
            f"{policy.weights.size}"
        )
    scores = scalarize(returns, policy.weights, state.signs)
    policy.M, _ = ars_update(
        policy.M, deltas, scores[0::2], scores[1::2], config.step_size, config.top
    )
    stat = policy.obs_stat
    for r in results:  # task order: fixed, whatever the worker count
        assert r.states is not None
        stat = stat.merge(r.states)
    policy.obs_stat = stat
    state.iteration += 1
    state.env_steps += sum(r.steps for r in results)
    mean_return = float(scores.mean())
    state.history.append(mean_return)
    return mean_return


def evaluate_policy(
    policy: LinearPolicy, runner: RolloutRunner, episodes: int, episode_steps: int, seed: int
) -> tuple[np.ndarray, int]:
    """(episodes, K) return vectors of the deterministic policy, and the steps taken.

    Episode e starts from ``derive_seed(seed, EVAL, e)``: every policy trained with the same
    seed is evaluated on the same start states.
    """
    tasks = [
        RolloutTask(
            policy.M,
            policy.mean,
            policy.std,
            policy.low,
            policy.high,
            derive_seed(seed, _EVAL, e),
            episode_steps,
            collect_states=False,
        )
        for e in range(episodes)
    ]
    results = runner.run(tasks)
    if not results:
        return np.zeros((0, policy.weights.size)), 0
    return np.stack([r.returns for r in results]), sum(r.steps for r in results)


def train_ars(
    env: EnvSource,
    weights: ArrayLike,
    config: ARSConfig,
    *,
    init: LinearPolicy | None = None,
    state_path: str | os.PathLike[str] | None = None,
    key: Sequence[int] | None = None,
    runner: RolloutRunner | None = None,
    callback: Callable[[IterationInfo], None] | None = None,
    progress: bool = True,
    desc: str = "ARS",
) -> LinearPolicy:
    """Train one linear policy for preference ``weights`` with ARS; return it evaluated.

    Args:
        env: env id or factory; rewards may be vectors or scalars (a 1-objective vector).
        weights: (K,) preference; the rollout score is ``weights . (sign * R)``, sign -1 for
            objectives the env minimizes (:func:`scalarize`).
        config: ARS settings (env-dependent defaults filled by :func:`resolve_config`).
        init: starting policy (a warm start: its M and normalization are copied); default
            zeros with identity normalization.
        state_path: resumable state file: loaded if it exists, rewritten every
            ``config.checkpoint_every`` iterations and at the end. Running again with a
            larger ``config.iterations`` continues the same run.
        key: seed key of the training streams (default ``(config.seed,)``).
        runner: a shared :class:`RolloutRunner` (default: one made here and closed after).
        callback: called with an :class:`IterationInfo` at the start and after each
            iteration, after the state is saved; an exception from it stops training.
        progress: show a progress bar with the mean scalarized return.
        desc: progress-bar label.

    Returns:
        The final policy; ``info`` holds iterations, env_steps, seconds, eval_steps,
        return_vector (mean over ``config.eval_episodes`` deterministic episodes),
        scalarized_return and history.
    """
    key = tuple(int(k) for k in (key if key is not None else (config.seed,)))
    config = resolve_config(config, env)
    own_runner = runner is None
    if runner is None:
        runner = RolloutRunner(env, config.workers)
    try:
        return _train(env, weights, config, init, state_path, key, runner, callback, progress, desc)
    finally:
        if own_runner:
            runner.close()


def _train(
    env: EnvSource,
    weights: ArrayLike,
    config: ARSConfig,
    init: LinearPolicy | None,
    state_path: str | os.PathLike[str] | None,
    key: tuple[int, ...],
    runner: RolloutRunner,
    callback: Callable[[IterationInfo], None] | None,
    progress: bool,
    desc: str,
) -> LinearPolicy:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    env_id = env if isinstance(env, str) else getattr(env, "__name__", "")
    if init is None:
        obs_dim, low, high, _ = env_spaces(env)
        init = LinearPolicy.zeros(obs_dim, low, high, bias=bool(config.bias))
    if init.bias != bool(config.bias):
        raise ToraError(
            f"the starting policy {'has' if init.bias else 'has no'} bias but the config asks "
            f"bias={config.bias}"
        )
    start = init.copy()
    start.env_id, start.weights, start.info = env_id, w, {}
    if state_path is not None and Path(state_path).is_file():
        state = load_state(state_path, start, config, key)
    else:
        state = ARSState(start)
    state.signs = objective_signs(env)
    if state.signs is not None and state.signs.size != w.size:
        raise ShapeMismatchError(
            f"the env has {state.signs.size} objectives but the weights have {w.size}"
        )

    def notify(event: Literal["start", "iteration"], mean_return: float) -> None:
        if callback is not None:
            callback(
                IterationInfo(
                    event, state.iteration, mean_return, state.env_steps, state.policy.M.copy()
                )
            )

    bar = tqdm(total=config.iterations, initial=state.iteration, desc=desc, disable=not progress)
    try:
        notify("start", math.nan)
        while state.iteration < config.iterations:
            t0 = time.perf_counter()
            mean_return = ars_iteration(state, config, runner, key)
            state.seconds += time.perf_counter() - t0
            last = state.iteration == config.iterations
            if state_path is not None and (last or state.iteration % config.checkpoint_every == 0):
                save_state(state_path, state, config, key)
            bar.set_postfix(ret=f"{mean_return:.4g}")
            bar.update(1)
            notify("iteration", mean_return)
    finally:
        bar.close()

    t0 = time.perf_counter()
    returns, eval_steps = evaluate_policy(
        state.policy, runner, config.eval_episodes, config.episode_steps, config.seed
    )
    # eval_episodes=0 measures nothing: recorded as null rather than a made-up number.
    mean_vec = returns.mean(axis=0) if len(returns) else None
    policy = state.policy
    policy.info = {
        "iterations": state.iteration,
        "env_steps": state.env_steps,
        "seconds": state.seconds + time.perf_counter() - t0,
        "eval_episodes": config.eval_episodes,
        "eval_steps": eval_steps,
        "return_vector": None if mean_vec is None else mean_vec.tolist(),
        "scalarized_return": None
        if mean_vec is None
        else float(scalarize(mean_vec, w, state.signs)),
        "history": list(state.history),
        "config": asdict(config),
    }
    if state.signs is not None:
        policy.info["objective_signs"] = state.signs.tolist()
    return policy
