"""The Cruise environment, its registration and the scripted data collector."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tora.envs import CRUISE_ID, CruiseEnv, make_env, register_envs
from tora.envs.cruise import GRADE, LAG, PERIOD, ideal_front
from tora.envs.scripted import collect_cruise


def _env_at(x: float, v: float) -> CruiseEnv:
    env = CruiseEnv()
    env.reset(seed=0)
    env._x, env._v = x, v
    return env


def _obs(x: float, v: float) -> list[float]:
    p = 2 * math.pi * x / PERIOD
    return np.array([v, math.sin(p), math.cos(p)], dtype=np.float32).tolist()


# ------------------------------------------------------------------------------------- steps
def test_two_steps_match_dynamics_by_hand() -> None:
    # x = 7.5 is a quarter period: phase pi/2, the steepest uphill (slope 1).
    env = _env_at(7.5, 0.5)
    obs, reward, terminated, truncated, info = env.step(np.array([0.6], dtype=np.float32))
    v1 = 0.5 + LAG * (0.8 - 0.5) - GRADE * 1.0  # throttle (0.6 + 1) / 2 = 0.8
    assert v1 == pytest.approx(0.52)
    assert reward.tolist() == pytest.approx([0.52, 1 - 0.8**2], rel=1e-6)
    assert obs.tolist() == pytest.approx(_obs(7.5 + v1, v1), abs=1e-7)
    assert not terminated and not truncated
    np.testing.assert_array_equal(info["reward_vector"], reward)

    obs, reward, *_ = env.step(np.array([-1.0]))  # throttle 0: no fuel used
    slope = math.sin(2 * math.pi * (7.5 + v1) / PERIOD)
    v2 = v1 + LAG * (0.0 - v1) - GRADE * slope
    assert reward.tolist() == pytest.approx([v2, 1.0], rel=1e-6)
    assert obs.tolist() == pytest.approx(_obs(7.5 + v1 + v2, v2), abs=1e-7)


def test_step_from_seeded_reset_matches_dynamics() -> None:
    env = CruiseEnv()
    obs0, _ = env.reset(seed=3)
    x0, v0 = env._x, env._v
    assert obs0.tolist() == pytest.approx(_obs(x0, v0), abs=1e-7)
    _, reward, *_ = env.step(np.array([0.0]))  # throttle 0.5
    v1 = v0 + LAG * (0.5 - v0) - GRADE * math.sin(2 * math.pi * x0 / PERIOD)
    assert reward.tolist() == pytest.approx([v1, 0.75], rel=1e-6)
    assert env._x == pytest.approx(x0 + v1)


def test_speed_is_clipped_at_zero_uphill() -> None:
    env = _env_at(7.5, 0.0)
    obs, reward, *_ = env.step(np.array([-1.0]))  # 0 + 0.2 * 0 - 0.04 < 0 -> 0
    assert obs[0] == 0.0 and reward[0] == 0.0
    assert env._x == 7.5


def test_position_wraps_around_the_period() -> None:
    env = _env_at(29.9, 1.0)
    env.step(np.array([1.0]))
    v = env._v
    assert env._x == pytest.approx(29.9 + v - PERIOD)
    assert 0.0 <= env._x < PERIOD


def test_reward_is_float32_vector_and_info_holds_a_copy() -> None:
    env = _env_at(3.0, 0.4)
    _, reward, *_, info = env.step(np.zeros(1))
    assert reward.shape == (2,) and reward.dtype == np.float32
    expected = reward.copy()
    reward[:] = 99.0
    np.testing.assert_array_equal(info["reward_vector"], expected)


def test_actions_are_clipped_to_the_box() -> None:
    a, b = _env_at(4.0, 0.3), _env_at(4.0, 0.3)
    out_a, out_b = a.step(np.array([5.0])), b.step(np.array([1.0]))
    np.testing.assert_array_equal(out_a[0], out_b[0])
    np.testing.assert_array_equal(out_a[1], out_b[1])
    assert out_a[1][1] == 0.0  # full throttle: 1 - 1^2


def test_episode_truncates_at_100_steps_never_terminates() -> None:
    env = CruiseEnv()
    env.reset(seed=0)
    env.action_space.seed(0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(100)]
    assert all(not term for term, _ in flags)
    assert [trunc for _, trunc in flags] == [False] * 99 + [True]


def test_max_episode_steps_is_configurable() -> None:
    env = CruiseEnv(max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(np.zeros(1))[3] for _ in range(3)] == [False, False, True]


def test_observations_stay_in_observation_space() -> None:
    env = CruiseEnv()
    obs, _ = env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(100):
        assert env.observation_space.contains(obs)
        obs, reward, *_ = env.step(env.action_space.sample())
        assert env.reward_space.contains(reward)


# ------------------------------------------------------------------------------------ resets
def test_seeded_reset_repeats_and_other_seed_differs() -> None:
    env = CruiseEnv()
    first, _ = env.reset(seed=5)
    env.step(np.ones(1))
    again, _ = env.reset(seed=5)
    other, _ = env.reset(seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_reset_state_in_documented_ranges() -> None:
    env = CruiseEnv()
    states = []
    for seed in range(100):
        env.reset(seed=seed)
        states.append((env._x, env._v))
    xs, vs = np.array(states).T
    assert xs.min() >= 0 and xs.max() < PERIOD and xs.max() - xs.min() > 0.8 * PERIOD
    assert vs.min() >= 0 and vs.max() <= 0.2


# ------------------------------------------------------------------------------ registration
def test_make_env_builds_cruise_by_id() -> None:
    register_envs()
    register_envs()  # idempotent
    env = make_env(CRUISE_ID)
    assert isinstance(env.unwrapped, CruiseEnv)
    assert CRUISE_ID in gym.registry
    obs, _ = env.reset(seed=1)
    assert obs.shape == (3,)
    assert env.step(np.zeros(1, dtype=np.float32))[1].shape == (2,)


def test_gymnasium_env_checker_passes_with_vector_reward_warning() -> None:
    # Gymnasium's checker expects a scalar reward and only warns about the NumPy vector that
    # Cruise returns on purpose (the mo-gymnasium convention for multi-objective envs);
    # every other check (spaces, seeding, determinism, obs in space) passes.
    with pytest.warns(UserWarning, match=r"reward returned by `step\(\)` must be a float"):
        check_env(make_env(CRUISE_ID).unwrapped)


def test_ideal_front_by_hand() -> None:
    front = ideal_front(num_points=3, steps=100)
    # constant throttle u from rest: v_k = u (1 - 0.8^k), so sum_k v_k = u (100 - 4 (1 - 0.8^100))
    full = 100 - 4 * (1 - 0.8**100)
    assert front[:, 0].tolist() == pytest.approx([0.0, 0.5 * full, full])
    assert front[:, 1].tolist() == pytest.approx([100.0, 75.0, 0.0])


# ---------------------------------------------------------------------------------- scripted
def test_collect_cruise_is_seeded() -> None:
    a = collect_cruise(5, seed=0, progress=False)
    b = collect_cruise(5, seed=0, progress=False)
    c = collect_cruise(5, seed=1, progress=False)
    for name in ("observations", "actions", "rewards", "next_observations", "episode_bounds"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.observations, c.observations)
    assert not np.array_equal(a.actions, c.actions)


def test_collect_cruise_builds_valid_trajectories() -> None:
    traj = collect_cruise(5, seed=0, progress=False)
    traj.validate()
    assert traj.objective_names == ["speed", "energy"] and not traj.has_costs
    assert traj.num_episodes == 5 and traj.episode_lengths.tolist() == [100] * 5
    assert traj.metadata["env_id"] == CRUISE_ID
    assert traj.actions.shape == (500, 1) and np.all(np.abs(traj.actions) <= 1.0)
    ends = traj.episode_bounds[1:] - 1
    assert np.flatnonzero(traj.timeouts).tolist() == ends.tolist()
    assert not traj.terminals.any()


def test_collected_rewards_agree_with_actions_and_next_observations() -> None:
    traj = collect_cruise(3, seed=2, progress=False)
    throttle = (traj.actions[:, 0].astype(np.float64) + 1) / 2
    np.testing.assert_allclose(traj.rewards[:, 0], traj.next_observations[:, 0], rtol=1e-6)
    np.testing.assert_allclose(traj.rewards[:, 1], 1 - throttle**2, atol=1e-6)
    for i in range(traj.num_episodes):  # consecutive transitions chain
        sl = traj.episode_slice(i)
        np.testing.assert_array_equal(traj.observations[sl][1:], traj.next_observations[sl][:-1])
