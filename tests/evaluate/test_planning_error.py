"""next_state_error: exact on hand-made data, and it tells a planner that knows the dynamics
from one that ignores its start state."""

from __future__ import annotations

import numpy as np
import pytest

from tora.data.normalize import Normalizer
from tora.data.trajectories import Objective, Trajectories
from tora.errors import ShapeMismatchError, ToraError
from tora.evaluate.planning import (
    action_error,
    diagnose_planners,
    next_state_error,
    transition_features,
    transition_reward_model,
)


def _from_episodes(states: list[np.ndarray], actions: list[np.ndarray]) -> Trajectories:
    """A one-objective dataset from each episode's states (L + 1, D) and actions (L, A)."""
    lengths = [len(a) for a in actions]
    n = sum(lengths)
    return Trajectories(
        observations=np.concatenate([x[:-1] for x in states]).astype(np.float32),
        actions=np.concatenate(actions).astype(np.float32),
        rewards=np.zeros((n, 1), np.float32),
        next_observations=np.concatenate([x[1:] for x in states]).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.concatenate([np.arange(k) == k - 1 for k in lengths]),
        episode_bounds=np.concatenate([[0], np.cumsum(lengths)]),
        objectives=(Objective("r"),),
    )


def _line(episodes: int = 3, length: int = 10) -> Trajectories:
    """1-D states that grow by 1 per step, starting at 10 * episode."""
    states = [10.0 * e + np.arange(length + 1, dtype=np.float64)[:, None] for e in range(episodes)]
    return _from_episodes(states, [np.zeros((length, 1))] * episodes)


def test_a_planner_that_knows_the_dynamics_scores_zero_and_still_is_exact() -> None:
    traj = _line()
    norm = Normalizer(np.zeros(1), np.full(1, 2.0))

    def exact(s: np.ndarray) -> np.ndarray:  # s, s + 1, s + 2: the true next states
        return s[:, None, :] + np.arange(3)[None, :, None]

    got = next_state_error(exact, traj, norm, samples=1000)
    assert got["planned"] == 0.0
    assert got["still"] == pytest.approx(0.5)  # |s - (s + 1)| / 2 on every transition
    assert got["samples"] == 30  # 3 episodes x 10 transitions, no pair across episodes
    # Stride 2: the true state two steps on, 9 pairs per episode.
    got2 = next_state_error(
        lambda s: s[:, None, :] + 2 * np.arange(2)[None, :, None], traj, norm, stride=2
    )
    assert got2["planned"] == 0.0 and got2["still"] == pytest.approx(1.0)
    assert got2["samples"] == 27


def test_a_planner_that_ignores_its_start_scores_near_shuffled() -> None:
    traj = _line(episodes=20, length=50)
    norm = Normalizer(np.array([100.0]), np.array([50.0]))
    rng = np.random.default_rng(1)
    pool = traj.next_observations.astype(np.float64)

    def blind(s: np.ndarray) -> np.ndarray:  # a random data state, whatever the start
        nxt = pool[rng.integers(len(pool), size=len(s))]
        return np.stack([s, nxt], axis=1)

    got = next_state_error(blind, traj, norm, samples=800, seed=3)
    assert got["planned"] > 10 * got["still"]
    assert got["planned"] == pytest.approx(got["shuffled"], rel=0.15)


def test_bad_input_is_refused() -> None:
    traj = _line()
    same = lambda s: np.stack([s, s], axis=1)  # noqa: E731
    with pytest.raises(ShapeMismatchError, match="positive stds"):
        next_state_error(same, traj, Normalizer(np.zeros(2), np.ones(2)))
    with pytest.raises(ShapeMismatchError, match="windows"):
        next_state_error(lambda s: s, traj, Normalizer(np.zeros(1), np.ones(1)))
    with pytest.raises(ToraError, match="longer than the stride"):
        next_state_error(same, traj, Normalizer(np.zeros(1), np.ones(1)), stride=11)


def _rewarded_line(episodes: int = 4, length: int = 30) -> Trajectories:
    """2-D states (position, velocity) with rewards that are known functions of the
    transition: r0 = velocity of the next state, r1 = -(change of velocity)^2."""
    rng = np.random.default_rng(0)
    obs, nxt, rew, ends = [], [], [], []
    for _ in range(episodes):
        v = np.cumsum(rng.normal(scale=0.3, size=length + 1))
        x = np.cumsum(v)
        s = np.stack([x, v], axis=1)
        obs.append(s[:-1])
        nxt.append(s[1:])
        rew.append(np.stack([v[1:], -(np.diff(v) ** 2)], axis=1))
        ends.append(np.arange(length) == length - 1)
    n = episodes * length
    return Trajectories(
        observations=np.concatenate(obs),
        actions=np.zeros((n, 1)),
        rewards=np.concatenate(rew),
        next_observations=np.concatenate(nxt),
        terminals=np.zeros(n, bool),
        timeouts=np.concatenate(ends),
        episode_bounds=np.arange(episodes + 1) * length,
        objectives=(Objective("speed"), Objective("smooth")),
    )


def test_reward_model_recovers_rewards_that_are_quadratic_in_the_transition() -> None:
    traj = _rewarded_line()
    model = transition_reward_model(traj)
    assert model.r2.tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    both = transition_features(traj.observations, traj.next_observations)
    np.testing.assert_allclose(model.predict(both), traj.rewards, atol=2e-3)


def test_diagnosis_of_an_exact_a_still_and_a_faster_planner() -> None:
    traj = _rewarded_line()
    norm = Normalizer(np.zeros(2), np.ones(2))

    def planner(dv: float):
        def plan(s: np.ndarray) -> np.ndarray:
            v_next = s[:, 1] + dv  # the data's dynamics: x' = x + v'
            nxt = np.stack([s[:, 0] + v_next, v_next], axis=1)
            return np.stack([s, nxt], axis=1)

        return plan

    found = diagnose_planners(
        {"still": lambda s: np.stack([s, s], axis=1), "faster": planner(0.5)},
        traj,
        norm,
        samples=100,
    )
    assert found.objectives == ["speed", "smooth"]
    # A still plan predicts "no change": its error is the "still" baseline exactly.
    assert found.next_state_error["still"] == pytest.approx(found.still)
    # Raising the next velocity by 0.5 raises the planned speed reward by 0.5 against a
    # plan that keeps it, and costs smoothness (-(0.5)^2 = -0.25 on every transition).
    keep = diagnose_planners({"keep": planner(0.0)}, traj, norm, samples=100).planned_reward
    faster = found.planned_reward["faster"]
    assert faster[0] - keep["keep"][0] == pytest.approx(0.5, abs=0.01)
    assert faster[1] - keep["keep"][1] == pytest.approx(-0.25, abs=0.01)
    assert len(found.data_reward) == 2 and found.reward_model_r2[0] > 0.999


def _pushed(episodes: int = 4, length: int = 25, seed: int = 0) -> Trajectories:
    """1-D states moved by their action: s' = s + a, with a ~ N(0, 1); episode e starts at
    100 e, so no two transitions start from the same state."""
    rng = np.random.default_rng(seed)
    actions = [rng.normal(size=(length, 1)) for _ in range(episodes)]
    states = [
        100.0 * e + np.concatenate([[[0.0]], np.cumsum(a, axis=0)]) for e, a in enumerate(actions)
    ]
    return _from_episodes(states, actions)


def test_action_error_by_hand() -> None:
    data = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    # Column 0: RMSE 1 over std sqrt(8/3); column 1 never varies: RMSE 0.5 in raw units.
    got = action_error(data + np.array([[1.0, 0.5], [-1.0, 0.5], [1.0, -0.5]]), data)
    assert got == pytest.approx((1.0 / np.sqrt(8.0 / 3.0) + 0.5) / 2)
    assert action_error(data, data) == 0.0
    with pytest.raises(ShapeMismatchError):
        action_error(data[:, :1], data)


def test_action_error_tells_the_right_plan_from_a_still_one() -> None:
    traj = _pushed()
    norm = Normalizer(np.zeros(1), np.ones(1))
    true_next = {
        tuple(s): n for s, n in zip(traj.observations, traj.next_observations, strict=True)
    }

    def exact(s: np.ndarray) -> np.ndarray:  # the recorded next state of each start state
        nxt = np.array([true_next[tuple(row.astype(np.float32))] for row in s])
        return np.stack([s, nxt], axis=1)

    def inverse(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:  # exact for s' = s + a
        return s_next - s

    found = diagnose_planners(
        {"exact": exact, "still": lambda s: np.stack([s, s], axis=1)},
        traj,
        norm,
        samples=100,
        inverse=inverse,
    )
    assert found.action_error["exact"] == pytest.approx(0.0, abs=1e-4)  # float32 states
    assert found.action_floor == pytest.approx(0.0, abs=1e-4)
    # A still plan asks for a = 0: its RMSE over the std is sqrt(mean a^2) / std(a).
    sampled = [found.action_error["still"], found.action_shuffled]
    assert 0.9 < sampled[0] < 1.1 and 1.2 < sampled[1] < 1.6
    # Without an inverse model nothing about actions is reported.
    plain = diagnose_planners({"exact": exact}, traj, norm, samples=100)
    assert plain.action_error == {} and plain.action_floor is None
