"""The supervised baselines (BC, BC(P), MORvS(P)): losses, targets, training, loading, acting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch

import tora
from tora.data.normalize import Normalizer
from tora.data.trajectories import Trajectories, objectives_from_names
from tora.envs import CRUISE_ID
from tora.envs.scripted import collect_cruise
from tora.errors import (
    CheckpointError,
    DataError,
    InvalidWeightsError,
    ShapeMismatchError,
    ToraError,
)
from tora.evaluate.rollout import rollout_sweep
from tora.policies.base import Method
from tora.policies.supervised import (
    BC,
    BC_P,
    MORVS_P,
    BCConfig,
    BCPConfig,
    MORvSPConfig,
    ReturnTargets,
    SupervisedConfig,
    average_returns_to_go,
    episode_average_rewards,
)
from tora.train.checkpoint import load_tensors
from tora.train.loop import OptimConfig
from tora.train.losses import behavior_cloning_loss

METHODS = (BC, BC_P, MORVS_P)
C = TypeVar("C", bound=SupervisedConfig)


def tiny(cls: type[C], steps: int, checkpoint_every: int = 10_000) -> C:
    """A small, fast configuration of method config ``cls``."""
    return cls(
        hidden_dim=32,
        depth=2,
        steps=steps,
        batch_size=64,
        optim=OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=checkpoint_every, log_every=5),
    )


@pytest.fixture(scope="module")
def data() -> Trajectories:
    """Scripted Cruise data: each episode holds one target speed and records the preference
    it stands for (more speed weight for a faster target), the data BC(P) learns from."""
    traj = collect_cruise(24, seed=0, progress=False)
    assert traj.preferences is not None
    return traj


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load_tensors(path / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = weights_of(a), weights_of(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --------------------------------------------------------------------------- pure parts


def test_bc_loss_matches_hand_computation() -> None:
    pred = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    target = torch.tensor([[1.0, 1.0], [2.0, 5.0]])
    loss, stats = behavior_cloning_loss(pred, target)
    # squared errors 1, 0, 0, 4 -> mean 1.25; absolute errors 1, 0, 0, 2 -> mean 0.75
    assert float(loss) == pytest.approx(1.25)
    assert stats == {"loss": pytest.approx(1.25), "abs_error": pytest.approx(0.75)}
    with pytest.raises(ValueError, match="targets"):
        behavior_cloning_loss(pred, target[:, :1])


def hand_data() -> Trajectories:
    """Three episodes with known rewards: lengths 3, 1, 2; objectives speed, energy."""
    rewards = np.array([[1, 0], [2, 0], [3, 6], [4, 4], [0, 1], [2, 3]], dtype=np.float32)
    t = len(rewards)
    return Trajectories(
        observations=np.zeros((t, 2)),
        actions=np.zeros((t, 1)),
        rewards=rewards,
        next_observations=np.zeros((t, 2)),
        terminals=np.zeros(t, bool),
        timeouts=np.zeros(t, bool),
        episode_bounds=np.array([0, 3, 4, 6]),
        objectives=objectives_from_names(["speed", "energy"]),
        preferences=np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
    )


def test_average_returns_to_go_by_hand() -> None:
    g = average_returns_to_go(hand_data())
    expected = [[6 / 3, 6 / 3], [5 / 2, 6 / 2], [3, 6], [4, 4], [2 / 2, 4 / 2], [2, 3]]
    np.testing.assert_allclose(g, expected)
    # An episode's per-step average return is its average reward-to-go at its first step.
    np.testing.assert_allclose(episode_average_rewards(hand_data()), g[[0, 3, 4]])


def test_return_targets_pick_the_best_near_neighbour() -> None:
    d = hand_data()
    avg = episode_average_rewards(d)  # [[2, 2], [4, 4], [1, 2]]
    unit = Normalizer(np.zeros(2, np.float32), np.ones(2, np.float32))
    signs = np.ones(2)
    one = ReturnTargets(d.preferences, avg, unit, signs, neighbors=1)
    # One neighbour: the episode collected under the nearest preference, whatever its return.
    np.testing.assert_allclose(one(np.array([[0.9, 0.1], [0.1, 0.9]])), [[2, 2], [1, 2]])
    every = ReturnTargets(d.preferences, avg, unit, signs, neighbors=3)
    # All episodes are candidates: episode 1 dominates the others under any weights.
    np.testing.assert_allclose(every(np.array([[1.0, 0.0], [0.0, 1.0]])), [[4, 4], [4, 4]])
    # The two nearest to (0, 1) are episodes 2 and 1 (squared distances 0 and 0.5): 1 is best.
    two = ReturnTargets(d.preferences, avg, unit, signs, neighbors=2)
    np.testing.assert_allclose(two(np.array([[0.0, 1.0]])), [[4, 4]])
    # Minimizing energy flips which episode is best under (0, 1): the lowest energy wins.
    costs = ReturnTargets(d.preferences, avg, unit, np.array([1.0, -1.0]), neighbors=3)
    np.testing.assert_allclose(costs(np.array([[0.0, 1.0]])), [[2, 2]])


# --------------------------------------------------------------------------- training


def test_methods_are_declared() -> None:
    assert [(m.name, m.label, m.sees_preferences) for m in METHODS] == [
        ("bc", "BC", False),
        ("bc_p", "BC(P)", True),
        ("morvs_p", "MORvS(P)", True),
    ]
    assert [m.config_cls for m in METHODS] == [BCConfig, BCPConfig, MORvSPConfig]
    default = MORvSPConfig()
    assert (default.hidden_dim, default.depth, default.steps) == (256, 3, 20000)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_each_method_trains_loads_and_runs_a_sweep(
    method: Method, data: Trajectories, tmp_path: Path
) -> None:
    out = method.train(data, tmp_path / method.name, tiny(method.config_cls, 40), "cpu", False)
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == method.name
    policy = method.load(out, "cpu", 0)
    assert policy.label == method.label
    assert policy.objective_names == ["speed", "energy"]
    single = policy.act(data.observations[0], np.array([0.3, 0.7]))
    assert single.shape == (1,) and single.dtype == np.float32
    assert np.all(np.abs(single) <= 1.0)  # squashed into the data's action range
    result = rollout_sweep(
        policy.act,
        lambda: tora.make_env(CRUISE_ID),
        np.array([[1.0, 0.0], [0.0, 1.0]]),
        episodes=1,
        seed=0,
        progress=False,
    )
    assert result.returns.shape == (2, 1, 2) and np.isfinite(result.returns).all()
    assert (result.lengths == 100).all()


def test_seeded_training_repeats_exactly(data: Trajectories, tmp_path: Path) -> None:
    config = tiny(MORvSPConfig, 15)
    MORVS_P.train(data, tmp_path / "a", config, "cpu", False)
    MORVS_P.train(data, tmp_path / "b", config, "cpu", False)
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    MORVS_P.train(data, tmp_path / "c", dataclasses.replace(config, seed=1), "cpu", False)
    assert not torch.equal(
        weights_of(tmp_path / "a")["body.0.weight"], weights_of(tmp_path / "c")["body.0.weight"]
    )


def test_resumed_training_equals_uninterrupted(data: Trajectories, tmp_path: Path) -> None:
    def config(steps: int) -> BCPConfig:
        c = tiny(BCPConfig, steps, checkpoint_every=10)
        c.optim.ema_decay = 0.9  # the EMA shadow must resume too
        return c

    BC_P.train(data, tmp_path / "full", config(20), "cpu", False)
    # "Killed" after 10 steps: the first run stops at its checkpoint, the second resumes it.
    BC_P.train(data, tmp_path / "cut", config(10), "cpu", False)
    BC_P.train(data, tmp_path / "cut", config(20), "cpu", False)
    assert_same_weights(tmp_path / "full", tmp_path / "cut")
    history = json.loads((tmp_path / "cut" / "history.json").read_text())["history"]
    assert [h["step"] for h in history] == [5, 10, 15, 20]


@pytest.mark.parametrize("method", (BC_P, MORVS_P), ids=lambda m: m.name)
def test_preference_steers_behaviour(method: Method, data: Trajectories, tmp_path: Path) -> None:
    """More weight on speed -> more speed and less energy, on the scripted Cruise data."""
    out = method.train(data, tmp_path / "m", tiny(method.config_cls, 300), "cpu", False)
    policy = method.load(out, "cpu", 0)
    result = rollout_sweep(
        policy.act,
        lambda: tora.make_env(CRUISE_ID),
        np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
        episodes=2,
        seed=0,
        progress=False,
    )
    speed, energy = result.mean_returns[:, 0], result.mean_returns[:, 1]
    # Held throttles of about 1 and 0.05 give speed returns near 90 and 5: a margin of 30 only
    # fails if the preference input is ignored or mis-wired.
    assert speed[0] > speed[1] > speed[2] and speed[0] > speed[2] + 30, speed
    assert energy[2] > energy[1] > energy[0] and energy[2] > energy[0] + 30, energy


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def trained(data: Trajectories, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    return {
        m.name: m.train(data, root / m.name, tiny(m.config_cls, 2), "cpu", False) for m in METHODS
    }


def test_missing_preferences_are_refused(data: Trajectories, tmp_path: Path) -> None:
    plain = dataclasses.replace(data, preferences=None)
    for method in (BC_P, MORVS_P):
        with pytest.raises(DataError, match="preference"):
            method.train(plain, tmp_path / method.name, tiny(method.config_cls, 2), "cpu", False)
    BC.train(plain, tmp_path / "bc", tiny(BCConfig, 2), "cpu", False)  # BC does not need them


def test_wrong_config_type_is_refused(data: Trajectories, tmp_path: Path) -> None:
    with pytest.raises(ToraError, match="MORvSPConfig"):
        MORVS_P.train(data, tmp_path / "m", tiny(BCPConfig, 2), "cpu", False)
    bad = tiny(MORvSPConfig, 2)
    bad.target_neighbors = 0
    with pytest.raises(ToraError, match="target_neighbors"):
        MORVS_P.train(data, tmp_path / "m", bad, "cpu", False)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_act_rejects_bad_input(method: Method, trained: dict[str, Path]) -> None:
    policy = method.load(trained[method.name], "cpu", 0)
    obs = np.array([0.5, 0.0, 1.0], dtype=np.float32)
    with pytest.raises(ShapeMismatchError, match="observation"):
        policy.act(np.zeros(5, np.float32), [0.5, 0.5])
    with pytest.raises(ShapeMismatchError, match="observation"):
        policy.act(np.zeros((2, 2, 3), np.float32), [0.5, 0.5])
    with pytest.raises(ShapeMismatchError, match="3 weight rows for 2"):
        policy.act(np.stack([obs, obs]), np.full((3, 2), 0.5))
    # Ragged rows and text are named as what they are, not left to NumPy's message.
    with pytest.raises(ShapeMismatchError, match="rows of equal length"):
        policy.act([[0.5, 0.0, 1.0], [0.5, 0.0]], [0.5, 0.5])  # type: ignore[list-item]
    with pytest.raises(ShapeMismatchError, match="must be numbers"):
        policy.act(["a", "b", "c"], [0.5, 0.5])  # type: ignore[list-item]
    with pytest.raises(DataError, match="NaN"):
        policy.act(np.array([np.nan, 0.0, 1.0], np.float32), [0.5, 0.5])
    with pytest.raises(InvalidWeightsError, match="speed"):
        policy.act(obs, [1.0])
    with pytest.raises(InvalidWeightsError, match="finite"):
        policy.act(obs, [float("nan"), 1.0])
    with pytest.raises(InvalidWeightsError, match="sum to 1"):
        policy.act(obs, [0.5, 0.6])
    with pytest.raises(ShapeMismatchError):
        policy.check_spaces((17,), (6,))
    # A shared preference row and one row per observation give the same actions.
    batch = policy.act(np.stack([obs, obs]), [0.3, 0.7])
    np.testing.assert_array_equal(batch, policy.act(np.stack([obs, obs]), [[0.3, 0.7]] * 2))


def test_loaders_refuse_another_methods_directory(trained: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="'bc'"):
        BC_P.load(trained["bc"], "cpu", 0)
    with pytest.raises(CheckpointError, match="MORvS"):
        MORVS_P.load(trained["bc_p"], "cpu", 0)
    with pytest.raises(CheckpointError, match=r"config\.json"):
        BC.load(tmp_path, "cpu", 0)
