"""Value critics (issue 17, item 3): Monte Carlo targets and the loss by hand, a fit of a known
value function, and a critic directory that is hashed and resumes only on its own inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tora.data.normalize import Normalizer
from tora.data.trajectories import Objective, Trajectories
from tora.diffusion.schedule import NoiseSchedule
from tora.errors import CheckpointError, StaleRunError
from tora.nn.critics import ValueCritic, ValueCriticConfig
from tora.nn.denoisers import DenoiserConfig
from tora.train.checkpoint import save_module
from tora.train.critic import (
    ValueCriticTrainConfig,
    critic_samples,
    discounted_returns_to_go,
    split_episodes,
    train_value_critic,
)
from tora.train.loop import STALE_PREFIX, OptimConfig, read_history
from tora.train.losses import value_regression_loss
from tora.train.planner_io import (
    CRITICS_DIR,
    PlannerSpec,
    load_planner,
    load_value_critic,
    reference_hash,
)


def episodes_of(
    rewards: list[list[list[float]]], terminal_last: list[bool], obs_dim: int = 2
) -> Trajectories:
    """Episodes with the given (L, K) rewards; state t of an episode is (t, episode index)."""
    records = []
    for i, (r, ends) in enumerate(zip(rewards, terminal_last, strict=True)):
        n = len(r)
        obs = np.stack([np.arange(n), np.full(n, i)], 1).astype(np.float32)[:, :obs_dim]
        last = np.zeros(n, bool)
        last[-1] = True
        records.append(
            {
                "observations": obs,
                "next_observations": obs + 100.0,
                "actions": np.zeros((n, 1)),
                "rewards": np.asarray(r, np.float32),
                "terminals": last & ends,
                "timeouts": last & (not ends),
            }
        )
    k = len(rewards[0][0])
    return Trajectories.from_episodes(records, [Objective(f"o{j}") for j in range(k)])


def test_returns_to_go_by_hand() -> None:
    traj = episodes_of([[[1, 1], [2, 1], [3, 1]], [[4, 1], [1, 1]]], [False, True])
    # gamma 0.5: 1 + .5 (2 + .5 * 3) = 2.75, 2 + .5 * 3 = 3.5, 3; then 4 + .5 = 4.5, 1.
    # The sum stops at each episode's end, terminal or not.
    expected = [[2.75, 1.75], [3.5, 1.5], [3.0, 1.0], [4.5, 1.5], [1.0, 1.0]]
    np.testing.assert_allclose(discounted_returns_to_go(traj, 0.5), expected)
    np.testing.assert_allclose(discounted_returns_to_go(traj, 0.0), traj.rewards)
    # gamma 1 gives undiscounted sums; the first state's equals the episode's return.
    g1 = discounted_returns_to_go(traj, 1.0)
    np.testing.assert_allclose(g1[traj.episode_bounds[:-1]], traj.episode_returns())


def test_critic_samples_add_the_terminal_state_with_value_zero() -> None:
    traj = episodes_of([[[1, 1], [2, 1], [3, 1]], [[4, 1], [1, 1]]], [False, True])
    returns = discounted_returns_to_go(traj, 0.5)
    states, targets = critic_samples(traj, returns[:, 0], np.array([0, 1]))
    # Five recorded states, then the state the terminal of episode 1 reached (value 0); the
    # state after episode 0's timeout has an unknown future and is left out.
    np.testing.assert_allclose(targets, [2.75, 3.5, 3.0, 4.5, 1.0, 0.0])
    np.testing.assert_array_equal(states[-1], traj.next_observations[-1])
    states, targets = critic_samples(traj, returns[:, 1], np.array([1]))
    np.testing.assert_allclose(targets, [1.5, 1.0, 0.0])
    train, held = split_episodes(10, 0.3, seed=0)
    assert held.size == 3 and np.union1d(train, held).tolist() == list(range(10))


def test_value_loss_by_hand() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0])
    target = torch.tensor([1.0, 0.0, 5.0])
    loss, stats = value_regression_loss(pred, target)
    # Errors 0, 2, -2: mean square 8/3. Target mean 2, variance (1 + 4 + 9) / 3 = 14/3.
    assert float(loss) == pytest.approx(8 / 3)
    assert stats["explained_variance"] == pytest.approx(1 - 8 / 14)
    with pytest.raises(ValueError, match="predicted values"):
        value_regression_loss(pred, target[:2])


def test_critic_returns_reward_units() -> None:
    critic = ValueCritic(3, target_mean=10.0, target_std=4.0, config=ValueCriticConfig(8, 1))
    s = torch.randn(5, 3)
    torch.testing.assert_close(critic(s), 10.0 + 4.0 * critic.standardized(s))


def fake_reference(run: Path, traj: Trajectories) -> None:
    """An untrained reference planner: the critic needs only its normalizer and hash."""
    spec = PlannerSpec(
        horizon=2,
        stride=1,
        obs_dim=traj.obs_dim,
        denoiser=DenoiserConfig(hidden_dim=8, depth=1, time_dim=4),
        schedule=NoiseSchedule(5),
        normalizer=Normalizer.fit(traj.observations),
    )
    save_module(
        run / "reference", spec.build(), {"kind": "reference_planner", "planner": spec.to_dict()}
    )


def known_value_data(seed: int, episodes: int = 40, length: int = 10) -> Trajectories:
    """Random 2-D states whose discounted return (gamma 0) is 3 s0 - 2 s1^2 + 5."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(episodes):
        obs = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
        value = 3 * obs[:, 0] - 2 * obs[:, 1] ** 2 + 5
        timeouts = np.zeros(length, bool)
        timeouts[-1] = True
        records.append(
            {
                "observations": obs,
                "next_observations": obs,
                "actions": np.zeros((length, 1)),
                "rewards": np.stack([value, -value], 1),
                "timeouts": timeouts,
            }
        )
    return Trajectories.from_episodes(records, ["a", "b"])


def small_config(steps: int, **changes: object) -> ValueCriticTrainConfig:
    base = ValueCriticTrainConfig(
        steps=steps,
        batch_size=64,
        gamma=0.0,
        held_out=0.25,
        evaluate_every=100,
        network=ValueCriticConfig(hidden_dim=64, depth=2),
        optim=OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=100, log_every=50),
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_critic_fits_a_known_value_function(tmp_path: Path) -> None:
    traj = known_value_data(seed=0)
    fake_reference(tmp_path, traj)
    out = train_value_critic(tmp_path, traj, "a", small_config(400), progress=False)
    assert out == tmp_path / CRITICS_DIR / "a"
    # R^2 on held-out episodes, measured by the trainer, and on fresh states by hand.
    assert read_history(out / "history.json")[-1]["val_explained_variance"] > 0.9
    _, spec, _ = load_planner(tmp_path / "reference")
    critic, config = load_value_critic(out, spec, reference_hash(tmp_path))
    assert config["objective"] == "a" and config["direction"] == "maximize"
    # The target's mean and std are those of the training episodes' returns (gamma 0: rewards).
    train_eps, _ = split_episodes(traj.num_episodes, 0.25, seed=0)
    rows = np.concatenate([np.arange(*traj.episode_bounds[i : i + 2]) for i in train_eps])
    returns = traj.rewards[rows, 0].astype(np.float64)
    assert config["target_mean"] == pytest.approx(returns.mean())
    assert config["target_std"] == pytest.approx(returns.std())
    fresh = np.random.default_rng(1).uniform(-1, 1, (2000, 2)).astype(np.float32)
    truth = 3 * fresh[:, 0] - 2 * fresh[:, 1] ** 2 + 5
    with torch.no_grad():
        pred = critic(spec.normalizer.normalize(torch.as_tensor(fresh))).numpy()
    r2 = 1 - np.mean((pred - truth) ** 2) / np.var(truth)
    assert r2 > 0.9, r2


def test_critic_dir_is_hashed_and_resumes_only_on_its_inputs(tmp_path: Path) -> None:
    traj = known_value_data(seed=0, episodes=8)
    fake_reference(tmp_path, traj)
    out = train_value_critic(tmp_path, traj, "b", small_config(20), progress=False)
    config = json.loads((out / "config.json").read_text())
    assert len(config["weights_sha256"]) == 64
    assert config["trained_from"]["reference_sha256"] == reference_hash(tmp_path)
    assert config["trained_from"]["data_sha256"] == traj.fingerprint()
    # More steps on the same inputs continue the run; other data is refused untouched.
    train_value_critic(tmp_path, traj, "b", small_config(40), progress=False)
    before = (out / "model.safetensors").read_bytes()
    other = known_value_data(seed=1, episodes=8)
    with pytest.raises(StaleRunError, match="data_sha256"):
        train_value_critic(tmp_path, other, "b", small_config(40), progress=False)
    with pytest.raises(StaleRunError, match="gamma"):
        train_value_critic(tmp_path, traj, "b", small_config(40, gamma=0.9), progress=False)
    assert (out / "model.safetensors").read_bytes() == before
    train_value_critic(tmp_path, other, "b", small_config(20), progress=False, restart=True)
    assert any(p.name.startswith(STALE_PREFIX) for p in out.iterdir())
    # A damaged weights file is refused as damaged, with the command that retrains it.
    _, spec, _ = load_planner(tmp_path / "reference")
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt.*tora critic .*--objective b --restart"):
        load_value_critic(out, spec, reference_hash(tmp_path))
