"""A pool of environments stepped as one batch, optionally split over worker processes.

A preference sweep holds hundreds of environments (501 preferences x episodes) and one policy
call per step serves all of them, so once planning is batched the Python loop over
``env.step`` is what is left. :class:`EnvPool` splits the environments into W contiguous
slices: this process steps the first slice itself and W - 1 worker processes step the others
at the same time. Each worker answers a step with one message of stacked NumPy arrays (not
one message per environment), so the pipe traffic per step does not grow with the slice.

Results do not depend on W: every environment is built, reset and stepped exactly as it would
be in a single process; only the wall time changes.

Workers start with the ``forkserver`` method where available (else ``spawn``): forking a
process that holds torch's threads can deadlock. Like any non-fork start method, this
re-imports the caller's ``__main__`` in the workers, so a script that uses ``workers > 1``
needs the ``if __name__ == "__main__":`` guard, and ``make_env`` must be picklable (e.g.
``functools.partial(tora.make_env, env_id)``, not a lambda).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import gymnasium as gym
import numpy as np

from tora.errors import ToraError

EnvFactory = Callable[[], gym.Env]
"""Builds one environment; must be picklable when the pool has worker processes."""

MIN_ENVS_PER_WORKER = 32
"""Below this many environments per process, a worker's round trip (about 0.1 ms) costs more
than the stepping it takes over, so :func:`default_workers` uses fewer processes."""

_JOIN_SECONDS = 5.0
"""How long :meth:`EnvPool.close` waits for a worker to exit before terminating it."""


class EnvWorkerError(ToraError, RuntimeError):
    """An environment failed in a worker process (its traceback is in the message), or a
    worker process died."""


def reward_vector(reward: Any, info: Mapping[str, Any]) -> np.ndarray:
    """The per-objective reward of one step, whatever the env's convention.

    ``info["reward_vector"]`` first (tora-rl's envs), then a vector ``reward``
    (mo-gymnasium), then a scalar reward with ``info["cost"]`` (safety envs: [reward, cost]),
    then a plain scalar reward. (Also importable as ``tora.evaluate.rollout.reward_vector``;
    it lives here because the pool's workers need it and the pool is the lower layer.)
    """
    if "reward_vector" in info:
        return np.asarray(info["reward_vector"], dtype=np.float64).reshape(-1)
    r = np.asarray(reward, dtype=np.float64).reshape(-1)
    if r.size == 1 and "cost" in info:
        return np.array([r[0], float(info["cost"])])
    return r


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers(n: int) -> int:
    """Processes for ``n`` environments: one per available core, but at least
    :data:`MIN_ENVS_PER_WORKER` environments each (1, i.e. no worker process, for small n)."""
    return max(1, min(available_cores(), n // MIN_ENVS_PER_WORKER))


@dataclass(frozen=True)
class EnvInfo:
    """What the pool reports about its environments (taken from the first one)."""

    observation_space: gym.Space
    action_space: gym.Space
    max_episode_steps: int | None


StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(observations (m, *obs_shape), reward vectors (m, R) float64, terminated (m,),
truncated (m,)), row i for the i-th stepped environment."""


class _EnvSlice:
    """Consecutive environments stepped in a loop: the work of one process."""

    def __init__(self, make_env: EnvFactory, count: int) -> None:
        self.envs: list[gym.Env] = []
        try:
            for _ in range(count):
                self.envs.append(make_env())
        except BaseException:
            self.close()
            raise

    def info(self) -> EnvInfo:
        env = self.envs[0]
        spec = getattr(env, "spec", None)
        return EnvInfo(
            env.observation_space,
            env.action_space,
            getattr(spec, "max_episode_steps", None),
        )

    def reset(self, seeds: Sequence[int | None]) -> np.ndarray:
        return np.stack(
            [np.asarray(env.reset(seed=s)[0]) for env, s in zip(self.envs, seeds, strict=True)]
        )

    def step(self, local: np.ndarray, actions: np.ndarray) -> StepResult:
        obs, rewards, terminated, truncated = [], [], [], []
        for i, action in zip(local, actions, strict=True):
            o, r, term, trunc, info = self.envs[i].step(action)
            obs.append(np.asarray(o))
            rewards.append(reward_vector(r, info))
            terminated.append(bool(term))
            truncated.append(bool(trunc))
        return (
            np.stack(obs),
            np.stack(rewards),
            np.asarray(terminated, dtype=bool),
            np.asarray(truncated, dtype=bool),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


def _worker_main(conn: Connection, make_env: EnvFactory, count: int) -> None:
    """A worker's loop: build its slice, then answer one command at a time until "close"."""
    # The parent owns Ctrl-C: it closes the pool, which ends this process. Ignoring SIGINT
    # here keeps one interrupt from printing a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    envs: _EnvSlice | None = None
    try:
        try:
            envs = _EnvSlice(make_env, count)
            conn.send(("ok", envs.info()))
        except Exception:
            conn.send(("error", traceback.format_exc()))
            return
        while True:
            try:
                command, payload = conn.recv()
            except EOFError:  # the parent is gone: nobody will ever read our answers
                return
            if command == "close":
                return
            try:
                if command == "reset":
                    result: Any = envs.reset(payload)
                elif command == "step":
                    result = envs.step(*payload)
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception:
                conn.send(("error", traceback.format_exc()))
            else:
                conn.send(("ok", result))
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent closed its end first: nothing left to report to
    finally:
        if envs is not None:
            envs.close()
        conn.close()


def _stop_workers(conns: list[Connection], procs: list[BaseProcess]) -> None:
    """Ask every worker to exit, then terminate (and at last kill) those that do not.

    A module-level function, so the pool's finalizer can hold the lists without the pool."""
    for conn in conns:
        # OSError: the worker is already dead; ValueError: the connection is already closed.
        with contextlib.suppress(OSError, ValueError):
            conn.send(("close", None))
    for proc in procs:
        proc.join(_JOIN_SECONDS)
        if proc.is_alive():
            proc.terminate()
            proc.join(_JOIN_SECONDS)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for conn in conns:
        conn.close()
    conns.clear()
    procs.clear()


def _context() -> mp.context.BaseContext:
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # Import tora (about 2 s, mostly torch) once in the server rather than in every worker;
        # ignored if the server is already running (e.g. started by an earlier pool).
        ctx.set_forkserver_preload(["tora.evaluate.vector"])
    return ctx


class EnvPool:
    """``n`` environments stepped as one batch by ``workers`` processes (this one included).

    ``workers`` <= 1 steps everything in this process; ``None`` picks
    :func:`default_workers`. The environments are split into W contiguous slices of near-equal
    size (as :func:`numpy.array_split` does); this process steps the first one, worker
    process k the (k+1)-th. Which process steps an environment never changes its results.

    Use as a context manager (or call :meth:`close`): worker processes are stopped on exit,
    on any error in a worker or here, and when the pool is garbage collected. A worker also
    exits by itself when this process dies (its pipe reaches end of file).
    """

    def __init__(self, make_env: EnvFactory, n: int, workers: int | None = None) -> None:
        if n < 1:
            raise ValueError(f"an environment pool needs at least one environment, got {n}")
        w = default_workers(n) if workers is None else max(1, int(workers))
        w = min(w, n)  # no empty slices
        self.n = int(n)
        self.workers = w
        bounds = np.cumsum([0] + [len(a) for a in np.array_split(np.arange(n), w)])
        self._owner = np.repeat(np.arange(w), np.diff(bounds))
        self._local = np.arange(n) - bounds[self._owner]
        self._bounds = bounds
        self._done = np.zeros(n, dtype=bool)
        self._conns: list[Connection] = []
        self._procs: list[BaseProcess] = []
        self._closed = False
        self._slice: _EnvSlice | None = None
        self._finalizer = weakref.finalize(self, _stop_workers, self._conns, self._procs)
        try:
            if w > 1:
                self._start_workers(make_env, bounds)
            # Built while the workers start up, which takes longer.
            self._slice = _EnvSlice(make_env, int(bounds[1]))
            self.info = self._slice.info()
            for k in range(1, w):
                self._receive(k)  # each worker's "ready" (or the error that stopped it)
        except BaseException:
            self.close()
            raise

    def _start_workers(self, make_env: EnvFactory, bounds: np.ndarray) -> None:
        try:
            pickle.dumps(make_env)
        except Exception as exc:
            raise TypeError(
                f"make_env must be picklable to build environments in {self.workers - 1} "
                "worker process(es): pass e.g. functools.partial(tora.make_env, env_id), "
                "not a lambda or a local function (or use workers=0)"
            ) from exc
        ctx = _context()
        for k in range(1, self.workers):
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=_worker_main,
                args=(child_end, make_env, int(bounds[k + 1] - bounds[k])),
                name=f"tora-env-worker-{k}",
                daemon=True,
            )
            proc.start()
            # Only the worker holds the child end now, so its death reads as EOF here.
            child_end.close()
            self._conns.append(parent_end)
            self._procs.append(proc)

    # ------------------------------------------------------------------ messaging
    def _receive(self, k: int) -> Any:
        """The answer of worker ``k`` (1-based slice index); raises if it failed or died."""
        conn, proc = self._conns[k - 1], self._procs[k - 1]
        # Waiting on the process sentinel too: a worker that dies mid-step never answers.
        wait([conn, proc.sentinel])
        try:
            status, payload = conn.recv()
        except (EOFError, OSError):
            proc.join(_JOIN_SECONDS)
            raise EnvWorkerError(
                f"environment worker {k} ({proc.name}, pid {proc.pid}) died with exit code "
                f"{proc.exitcode}; if this runs from a script, put the code under "
                '`if __name__ == "__main__":` (workers re-import the main module)'
            ) from None
        if status == "error":
            raise EnvWorkerError(f"environment worker {k} (pid {proc.pid}) failed:\n{payload}")
        return payload

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the environment pool is closed")

    # ------------------------------------------------------------------ public API
    @property
    def pids(self) -> list[int]:
        """Process ids of the worker processes (empty when everything runs in this one)."""
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def observation_space(self) -> gym.Space:
        return self.info.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.info.action_space

    @property
    def max_episode_steps(self) -> int | None:
        """The environments' time limit (their spec's), or None."""
        return self.info.max_episode_steps

    @property
    def done(self) -> np.ndarray:
        """(n,) whether each environment has terminated or been truncated since its reset."""
        return self._done.copy()

    def reset(self, seeds: Sequence[int | None] | None = None) -> np.ndarray:
        """Reset every environment, env ``j`` with ``seeds[j]``; returns observations (n, ...)."""
        self._check_open()
        seed_list = (
            [None] * self.n if seeds is None else [None if s is None else int(s) for s in seeds]
        )
        if len(seed_list) != self.n:
            raise ValueError(f"{len(seed_list)} seeds for {self.n} environments")
        b = self._bounds
        try:
            for k, conn in enumerate(self._conns, start=1):
                conn.send(("reset", seed_list[b[k] : b[k + 1]]))
            assert self._slice is not None
            parts = [self._slice.reset(seed_list[b[0] : b[1]])]
            parts += [self._receive(k) for k in range(1, self.workers)]
        except BaseException:
            self.close()
            raise
        self._done[:] = False
        return np.concatenate(parts)

    def step(self, indices: Sequence[int] | np.ndarray, actions: np.ndarray) -> StepResult:
        """Step environments ``indices`` (still running, distinct) with ``actions`` (row i for
        ``indices[i]``); returns their observations, reward vectors (float64, see
        :func:`reward_vector`), terminated and truncated flags, in the order of ``indices``."""
        self._check_open()
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        actions = np.asarray(actions)
        if actions.shape[0] != idx.size:
            raise ValueError(f"{actions.shape[0]} actions for {idx.size} environments")
        if idx.size == 0:
            raise ValueError("no environments to step")
        if idx.min() < 0 or idx.max() >= self.n:
            raise IndexError(f"environment indices must lie in [0, {self.n})")
        if np.unique(idx).size != idx.size:
            raise ValueError("each environment can be stepped once per call")
        if self._done[idx].any():
            finished = idx[self._done[idx]][:5].tolist()
            raise ValueError(f"environments {finished} have finished; reset the pool first")
        owner, local = self._owner[idx], self._local[idx]
        rows = [np.flatnonzero(owner == k) for k in range(self.workers)]
        try:
            # The workers first, so they step while this process steps its own slice.
            for k in range(1, self.workers):
                if rows[k].size:
                    payload = (local[rows[k]], actions[rows[k]])
                    self._conns[k - 1].send(("step", payload))
            parts: list[tuple[np.ndarray, StepResult]] = []
            if rows[0].size:
                assert self._slice is not None
                parts.append((rows[0], self._slice.step(local[rows[0]], actions[rows[0]])))
            for k in range(1, self.workers):
                if rows[k].size:
                    parts.append((rows[k], self._receive(k)))
        except BaseException:
            self.close()
            raise
        first = parts[0][1]
        out = tuple(np.empty((idx.size, *a.shape[1:]), dtype=a.dtype) for a in first)
        for pos, result in parts:
            for dst, src in zip(out, result, strict=True):
                dst[pos] = src
        obs, rewards, terminated, truncated = out
        self._done[idx] = terminated | truncated
        return obs, rewards, terminated, truncated

    def close(self) -> None:
        """Stop the workers and close every environment; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()
        if self._slice is not None:
            self._slice.close()
            self._slice = None

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()


__all__ = [
    "MIN_ENVS_PER_WORKER",
    "EnvInfo",
    "EnvPool",
    "EnvWorkerError",
    "available_cores",
    "default_workers",
    "reward_vector",
]
