"""Behaviour policies and DSRL-like data for the safe-RL tasks: the cost's sign in ARS scores,
policies with a bias, the cost-penalty grid, the shipped SafetyBallRun set and `tora data make`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from tora.behavior import ARSConfig, IterationInfo, LinearPolicy, load_policy, train_ars
from tora.behavior.ars import resolve_config
from tora.behavior.policy import RunningStat, linear_action
from tora.behavior.rollout import objective_signs, scalarize
from tora.behavior.safe import is_safety_task, penalty_grid
from tora.behavior.shipped import load_shipped_policies, shipped_policy_dir, shipped_policy_envs
from tora.behavior.train import _settings, chain_order
from tora.cli.main import main
from tora.data.formats import load_dataset
from tora.data.trajectories import Direction
from tora.envs import make_env
from tora.evaluate.card import dataset_card
from tora.evaluate.rollout import reward_vector
from tora.evaluate.safe import dsrl_reference

BALL_RUN = "SafetyBallRun-v0"


class CostlyPush(gym.Env[np.ndarray, np.ndarray]):
    """Push a ∈ [-1, 1] for 10 steps; reward vector [a, a^2]: reward to maximize, cost to
    minimize. Reward only wants a = 1 (cost 10 per episode); the preference (0.5, 0.5) scores
    0.5 a - 0.5 a^2 per step, best at a = 0.5 (cost 2.5). The observation is noise, so only the
    policy's bias can hold a constant push."""

    reward_names: ClassVar[tuple[str, ...]] = ("reward", "cost")
    reward_directions: ClassVar[tuple[Direction, ...]] = (Direction.MAXIMIZE, Direction.MINIMIZE)

    def __init__(self, constant: bool = False) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float64)
        self.constant = constant  # every step returns [1, 2], whatever the action
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.standard_normal(1), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        a = float(np.clip(action, -1.0, 1.0)[0])
        reward = np.array([1.0, 2.0]) if self.constant else np.array([a, a * a])
        self._t += 1
        return self.np_random.standard_normal(1), reward, False, self._t >= 10, {}


def _constant_push() -> CostlyPush:
    return CostlyPush(constant=True)


# ------------------------------------------------------------------------ the cost's sign
def test_scalarize_subtracts_the_minimized_objective() -> None:
    returns = np.array([[100.0, 7.0], [40.0, 0.0]])
    # (0.25, 0.75) on [reward, cost]: 0.25 * 100 - 0.75 * 7 = 19.75 and 0.25 * 40 - 0 = 10.
    np.testing.assert_array_equal(scalarize(returns, [0.25, 0.75], [1.0, -1.0]), [19.75, 10.0])
    np.testing.assert_array_equal(scalarize(returns, [0.25, 0.75]), [30.25, 10.0])


def test_directions_come_from_the_env() -> None:
    np.testing.assert_array_equal(objective_signs(BALL_RUN), [1.0, -1.0])
    np.testing.assert_array_equal(objective_signs(CostlyPush), [1.0, -1.0])
    assert objective_signs("tora/MO-HalfCheetah-v0") is None  # all maximized: plain w . R


def test_ars_scores_a_cost_against_the_reward() -> None:
    # Every step returns [1, 2]: a 10-step episode has R = 10, C = 20, so each rollout of
    # preference (0.5, 0.5) scores 0.5 * 10 - 0.5 * 20 = -5 (not +15 as w . R would).
    seen: list[float] = []
    config = ARSConfig(directions=2, top=1, iterations=2, episode_steps=10, eval_episodes=1)

    def record(info: IterationInfo) -> None:
        if info.event == "iteration":
            seen.append(info.mean_return)

    policy = train_ars(_constant_push, [0.5, 0.5], config, callback=record, progress=False)
    assert seen == [-5.0, -5.0]
    assert policy.info["scalarized_return"] == -5.0
    assert policy.info["return_vector"] == [10.0, 20.0]
    assert policy.info["objective_signs"] == [1.0, -1.0]


def test_a_cost_penalty_lowers_the_cost_on_a_toy_task() -> None:
    config = ARSConfig(
        directions=4,
        top=2,
        step_size=0.1,
        noise=0.1,
        iterations=25,
        episode_steps=10,
        eval_episodes=3,
        bias=True,
    )
    greedy = train_ars(CostlyPush, [1.0, 0.0], config, progress=False).info["return_vector"]
    careful = train_ars(CostlyPush, [0.5, 0.5], config, progress=False).info["return_vector"]
    assert greedy[1] > 8.0  # pushes (almost) fully: cost near 10
    assert careful[1] < 0.6 * greedy[1] and careful[0] < greedy[0]


# ------------------------------------------------------------------ policies with a bias
def test_bias_column_is_added_after_the_product(tmp_path: Path) -> None:
    stat = RunningStat(3, np.array([1.0, 0.0]), np.array([8.0, 2.0]))  # std 2 and 1
    M = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, -0.25]])
    # z = ((3 - 1) / 2, 0.5 / 1) = (1, 0.5): a = (1 + 1 + 0.5, -0.5 - 0.25).
    np.testing.assert_allclose(
        linear_action(M, stat.mean, stat.std, -5, 5, [3.0, 0.5]), [2.5, -0.75]
    )
    policy = LinearPolicy(M, stat, [-5.0, -5.0], [5.0, 5.0], "x", [1.0, 0.0])
    assert policy.bias and policy.obs_dim == 2
    policy.save(tmp_path / "p")
    assert json.loads((tmp_path / "p.json").read_text())["bias"] is True
    loaded = load_policy(tmp_path / "p")
    np.testing.assert_array_equal(loaded.M, M)
    np.testing.assert_array_equal(loaded.act([[3.0, 0.5]]), [[2.5, -0.75]])


# --------------------------------------------------------------------- defaults and grid
def test_env_defaults_keep_the_mujoco_plan_and_fit_the_safe_tasks() -> None:
    cheetah = resolve_config(ARSConfig(), "tora/MO-HalfCheetah-v0")
    shipped = json.loads((shipped_policy_dir("tora/MO-HalfCheetah-v0") / "index.json").read_text())
    assert _settings(cheetah) == shipped["config"]  # the shipped set still resumes
    safe = resolve_config(ARSConfig(), BALL_RUN)
    assert (safe.episode_steps, safe.directions, safe.top, safe.bias) == (100, 8, 4, True)
    assert (safe.iterations, safe.root_iterations, safe.chain_from) == (30, 60, "ends")
    assert resolve_config(ARSConfig(), "SafetyCarCircle-v0").episode_steps == 300
    assert resolve_config(ARSConfig(episode_steps=7), BALL_RUN).episode_steps == 7


def test_penalty_grid_spans_reward_only_to_heavy_penalties() -> None:
    ref = dsrl_reference(BALL_RUN)
    grid = penalty_grid(BALL_RUN, 4)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    np.testing.assert_array_equal(grid[0], [1.0, 0.0])
    # Row 2: u = 1/2 of the way over normalized objectives: w_c / w_r = (R_max - R_min) / C_max.
    np.testing.assert_allclose(grid[2, 1] / grid[2, 0], (ref.reward_max - ref.reward_min) / 80.0)
    assert np.all(np.diff(grid[:, 1] / np.maximum(grid[:, 0], 1e-300)) > 0)
    assert chain_order(np.stack([1 - np.arange(4) / 4, np.arange(4) / 4], 1), "ends")[0] == [
        0,
        3,
        1,
        2,
    ]


# ------------------------------------------------------------------ the shipped BallRun set
def _mean_cost(env_id: str, policy: LinearPolicy, seeds: range) -> float:
    env = make_env(env_id)
    costs = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = np.zeros(2), False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs))
            total += reward_vector(reward, info)
            done = terminated or truncated
        costs.append(total[1])
    env.close()
    return float(np.mean(costs))


SAFE_SETS = [f for f in shipped_policy_envs() if is_safety_task(f"tora/{f}")]


@pytest.mark.parametrize("folder", SAFE_SETS)
def test_shipped_safe_policies_trade_reward_for_cost(folder: str) -> None:
    env_id = f"tora/{folder}"
    policies = load_shipped_policies(env_id)
    # Linear sets need the bias (tora.behavior.policy); PPO's MLP sets have their own.
    assert len(policies) == 11 and all(p.bias for p in policies if isinstance(p, LinearPolicy))
    weights = np.stack([p.weights for p in policies])
    np.testing.assert_allclose(weights, penalty_grid(env_id, 11))
    reward_only, heaviest = policies[0], policies[-1]
    assert _mean_cost(env_id, heaviest, range(3)) < _mean_cost(env_id, reward_only, range(3))


def test_ballrun_ships_and_its_reward_only_policy_is_fast() -> None:
    assert "SafetyBallRun-v0" in SAFE_SETS
    reward_only = load_shipped_policies(BALL_RUN)[0]
    assert reward_only.info["return_vector"][0] >= 0.8 * dsrl_reference(BALL_RUN).reward_max


# ------------------------------------------------------------------------- data make
def _make(out: Path, *extra: str) -> None:
    args = ["data", "make", BALL_RUN, "--episodes", "22", "--seed", "5", "--out", str(out)]
    assert main([*args, "--no-progress", *extra]) == 0


def test_data_make_is_deterministic_and_round_trips_through_dsrl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a" / "SafetyBallRun-v0_22.hdf5", tmp_path / "b" / "SafetyBallRun-v0_22.hdf5"
    _make(a, "--format", "dsrl")
    out = capsys.readouterr().out
    assert "DSRL terms (BallRun" in out and "threshold 20" in out and "card plot" in out
    assert Path(f"{a}.card.png").stat().st_size > 0
    _make(b, "--format", "dsrl", "--no-plot")
    assert a.read_bytes() == b.read_bytes()

    native = tmp_path / "data.h5"
    _make(native, "--format", "native", "--no-plot")
    from_dsrl, own = load_dataset(a), load_dataset(native)
    for traj in (from_dsrl, own):
        assert [(o.name, o.direction) for o in traj.objectives] == [
            ("reward", Direction.MAXIMIZE),
            ("cost", Direction.MINIMIZE),
        ]
    assert from_dsrl.metadata["env_id"] == BALL_RUN and from_dsrl.num_episodes == 22
    np.testing.assert_array_equal(from_dsrl.episode_returns(), own.episode_returns())
    np.testing.assert_array_equal(from_dsrl.observations, own.observations)
    np.testing.assert_array_equal(from_dsrl.actions, own.actions)
    # Every policy of the grid and every noise level got its share of the episodes.
    meta = own.metadata
    assert sorted(set(meta["policy_index"])) == list(range(11))
    assert set(meta["noise_level"]) == set(meta["noise_levels"])


def test_card_ranges_match_the_episodes(tmp_path: Path) -> None:
    native = tmp_path / "data.h5"
    _make(native, "--no-plot")
    traj = load_dataset(native)
    returns = traj.episode_returns().astype(np.float64)
    ref = dsrl_reference(BALL_RUN)
    safe = dataset_card(traj)["safe"]
    normalized = (returns[:, 0] - ref.reward_min) / (ref.reward_max - ref.reward_min)
    assert safe["task"] == "BallRun"
    assert safe["normalized_reward"]["min"] == pytest.approx(normalized.min())
    assert safe["normalized_reward"]["max"] == pytest.approx(normalized.max())
    assert safe["cost"]["max"] == returns[:, 1].max()
    assert safe["cost"]["min"] == returns[:, 1].min()
    assert safe["reaches_max_cost"] == bool(returns[:, 1].max() >= 80)
    share = float((returns[:, 1] < 20).mean())
    assert safe["thresholds"]["20"]["safe_fraction"] == pytest.approx(share)
    assert safe["thresholds"]["20"]["normalized_cost"]["max"] == pytest.approx(
        returns[:, 1].max() / 20
    )
