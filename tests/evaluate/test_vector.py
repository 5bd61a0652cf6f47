"""The environment pool: same results for any worker count, errors surface, no stray workers."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest

from tora.envs import CRUISE_ID, make_env
from tora.envs.cruise import CruiseEnv
from tora.evaluate.rollout import merge_rows, rollout_rows, rollout_sweep
from tora.evaluate.vector import EnvPool, EnvWorkerError, default_workers

MAKE_CRUISE = functools.partial(make_env, CRUISE_ID)
RAISE_ACTION = 0.5
EXIT_ACTION = 0.25


class FaultyCruise(CruiseEnv):
    """Cruise whose step raises for action 0.5 and kills its process for action 0.25 (only in
    a worker process, never in the test runner)."""

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        a = float(np.asarray(action).reshape(-1)[0])
        if a == RAISE_ACTION:
            raise RuntimeError("faulty cruise refuses this action")
        if a == EXIT_ACTION and mp.parent_process() is not None:
            os._exit(3)
        return super().step(action)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until reaped; count it as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def wait_dead(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def drive(pool: EnvPool, steps: int) -> list[tuple[np.ndarray, ...]]:
    """Reset, then step a shrinking set of environments with observation-dependent actions."""
    obs = pool.reset(list(range(pool.n)))
    out: list[tuple[np.ndarray, ...]] = [(obs,)]
    for t in range(steps):
        # Drop every third env after a few steps, so workers see uneven, partial batches.
        idx = np.arange(pool.n) if t < 3 else np.flatnonzero(np.arange(pool.n) % 3 != 0)
        actions = np.tanh(3.0 * obs[idx, :1] - 1.0 + 0.01 * idx[:, None])
        step = pool.step(idx, actions)
        obs[idx] = step[0]
        out.append(step)
    return out


def test_results_do_not_depend_on_the_worker_count() -> None:
    runs = {}
    for workers in (0, 2, 3):
        with EnvPool(MAKE_CRUISE, 7, workers) as pool:
            assert pool.workers == max(1, workers)
            assert len(pool.pids) == max(0, workers - 1)
            assert pool.observation_space.shape == (3,) and pool.max_episode_steps is None
            runs[workers] = drive(pool, 6)
            pids = pool.pids
        assert wait_dead(pids)
    for workers in (2, 3):
        for a, b in zip(runs[0], runs[workers], strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
    obs, rewards, terminated, truncated = runs[0][1]
    assert obs.shape == (7, 3) and rewards.shape == (7, 2) and rewards.dtype == np.float64
    assert terminated.dtype == bool and not truncated.any()


def test_sweep_is_identical_for_any_worker_count() -> None:
    def policy(obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.tanh(4.0 * (weights[:, :1] - obs[:, :1]))

    weights = np.array([[1.0, 0.0], [0.7, 0.3], [0.2, 0.8], [0.0, 1.0]])
    results = [
        rollout_sweep(policy, MAKE_CRUISE, weights, 2, 5, progress=False, workers=w)
        for w in (0, 2, 3)
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0].returns, other.returns)
        np.testing.assert_array_equal(results[0].lengths, other.lengths)
    timing = results[1].meta["timing"]
    assert timing["workers"] == 2 and timing["env_steps"] == 8 * 100
    assert timing["env_steps_per_second"] > 0 and timing["wall_seconds"] >= timing["env_seconds"]


def test_a_sweep_cut_into_shares_and_merged_is_the_whole_sweep() -> None:
    """Shares of consecutive rows rolled out apart (as Ray actors do) and merged in row order
    give the whole sweep: each row keeps its preference, start seed and row index."""
    weights = np.array([[1.0, 0.0], [0.7, 0.3], [0.2, 0.8]])
    seen: list[np.ndarray] = []

    def policy(obs: np.ndarray, weights: np.ndarray, *, rows: np.ndarray) -> np.ndarray:
        seen.append(rows)
        return np.tanh(4.0 * (weights[:, :1] - obs[:, :1]))

    whole = rollout_sweep(policy, MAKE_CRUISE, weights, 2, 5, progress=False, pass_rows=True)
    ended: list[int] = []
    shares = [range(0, 1), range(1, 4), range(4, 6)]
    parts = [
        rollout_rows(
            policy,
            MAKE_CRUISE,
            weights,
            2,
            5,
            share,
            progress=False,
            pass_rows=True,
            on_end=ended.append,
        )
        for share in shares
    ]
    merged = merge_rows(parts, weights, 2, 5)
    np.testing.assert_array_equal(merged.returns, whole.returns)
    np.testing.assert_array_equal(merged.lengths, whole.lengths)
    np.testing.assert_array_equal(merged.weights, whole.weights)
    assert sum(ended) == 6  # every episode ended once, counted by the step it ended at
    assert seen[-1].tolist() == [0, 1]  # rows 4 and 5, indexed within their share
    with pytest.raises(ValueError, match="in order"):
        merge_rows(parts[::-1], weights, 2, 5)
    with pytest.raises(ValueError, match="consecutive rows"):
        rollout_rows(policy, MAKE_CRUISE, weights, 2, 5, range(4, 7), progress=False)


def test_finished_environments_must_be_reset_before_stepping() -> None:
    with EnvPool(functools.partial(make_env, CRUISE_ID, max_episode_steps=2), 3, 0) as pool:
        pool.reset([0, 1, 2])
        pool.step([0, 1, 2], np.zeros((3, 1)))
        *_, truncated = pool.step([2, 0], np.zeros((2, 1)))  # any order, results follow it
        assert truncated.all() and pool.done.tolist() == [True, False, True]
        with pytest.raises(ValueError, match="finished"):
            pool.step([0], np.zeros((1, 1)))
        with pytest.raises(ValueError, match="once per call"):
            pool.step([1, 1], np.zeros((2, 1)))
        with pytest.raises(IndexError):
            pool.step([3], np.zeros((1, 1)))
        pool.reset()
        assert not pool.done.any()
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset()


def test_worker_exception_is_raised_here_with_its_traceback() -> None:
    pool = EnvPool(FaultyCruise, 4, 2)
    pids = pool.pids
    assert len(pids) == 1
    pool.reset([0, 1, 2, 3])
    actions = np.zeros((4, 1))
    actions[3] = RAISE_ACTION  # env 3 is in the worker's slice
    with pytest.raises(EnvWorkerError, match="refuses this action") as info:
        pool.step(np.arange(4), actions)
    assert "Traceback" in str(info.value) and "in step" in str(info.value)
    # The error closed the pool: its worker is gone and it cannot be used any more.
    assert wait_dead(pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.step([0], actions[:1])


def test_a_dying_worker_is_reported_and_the_others_stopped() -> None:
    with EnvPool(FaultyCruise, 6, 3) as pool:
        pids = pool.pids
        pool.reset()
        actions = np.zeros((6, 1))
        actions[5] = EXIT_ACTION
        with pytest.raises(EnvWorkerError, match="exit code 3"):
            pool.step(np.arange(6), actions)
    assert wait_dead(pids)


def test_worker_start_errors_and_unpicklable_factories() -> None:
    with pytest.raises(EnvWorkerError, match="unknown environment id"):
        EnvPool(functools.partial(_only_in_workers, "tora/NoSuch-v0"), 4, 2)
    with pytest.raises(TypeError, match=r"functools\.partial"):
        EnvPool(lambda: make_env(CRUISE_ID), 4, 2)
    with EnvPool(lambda: make_env(CRUISE_ID), 4, 0) as pool:  # in-process: lambdas are fine
        assert pool.reset().shape == (4, 3)


def _only_in_workers(env_id: str) -> Any:
    """make_env(env_id) in a worker, Cruise here: an error that only a worker can hit."""
    return make_env(env_id if mp.parent_process() is not None else CRUISE_ID)


def test_workers_exit_when_the_parent_dies() -> None:
    script = textwrap.dedent(
        f"""
        import functools, os, sys
        sys.path[:0] = {sys.path!r}
        from tora.envs import make_env
        from tora.evaluate.vector import EnvPool
        if __name__ == "__main__":
            pool = EnvPool(functools.partial(make_env, "{CRUISE_ID}"), 6, 3)
            pool.reset()
            print(" ".join(map(str, pool.pids)), flush=True)
            os._exit(0)  # no close, no atexit handlers: the workers are on their own
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    assert wait_dead(pids), "env workers outlived their parent"


def test_default_workers_keep_small_pools_in_process() -> None:
    assert default_workers(1) == 1 and default_workers(31) == 1
    assert 1 <= default_workers(10_000) <= (os.cpu_count() or 1)
