"""Bullet-Safety-Gym's six DSRL tasks: the common check loop, [reward, cost], seeding, ids.

These tests need the optional package (``make install`` installs it). Without it they fail
with the install command rather than skip, so a missing install step cannot pass CI silently.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import warnings
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator

from tora.data.formats.dsrl import env_id_from_name
from tora.data.trajectories import Direction
from tora.envs import (
    SAFETY_ALIASES,
    SAFETY_ENV_IDS,
    make_env,
    objective_directions,
    objective_names,
    resolve_env_id,
)
from tora.envs.safety import INSTALL_COMMAND, SAFETY_TASKS, BulletSafetyEnv, safety_task
from tora.errors import ShapeMismatchError, ToraError
from tora.evaluate.rollout import rollout_sweep

pytestmark = pytest.mark.bullet

# short name -> (obs dim, action dim), as in REFERENCE.md's DSRL table
DIMS = {
    "BallRun": (7, 2),
    "CarRun": (7, 2),
    "DroneRun": (17, 4),
    "BallCircle": (8, 2),
    "CarCircle": (8, 2),
    "DroneCircle": (18, 4),
}
LENGTHS = {
    "BallRun": 100,
    "CarRun": 200,
    "DroneRun": 200,
    "BallCircle": 200,
    "CarCircle": 300,
    "DroneCircle": 300,
}
SHORT = ("BallRun", "BallCircle")  # fast enough to step whole episodes in the default suite
# Pushing along the first action axis incurs a cost in every task within this many steps (the
# agent leaves the safe zone or gets too fast), so the loops below see both cost values.
PUSH_STEPS = 70


def _require_package() -> None:
    if importlib.util.find_spec("bullet_safety_gym") is None:
        pytest.fail(f"bullet-safety-gym is not installed; install it with: {INSTALL_COMMAND}")


def _push(env: gym.Env, steps: int, seed: int = 0) -> np.ndarray:
    """``steps`` actions: full push along the first axis plus uniform noise of 0.3."""
    shape = env.action_space.shape
    assert shape is not None
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, size=(steps, *shape))
    return np.clip(np.eye(shape[0])[0] + noise, -1.0, 1.0)


def _run(env: gym.Env, seed: int | None, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observations (start included) and reward vectors of one episode under ``actions``."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], gym.Env]]:
    """Builds the package's own env for a short task name (no tora wrapper, no time limit)."""
    _require_package()
    import bullet_safety_gym  # noqa: F401 (registers the package's ids)

    built = []

    def build(name: str) -> gym.Env:
        spec = gym.spec(SAFETY_TASKS[name].bullet_id)
        with monkeypatch.context() as patch:
            # The package can only build with Python's own streams (see the stream test).
            patch.setattr(sys, "stdout", sys.__stdout__)
            patch.setattr(sys, "stderr", sys.__stderr__)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
                env = load_env_creator(spec.entry_point)(**spec.kwargs)
        built.append(env)
        return env

    yield build
    for env in built:
        env.close()


# ---------------------------------------------------------------------- the common loop
@pytest.mark.parametrize("name", list(SAFETY_TASKS))
def test_common_check_loop(name: str) -> None:
    obs_dim, act_dim = DIMS[name]
    task = SAFETY_TASKS[name]
    env = make_env(task.tora_id)
    u = env.unwrapped
    assert isinstance(u, BulletSafetyEnv)
    assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    assert u.reward_names == ("reward", "cost") == objective_names(task.tora_id)
    assert u.reward_space.shape == (2,) and u.reward_space.dtype == np.float32
    assert env.spec is not None and env.spec.max_episode_steps == LENGTHS[name]

    # Short tasks: two whole episodes, which must end by truncation at exactly the limit.
    # The others: PUSH_STEPS steps (the limit itself is checked against the table above).
    episodes = 2 if name in SHORT else 1
    limit = LENGTHS[name] if name in SHORT else PUSH_STEPS
    seen_costs: set[float] = set()
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        assert obs.shape == (obs_dim,) and env.observation_space.contains(obs)
        for t, a in enumerate(_push(env, limit, seed=episode), start=1):
            obs, reward, terminated, truncated, info = env.step(a)
            assert obs.shape == (obs_dim,) and np.isfinite(obs).all()
            assert reward.shape == (2,) and reward.dtype == np.float32
            assert u.reward_space.contains(reward)
            assert reward[1] in (0.0, 1.0) and reward[1] == info["cost"]
            assert reward[0] == np.float32(info["reward"])
            np.testing.assert_array_equal(info["reward_vector"], [info["reward"], info["cost"]])
            assert isinstance(terminated, bool) and isinstance(truncated, bool)
            seen_costs.add(float(reward[1]))
            if name in SHORT:
                assert not terminated  # the Ball never ends an episode itself
                assert truncated == (t == LENGTHS[name])
            if terminated or truncated:
                break
        if name in SHORT:
            assert truncated
    assert seen_costs == {0.0, 1.0}  # the cost is live, not a constant
    env.close()


def test_builds_with_replaced_std_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    # The package silences PyBullet through sys.stdout's C stream and fails when sys.stdout is
    # not Python's own (pytest's capture, Jupyter); tora lends it the process's streams.
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stdout", replaced)
    env = make_env("tora/SafetyBallCircle-v0")
    assert sys.stdout is replaced
    env.reset(seed=0)
    env.close()


def test_episode_lengths_are_dsrls_and_the_packages() -> None:
    _require_package()
    import bullet_safety_gym  # noqa: F401

    for name, task in SAFETY_TASKS.items():
        assert task.episode_steps == LENGTHS[name]
        assert gym.spec(task.tora_id).max_episode_steps == LENGTHS[name]
        assert gym.spec(task.bullet_id).max_episode_steps == LENGTHS[name]


def test_drone_tipping_over_terminates() -> None:
    env = make_env("tora/SafetyDroneCircle-v0")
    env.reset(seed=0)
    push = np.eye(4)[0]  # one rotor faster than the others flips the drone
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(push)
        steps += 1
    assert terminated and not truncated and steps < LENGTHS["DroneCircle"]


# --------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("name", list(SAFETY_TASKS))
def test_same_seed_same_trajectory_other_seed_differs(name: str) -> None:
    tora_id = SAFETY_TASKS[name].tora_id
    fresh, used = make_env(tora_id), make_env(tora_id)
    actions = _push(fresh, 40)
    first = _run(fresh, 3, actions)
    _run(used, 4, actions[::-1])  # an episode with other seed and actions first
    again = _run(used, 3, actions)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other_start, _ = used.reset(seed=5)
    assert not np.array_equal(other_start, first[0][0])


@pytest.mark.parametrize("name", list(SAFETY_TASKS))
def test_seeded_start_is_the_bare_packages_after_np_random_seed(
    name: str, bare_env: Callable[[str], gym.Env]
) -> None:
    env, bare = make_env(SAFETY_TASKS[name].tora_id), bare_env(name)
    actions = _push(env, 30, seed=1)
    observations, rewards = _run(env, 11, actions)
    np.random.seed(11)  # noqa: NPY002 (how the bare package is seeded)
    obs, _ = bare.reset()
    np.testing.assert_array_equal(obs, observations[0])
    for t, a in enumerate(actions[: len(rewards)]):
        obs, reward, _, _, info = bare.step(a)
        np.testing.assert_array_equal(obs, observations[t + 1])
        np.testing.assert_array_equal(rewards[t], np.float32([reward, info["cost"]]))


def test_global_numpy_rng_is_neither_read_nor_changed() -> None:
    env = make_env("tora/SafetyCarRun-v0")
    actions = _push(env, 20)
    np.random.seed(1)  # noqa: NPY002
    before = np.random.get_state()  # noqa: NPY002
    first = _run(env, 0, actions)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2] == after[2]

    # Other global states, and draws from the global RNG between steps, change nothing.
    np.random.seed(2)  # noqa: NPY002
    obs, _ = env.reset(seed=0)
    observations = [obs]
    for a in actions:
        np.random.random(3)  # noqa: NPY002
        observations.append(env.step(a)[0])
    np.testing.assert_array_equal(np.array(observations), first[0])


def test_unseeded_resets_continue_the_envs_own_stream() -> None:
    one, two = make_env("tora/SafetyBallCircle-v0"), make_env("tora/SafetyBallCircle-v0")
    starts = []
    for env in (one, two):
        seeded, _ = env.reset(seed=7)
        follow_up, _ = env.reset()
        starts.append((seeded, follow_up))
    np.testing.assert_array_equal(starts[0][1], starts[1][1])  # the same stream in both
    assert not np.array_equal(starts[0][0], starts[0][1])  # and a new start each episode


def test_seed_out_of_the_legacy_rngs_range_is_refused() -> None:
    env = make_env("tora/SafetyBallRun-v0")
    with pytest.raises(ToraError, match=r"seed must be in \[0, 2\*\*32\)"):
        env.reset(seed=2**32)


# ------------------------------------------------------------------------- bad actions
def test_bad_actions_are_refused_with_a_clear_error() -> None:
    env = make_env("tora/SafetyBallRun-v0")
    env.reset(seed=0)
    with pytest.raises(ShapeMismatchError, match=r"actions of shape \(2,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ToraError, match="actions must be finite"):
        env.step(np.array([np.nan, 0.0]))
    env.step(np.zeros((1, 2)))  # any layout of the right size is accepted


# ------------------------------------------------------------------------------- ids
def test_aliases_resolve_to_the_tora_ids() -> None:
    _require_package()
    import bullet_safety_gym  # noqa: F401 (registers the package's names too)

    assert set(SAFETY_ALIASES.values()) == set(SAFETY_ENV_IDS)
    for name, task in SAFETY_TASKS.items():
        for alias in (task.tora_id, f"Safety{name}-v0", f"Offline{name}-v0"):
            assert resolve_env_id(alias) == task.tora_id
            assert safety_task(alias) is task
        # the prefix of a DSRL file name, as the DSRL loader reads it
        assert resolve_env_id(env_id_from_name(f"Safety{name}-v0-40-651.hdf5")) == task.tora_id
    env = make_env("SafetyBallRun-v0")
    assert env.spec is not None and env.spec.id == "tora/SafetyBallRun-v0"
    assert isinstance(env.unwrapped, BulletSafetyEnv)


def test_objective_names_and_directions_need_no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bullet_safety_gym", None)  # any import of it fails
    for env_id in (*SAFETY_ENV_IDS, "SafetyCarRun-v0", "OfflineDroneRun-v0"):
        assert objective_names(env_id) == ("reward", "cost")
        assert objective_directions(env_id) == (Direction.MAXIMIZE, Direction.MINIMIZE)
    assert objective_directions("tora/Cruise-v0") == (Direction.MAXIMIZE, Direction.MAXIMIZE)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bullet_safety_gym", None)
    with pytest.raises(ToraError, match="not installed") as err:
        make_env("SafetyCarRun-v0")
    assert INSTALL_COMMAND in str(err.value) and "--no-deps" in str(err.value)


def test_unknown_task_lists_the_six() -> None:
    with pytest.raises(ToraError, match="unknown safe-RL task 'AntRun'") as err:
        safety_task("AntRun")
    assert all(name in str(err.value) for name in SAFETY_TASKS)
    with pytest.raises(ToraError, match="tora/SafetyBallRun-v0"):
        make_env("SafetyBallRun-v9")


# --------------------------------------------------------------- the evaluation rollouts
def test_rollout_sweep_sums_reward_and_cost() -> None:
    env_id = "tora/SafetyBallRun-v0"
    push = np.array([1.0, 1.0])

    def policy(obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.tile(push, (obs.shape[0], 1))

    result = rollout_sweep(
        policy,
        lambda: make_env(env_id),
        np.array([[1.0, 0.0]]),
        episodes=2,
        seed=0,
        objective_names=objective_names(env_id),
        progress=False,
    )
    assert result.returns.shape == (1, 2, 2)
    assert result.lengths.tolist() == [[LENGTHS["BallRun"]] * 2]
    for episode in range(2):
        env = make_env(env_id)
        env.reset(seed=episode)
        total = np.zeros(2)
        for _ in range(LENGTHS["BallRun"]):
            total += env.step(push)[4]["reward_vector"]
        np.testing.assert_allclose(result.returns[0, episode], total, rtol=1e-12)
        assert 0 < total[1] <= LENGTHS["BallRun"]  # pushing out of the corridor costs
