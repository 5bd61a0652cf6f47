"""DiME over the environment's objectives (dime_p): the loss by hand, simplex sampling, the
weights steering a toy task the right way, and a run on Cruise through the benchmark method."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from tora.behavior.make import make_dataset
from tora.data.trajectories import Trajectories, objectives_from_names
from tora.dime.critic import CriticConfig
from tora.dime.mo import DimePConfig, critic_dirs, load_dime_p, sample_simplex, train_dime_p
from tora.envs import make_env
from tora.errors import InvalidWeightsError, ShapeMismatchError, ToraError
from tora.evaluate.rollout import rollout_sweep
from tora.policies.registry import get_method
from tora.train.loop import OptimConfig
from tora.train.losses.dime_offline import offline_mo_dime_loss


def _t(rows: list, grad: bool = False) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64, requires_grad=grad)


def test_mo_dime_loss_by_hand() -> None:
    """Two states, two sampled actions each, two objectives, prior weight 0.2."""
    ln3 = math.log(3.0)
    # Objective 0 prefers action 1 (softmax (1/4, 3/4)), objective 1 action 0 ((3/4, 1/4)).
    q = _t([[[0.0, ln3], [ln3, 0.0]], [[0.0, ln3], [ln3, 0.0]]])
    sampled = _t([[-1.0, -2.0], [-1.0, -2.0]], grad=True)
    data = _t([-3.0, -1.0], grad=True)
    prefs = _t([[1.0, 0.0], [0.0, 1.0]])
    loss, stats = offline_mo_dime_loss(sampled, q, data, prefs, _t([1.0, 1.0]), 0.2)
    # Row 0 mixes objective 0's weights (1/4, 3/4): 0.8 * (0.25 + 1.5) = 1.4, prior 0.2 * 3.
    # Row 1 mixes objective 1's (3/4, 1/4): 0.8 * (0.75 + 0.5) = 1.0, prior 0.2 * 1.
    assert stats["task_loss"] == pytest.approx((1.4 + 1.0) / 2)
    assert stats["prior_loss"] == pytest.approx((0.6 + 0.2) / 2)
    assert float(loss.detach()) == pytest.approx(1.6)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)  # sum_a w log(N w), the same per row
    assert stats["kl_0"] == pytest.approx(kl) and stats["kl_1"] == pytest.approx(kl)
    loss.backward()
    assert sampled.grad is not None and data.grad is not None
    # d loss / d log pi = -(1 - beta) * mixed weight / B for sampled, -beta / B for data.
    expected = [[-0.8 * 0.25 / 2, -0.8 * 0.75 / 2], [-0.8 * 0.75 / 2, -0.8 * 0.25 / 2]]
    assert sampled.grad.tolist() == [pytest.approx(r) for r in expected]
    assert data.grad.tolist() == pytest.approx([-0.1, -0.1])


def test_mo_dime_loss_temperature_and_prior_extremes() -> None:
    q = _t([[[0.0, 2.0], [1.0, 1.0]]])
    sampled, data = _t([[-1.0, -2.0]]), _t([-5.0])
    # A high temperature spreads objective 0's weights evenly.
    _, stats = offline_mo_dime_loss(sampled, q, data, _t([[1.0, 0.0]]), _t([1e6, 1.0]), 0.0)
    assert stats["task_loss"] == pytest.approx(1.5, rel=1e-5)
    # prior_weight 1 is behaviour cloning: the objectives vanish.
    loss, _ = offline_mo_dime_loss(sampled, q, data, _t([[0.3, 0.7]]), _t([1.0, 1.0]), 1.0)
    assert float(loss) == pytest.approx(5.0)


def test_mo_dime_loss_checks_inputs() -> None:
    q, lp, data = torch.zeros(2, 3, 2), torch.zeros(2, 3), torch.zeros(2)
    with pytest.raises(ShapeMismatchError, match="preferences"):
        offline_mo_dime_loss(lp, q, data, torch.ones(2, 3), torch.ones(2), 0.1)
    with pytest.raises(ShapeMismatchError, match="sampled_q"):
        offline_mo_dime_loss(lp, q[:, :2], data, torch.ones(2, 2), torch.ones(2), 0.1)
    with pytest.raises(InvalidWeightsError):
        offline_mo_dime_loss(lp, q, data, -torch.ones(2, 2), torch.ones(2), 0.1)
    with pytest.raises(InvalidWeightsError):
        offline_mo_dime_loss(lp, q, data, torch.ones(2, 2), torch.ones(2), 1.5)


def test_sample_simplex_is_seeded_and_on_the_simplex() -> None:
    a = sample_simplex(4000, 3, torch.Generator().manual_seed(1))
    b = sample_simplex(4000, 3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert bool((a >= 0).all())
    torch.testing.assert_close(a.sum(1), torch.ones(4000))
    # Uniform on the 2-simplex: each coordinate has mean 1/3 and is below 1/2 with
    # probability 1 - (1/2)^2 = 3/4.
    assert a.mean(0).tolist() == pytest.approx([1 / 3] * 3, abs=0.02)
    assert float((a[:, 0] < 0.5).double().mean()) == pytest.approx(0.75, abs=0.03)


def test_config_refuses_task_weights() -> None:
    with pytest.raises(ToraError, match="task_weights"):
        DimePConfig(critic=CriticConfig(task_weights=[1.0, 0.0]))


# --------------------------------------------------------------------------- toy training

TARGETS = (0.8, -0.8)
"""The toy's best action per objective: objective k rewards -(a - TARGETS[k])^2."""


@pytest.fixture(scope="module")
def toy_data() -> Trajectories:
    """One-step episodes with random actions in [-1, 1] on random 2-D states; objective k's
    reward is -(a - TARGETS[k])^2, so Q_k(s, a) is that too, whatever the state."""
    rng = np.random.default_rng(0)
    n = 1500
    obs = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    rewards = np.stack([-((actions[:, 0] - t) ** 2) for t in TARGETS], axis=1)
    return Trajectories(
        observations=obs,
        actions=actions,
        rewards=rewards.astype(np.float32),
        next_observations=np.roll(obs, -1, axis=0),
        terminals=np.ones(n, bool),
        timeouts=np.zeros(n, bool),
        episode_bounds=np.arange(0, n + 1, 100),
        objectives=objectives_from_names(["right", "left"]),
        metadata={"env_id": None},
    )


def _fast(steps: int, critic_steps: int, **kw: object) -> DimePConfig:
    optim = OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=10_000, log_every=50)
    return DimePConfig(
        hidden_dim=64,
        depth=2,
        steps=steps,
        batch_size=128,
        num_actions=8,
        critic=CriticConfig(hidden_dim=32, steps=critic_steps, batch_size=128, optim=optim),
        optim=optim,
        **kw,  # type: ignore[arg-type]
    )


def test_weights_steer_the_toy_policy(toy_data: Trajectories, tmp_path: Path) -> None:
    """More weight on an objective moves the action towards that objective's best action."""
    out = train_dime_p(toy_data, tmp_path / "p", _fast(800, 400), progress=False)
    assert all((d / "config.json").is_file() for d in critic_dirs(out, toy_data.objectives))
    policy = load_dime_p(out)
    obs = np.random.default_rng(1).uniform(-1, 1, (32, 2)).astype(np.float32)
    means = [float(policy.act(obs, np.array([w, 1 - w])).mean()) for w in (0.0, 0.5, 1.0)]
    # w on "right" = 0, 0.5, 1: towards -0.8, near 0, towards +0.8 (the data's mean is 0).
    assert means[0] < -0.3 and means[2] > 0.3 and abs(means[1]) < 0.3, means
    # The same directory with other settings is refused rather than mixed.
    with pytest.raises(ToraError, match="other settings"):
        train_dime_p(toy_data, tmp_path / "p", _fast(800, 400, prior_weight=0.5), progress=False)


def test_method_trains_and_evaluates_on_cruise(tmp_path: Path) -> None:
    """The registered method end to end on the built-in task, in seconds."""
    method = get_method("dime_p")
    assert method.label == "DiME multi" and not method.sees_preferences
    data = make_dataset("tora/Cruise-v0", 10, "expert", "uniform", 0, progress=False)
    method.train(data, tmp_path / "model", _fast(30, 30), "cpu", False)
    policy = method.load(tmp_path / "model", "cpu", 0)
    assert policy.objective_names == data.objective_names
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    result = rollout_sweep(
        policy.act,
        partial(make_env, "tora/Cruise-v0"),
        weights,
        1,
        0,
        env_id="tora/Cruise-v0",
        objective_names=policy.objective_names,
        progress=False,
    )
    assert result.returns.shape[:2] == (3, 1) and np.isfinite(result.returns).all()
