"""ARS behaviour policies: the update, learning, determinism, resume, warm starts, files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from tora.behavior import (
    ARSConfig,
    LinearPolicy,
    RunningStat,
    SetProgress,
    ars_update,
    chain_order,
    load_behavior_set,
    load_policy,
    train_ars,
    train_behavior_set,
)
from tora.behavior.ars import ARSState, RolloutRunner, evaluate_policy, save_state
from tora.errors import CheckpointError, ShapeMismatchError, ToraError
from tora.io import atomic_write_json, file_sha256
from tora.preferences import simplex_grid
from tora.train.checkpoint import save_tensors

CRUISE = "tora/Cruise-v0"
# Small but real: 8 directions x 100-step Cruise episodes, steps large enough to move in a
# few iterations (the MuJoCo defaults 0.02/0.03 are tuned for 500-step locomotion returns).
CRUISE_CONFIG = ARSConfig(
    directions=8,
    top=4,
    step_size=0.1,
    noise=0.1,
    iterations=8,
    episode_steps=100,
    eval_episodes=3,
    chain_from="corners",  # these tests pin the corners chain's order; "first" is tested below
)


class PointMass(gym.Env[np.ndarray, np.ndarray]):
    """x' = x + 0.5 a in 2-D, reward vector [-x1'^2, -x2'^2]: a = -2x is optimal and linear.

    From M = 0 (no control) an episode keeps its random start and scores about -20/3 per
    objective; a learned damping policy drives x to 0 within a few steps.
    """

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self._x = np.zeros(2)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._x = self.np_random.uniform(-1.0, 1.0, 2)
        self._t = 0
        return self._x.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        self._x = self._x + 0.5 * np.clip(action, -1.0, 1.0)
        self._t += 1
        return self._x.copy(), -(self._x**2), False, self._t >= 20, {}


def _same_policy(a: LinearPolicy, b: LinearPolicy) -> None:
    np.testing.assert_array_equal(a.M, b.M)
    assert a.obs_stat.count == b.obs_stat.count
    np.testing.assert_array_equal(a.obs_stat.mean, b.obs_stat.mean)
    np.testing.assert_array_equal(a.obs_stat.m2, b.obs_stat.m2)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.info["return_vector"] == b.info["return_vector"]
    assert a.info["env_steps"] == b.info["env_steps"]


@pytest.fixture(scope="module")
def cruise_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list[SetProgress]]:
    """An uninterrupted 3-policy Cruise set and the callback events of its training."""
    out = tmp_path_factory.mktemp("cruise_set")
    events: list[SetProgress] = []
    policies = train_behavior_set(CRUISE, out, 3, CRUISE_CONFIG, False, events.append)
    return out, policies, events


# --------------------------------------------------------------------------- the update


def test_ars_update_matches_hand_computation() -> None:
    M = np.array([[0.5, -0.5]])
    deltas = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])
    r_plus, r_minus = [1.0, 4.0, 2.0], [3.0, 0.0, 2.0]
    new, info = ars_update(M, deltas, r_plus, r_minus, step_size=0.1, top=2)
    # max(r+, r-) = 3, 4, 2 -> keep directions 1 then 0; kept returns 4, 1, 0, 3 have
    # std sqrt(2.5); sum (r+ - r-) delta = 4 [0, 1] - 2 [1, 0] = [-2, 4].
    sigma = np.sqrt(2.5)
    expected = M + 0.1 / (2 * sigma) * np.array([[-2.0, 4.0]])
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-15)
    assert info.top.tolist() == [1, 0]
    assert info.sigma == pytest.approx(sigma)
    # Equal returns carry no signal: no step (and no division by sigma = 0).
    same, info = ars_update(M, deltas, [1.0] * 3, [1.0] * 3, 0.1, 2)
    np.testing.assert_array_equal(same, M)
    assert info.sigma == 0.0


def test_running_stat_merge_equals_one_pass() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 4))
    merged = RunningStat.zeros(4)
    for part in (x[:7], x[7:8], x[8:8], x[8:]):
        merged = merged.merge(RunningStat.from_batch(part))
    assert merged.count == 50
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, x.std(axis=0, ddof=1), rtol=1e-12)
    # A constant coordinate is left unscaled instead of divided by ~0.
    assert RunningStat.from_batch(np.ones((5, 2))).std.tolist() == [1.0, 1.0]


def test_act_single_and_batch() -> None:
    stat = RunningStat(3, np.array([1.0, 0.0]), np.array([8.0, 2.0]))  # std = 2, 1
    policy = LinearPolicy(np.array([[1.0, 0.0], [0.0, 10.0]]), stat, [-1.0, -1.0], [1.0, 1.0])
    np.testing.assert_allclose(policy.act([3.0, 0.05]), [1.0, 0.5])
    batch = np.array([[3.0, 0.05], [0.0, -1.0], [1.0, 0.0]])
    out = policy.act(batch)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, [[1.0, 0.5], [-0.5, -1.0], [0.0, 0.0]])
    for row, obs in zip(out, batch, strict=True):
        np.testing.assert_allclose(policy.act(obs), row)
    with pytest.raises(ShapeMismatchError):
        policy.act(np.zeros(3))


# --------------------------------------------------------------------------- learning


def test_ars_improves_point_mass_return() -> None:
    config = ARSConfig(
        directions=8,
        top=4,
        step_size=0.1,
        noise=0.1,
        iterations=10,
        episode_steps=20,
        eval_episodes=10,
    )
    weights = np.array([0.5, 0.5])
    policy = train_ars(PointMass, weights, config, progress=False)
    with RolloutRunner(PointMass) as runner:
        zero = LinearPolicy.zeros(2, -np.ones(2), np.ones(2))
        before, _ = evaluate_policy(zero, runner, 10, 20, config.seed)
    start, end = float(before.mean(axis=0) @ weights), policy.info["scalarized_return"]
    assert start < -5.0  # about -20/3: the uncontrolled start
    assert end > 0.25 * start  # at least 4x closer to the optimum (0)
    assert policy.info["iterations"] == 10
    assert policy.info["env_steps"] == 10 * 16 * 20
    # It learned damping: strongly negative diagonal.
    assert (np.diag(policy.M) < -0.2).all()


def test_same_result_for_one_or_two_workers_and_repeated_runs() -> None:
    config = ARSConfig(
        directions=4, top=2, step_size=0.1, noise=0.1, iterations=3, episode_steps=60
    )
    runs = [
        train_ars(CRUISE, [0.5, 0.5], config, progress=False),
        train_ars(CRUISE, [0.5, 0.5], config, progress=False),
        train_ars(CRUISE, [0.5, 0.5], replace(config, workers=2), progress=False),
    ]
    for other in runs[1:]:
        _same_policy(runs[0], other)
        assert runs[0].info["history"] == other.info["history"]
    changed = train_ars(CRUISE, [0.5, 0.5], replace(config, seed=1), progress=False)
    assert not np.array_equal(changed.M, runs[0].M)


# --------------------------------------------------------------------------- the set


def test_chain_order_grows_from_the_vertices() -> None:
    order, parents = chain_order(simplex_grid(2, 11))
    assert order == [0, 10, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    assert parents == [None, 0, 1, 2, 3, 4, 7, 8, 9, 10, None]
    grid = simplex_grid(3, 21)
    order, parents = chain_order(grid)
    assert sorted(order) == list(range(21))
    roots = [i for i in order if parents[i] is None]
    assert sorted(roots) == [i for i in range(21) if grid[i].max() == 1.0]
    step = 1 / 5  # lattice spacing: every child starts from an adjacent lattice point
    for pos, i in enumerate(order):
        if parents[i] is not None:
            assert parents[i] in order[:pos]
            assert np.linalg.norm(grid[i] - grid[parents[i]]) == pytest.approx(step * np.sqrt(2))


def test_warm_start_chain(cruise_set: tuple[Path, list, list[SetProgress]]) -> None:
    _, policies, events = cruise_set
    starts = [e for e in events if e.info.event == "start"]
    assert [e.policy_index for e in starts] == [0, 2, 1]  # extremes first, then the middle
    for e in starts:
        assert e.info.iteration == 0
        if e.parent is None:
            assert not e.info.M.any()
        else:
            np.testing.assert_array_equal(e.info.M, policies[e.parent].M)
            assert e.parent == 0  # (0.5, 0.5) ties between the ends: the lower index wins
    # The warm start also carries the parent's normalization forward.
    assert policies[1].obs_stat.count > policies[0].obs_stat.count


def test_cruise_preferences_order_objectives(
    cruise_set: tuple[Path, list, list[SetProgress]],
) -> None:
    _, policies, _ = cruise_set
    speed_first, middle, energy_first = (np.array(p.info["return_vector"]) for p in policies)
    assert policies[0].weights.tolist() == [1.0, 0.0]
    assert policies[2].weights.tolist() == [0.0, 1.0]
    assert speed_first[0] > energy_first[0]
    assert energy_first[1] > speed_first[1]
    for p in policies:
        info = p.info
        assert info["iterations"] == CRUISE_CONFIG.iterations
        assert info["env_steps"] == CRUISE_CONFIG.iterations * 2 * CRUISE_CONFIG.directions * 100
        assert info["seconds"] > 0
    assert np.isfinite(middle).all()


class _Stop(Exception):
    pass


def test_killed_and_resumed_set_equals_uninterrupted(
    cruise_set: tuple[Path, list, list[SetProgress]], tmp_path: Path
) -> None:
    _, reference, _ = cruise_set

    def stop_at(position: int, event: str, iteration: int):
        def callback(p: SetProgress) -> None:
            if (p.position, p.info.event, p.info.iteration) == (position, event, iteration):
                raise _Stop

        return callback

    with pytest.raises(_Stop):  # mid-way through the second policy
        train_behavior_set(CRUISE, tmp_path, 3, CRUISE_CONFIG, False, stop_at(1, "iteration", 3))
    index = json.loads((tmp_path / "index.json").read_text())
    assert [e["index"] for e in index["policies"]] == [0] and not index["complete"]
    assert (tmp_path / "policy_002.state.safetensors").is_file()
    with pytest.raises(CheckpointError, match="only 1 of 3"):
        load_behavior_set(tmp_path)

    resumed_at: list[int] = []

    def record_then_stop(p: SetProgress) -> None:
        if p.info.event == "start":
            resumed_at.append(p.info.iteration)
        if p.position == 2:  # just before the third policy's first iteration
            raise _Stop

    with pytest.raises(_Stop):
        train_behavior_set(CRUISE, tmp_path, 3, CRUISE_CONFIG, False, record_then_stop)
    assert resumed_at == [3, 0]  # nothing of the interrupted policy was lost

    # Workers do not change results, so a resume may use another count.
    config = replace(CRUISE_CONFIG, workers=2)
    resumed = train_behavior_set(CRUISE, tmp_path, 3, config, progress=False)
    for a, b in zip(reference, resumed, strict=True):
        _same_policy(a, b)
    assert not list(tmp_path.glob("*.state.safetensors"))
    for a, b in zip(reference, load_behavior_set(tmp_path), strict=True):
        _same_policy(a, b)

    # Other settings in the same directory would mix two runs: refused.
    with pytest.raises(CheckpointError, match="config"):
        train_behavior_set(CRUISE, tmp_path, 3, replace(CRUISE_CONFIG, noise=0.2), False)


def test_state_file_of_another_run_is_refused(tmp_path: Path) -> None:
    config = ARSConfig(directions=2, top=1, iterations=1, episode_steps=5, eval_episodes=1)
    path = tmp_path / "state.safetensors"
    train_ars(CRUISE, [1.0, 0.0], config, state_path=path, progress=False)
    with pytest.raises(CheckpointError, match="another run"):
        train_ars(CRUISE, [0.0, 1.0], config, state_path=path, progress=False)
    with pytest.raises(CheckpointError, match="other settings"):
        other = replace(config, step_size=0.5)
        train_ars(CRUISE, [1.0, 0.0], other, state_path=path, progress=False)


# --------------------------------------------------------------------------- files


def test_policy_round_trip_and_set_loading(
    cruise_set: tuple[Path, list, list[SetProgress]], tmp_path: Path
) -> None:
    out, policies, _ = cruise_set
    policy = policies[1]
    tensor_path, json_path = policy.save(tmp_path / "p")
    assert tensor_path.suffix == ".safetensors" and json_path.suffix == ".json"
    for name in ("p", "p.json", "p.safetensors"):
        _same_policy(policy, load_policy(tmp_path / name))
    loaded = load_policy(tmp_path / "p")
    assert loaded.env_id == CRUISE and loaded.info == policy.info
    obs = np.array([[0.3, 0.1, -0.9], [1.2, -1.0, 0.0]])
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))

    index = json.loads((out / "index.json").read_text())
    assert index["complete"] and index["order"] == [0, 2, 1]
    for entry in index["policies"]:
        assert set(entry) >= {"file", "weights", "return_vector", "env_steps", "seconds"}
    loaded_set = load_behavior_set(out)
    assert [p.weights.tolist() for p in loaded_set] == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert loaded_set[1].info["index_entry"]["parent"] == 0
    # Everything is JSON + safetensors: no pickle anywhere in the set.
    assert {p.suffix for p in out.iterdir()} == {".json", ".safetensors"}


def test_wrong_shape_or_corrupt_policy_files_raise(tmp_path: Path) -> None:
    policy = LinearPolicy.zeros(3, [-1.0], [1.0], CRUISE, [0.5, 0.5])
    tensor_path, json_path = policy.save(tmp_path / "p")

    # A tensor file with the wrong M shape (and a matching checksum, so the shape check speaks).
    tensors = policy.to_tensors()
    tensors["M"] = torch.zeros(2, 3, dtype=torch.float64)
    save_tensors(tensor_path, tensors)
    doc = json.loads(json_path.read_text())
    atomic_write_json(json_path, {**doc, "sha256": file_sha256(tensor_path)})
    with pytest.raises(CheckpointError, match="shape"):
        load_policy(tmp_path / "p")

    # A truncated tensor file.
    policy.save(tmp_path / "p")
    tensor_path.write_bytes(tensor_path.read_bytes()[:40])
    with pytest.raises(CheckpointError):
        load_policy(tmp_path / "p")

    # Garbage JSON, a missing file.
    policy.save(tmp_path / "p")
    json_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(tmp_path / "p")
    with pytest.raises(CheckpointError, match="no such"):
        load_policy(tmp_path / "missing")


def test_corrupt_state_file_raises(tmp_path: Path) -> None:
    config = ARSConfig(directions=2, top=1, iterations=1, episode_steps=5)
    policy = LinearPolicy.zeros(3, [-1.0], [1.0], CRUISE, [1.0, 0.0])
    path = tmp_path / "s.safetensors"
    save_state(path, ARSState(policy), config, (0,))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(CheckpointError):
        train_ars(CRUISE, [1.0, 0.0], config, state_path=path, progress=False)


def test_chain_from_first_grows_from_one_corner_only() -> None:
    from tora.behavior.train import chain_order
    from tora.preferences import simplex_grid

    order, parents = chain_order(simplex_grid(2, 5), "first")
    assert order == [0, 1, 2, 3, 4] and parents == [None, 0, 1, 2, 3]
    order, parents = chain_order(simplex_grid(2, 5), "corners")
    assert order[:2] == [0, 4] and parents[0] is None and parents[4] is None
    with pytest.raises(ValueError, match="chain_from"):
        chain_order(simplex_grid(2, 5), "middle")


# --------------------------------------------------------------------------- roots


ANT = "tora/MO-Ant-v0"
TINY = ARSConfig(directions=1, top=1, iterations=1, episode_steps=5, eval_episodes=1)


def test_roots_get_their_own_iterations_and_warm_up_on_the_easier_task(tmp_path: Path) -> None:
    config = replace(TINY, root_iterations=3, warmup_iterations=2)
    policies = train_behavior_set(ANT, tmp_path, 2, config, progress=False)
    root, child = policies
    assert root.info["parent"] is None and child.info["parent"] == 0
    assert (root.info["iterations"], child.info["iterations"]) == (3, 1)
    assert root.info["warmup"]["iterations"] == 2
    assert root.info["warmup"]["env_kwargs"] == {"ctrl_cost_weight": 0.05}
    assert "warmup" not in child.info
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["config"]["warmup_iterations"] == 2
    assert index["policies"][0]["warmup"]["iterations"] == 2
    assert (tmp_path / "policy_000.warmup.json").is_file()
    assert not list(tmp_path.glob("*.state.safetensors"))

    # The warm-up stage resumes like the others: a kill inside it changes nothing.
    again = tmp_path / "again"

    def stop_in_warm_up(p: SetProgress) -> None:
        if (p.position, p.info.event, p.info.iteration) == (0, "iteration", 1):
            raise _Stop

    with pytest.raises(_Stop):
        train_behavior_set(ANT, again, 2, config, False, stop_in_warm_up)
    assert (again / "policy_000.warmup.state.safetensors").is_file()
    for a, b in zip(policies, train_behavior_set(ANT, again, 2, config, False), strict=True):
        _same_policy(a, b)


def test_warm_up_needs_an_env_with_an_easier_variant(tmp_path: Path) -> None:
    with pytest.raises(ToraError, match="no easier variant"):
        train_behavior_set(CRUISE, tmp_path, 2, replace(TINY, warmup_iterations=1), False)


def test_sets_without_the_later_settings_keep_their_recorded_plan(
    cruise_set: tuple[Path, list, list[SetProgress]],
) -> None:
    # Sets shipped before root/warm-up iterations existed record neither; defaults must not
    # change their plan, or resuming them would be refused.
    out, _, _ = cruise_set
    recorded = json.loads((out / "index.json").read_text())["config"]
    assert "root_iterations" not in recorded and "warmup_iterations" not in recorded
