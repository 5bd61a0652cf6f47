"""Offline LS / DiME: losses and critic targets by hand, the temperature's Adam step, and
tiny training runs (DiME (BC) multi at alpha = 1 is behaviour cloning; seeded runs repeat)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tora.data.trajectories import Trajectories, objectives_from_names
from tora.dime.critic import CriticConfig, load_critic, task_rewards
from tora.dime.offline import (
    PolicyConfig,
    TemperatureDual,
    load_policy,
    policy_dir,
    train_offline,
    train_policy,
)
from tora.errors import InvalidWeightsError, ShapeMismatchError, ToraError
from tora.nn.dime import Critic, GaussianPolicy, gaussian_log_prob
from tora.policies.supervised import BC, BCConfig
from tora.train.checkpoint import load_tensors
from tora.train.loop import OptimConfig
from tora.train.losses.dime import temperature_dual
from tora.train.losses.dime_offline import (
    advantage_weights,
    ls_temperature,
    offline_dime_loss,
    offline_ls_loss,
)
from tora.train.losses.iql import critic_loss, expectile_loss, td_targets


def _t(*values: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


# --------------------------------------------------------------------------- critic by hand


def test_expectile_loss_by_hand() -> None:
    # u = 1 weighs tau = 0.7, u = -2 weighs 1 - tau = 0.3: (0.7 * 1 + 0.3 * 4) / 2.
    assert float(expectile_loss(_t(1.0, -2.0), 0.7)) == pytest.approx(0.95)
    # tau = 0.5 is half the mean squared error.
    assert float(expectile_loss(_t(1.0, -2.0), 0.5)) == pytest.approx(0.5 * 2.5)


def test_td_targets_by_hand() -> None:
    """r + gamma (1 - d) V(s'): a terminal stops the bootstrap; the result carries no grad."""
    next_v = _t(10.0, 20.0, -4.0, grad=True)
    targets = td_targets(_t(1.0, 2.0, 0.5), torch.tensor([False, True, False]), next_v, 0.9)
    assert targets.tolist() == pytest.approx([1.0 + 9.0, 2.0, 0.5 - 3.6])
    assert not targets.requires_grad


def test_critic_loss_by_hand() -> None:
    # Rows: transitions; columns: the twins.
    q_pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    values = _t(0.0, 5.0, grad=True)
    loss, stats = critic_loss(q_pred, _t(2.0, 2.0), _t(1.0, 3.0), values, expectile=0.7)
    # Twin 1: ((1-2)^2 + (3-2)^2) / 2 = 1; twin 2: (0 + (4-2)^2) / 2 = 2.
    # V: u = (1 - 0, 3 - 5) = (1, -2) -> (0.7 * 1 + 0.3 * 4) / 2 = 0.95.
    assert stats["q_loss"] == pytest.approx(3.0)
    assert stats["v_loss"] == pytest.approx(0.95)
    assert float(loss.detach()) == pytest.approx(3.95)
    loss.backward()
    # dL_Q/dQ = 2 (Q - target) / B per twin; dL_V/dV = -2 w u / B.
    assert q_pred.grad is not None and values.grad is not None
    assert q_pred.grad.flatten().tolist() == pytest.approx([-1.0, 0.0, 1.0, 2.0])
    assert values.grad.tolist() == pytest.approx([-0.7, 0.3 * 2.0])


def _toy_traj(
    rewards: np.ndarray,
    terminals: np.ndarray,
    obs: np.ndarray,
    actions: np.ndarray,
    episode_length: int | None = None,
) -> Trajectories:
    n = len(rewards)
    return Trajectories(
        observations=obs,
        actions=actions,
        rewards=rewards,
        next_observations=np.roll(obs, -1, axis=0),
        terminals=terminals,
        timeouts=np.zeros(n, bool),
        episode_bounds=np.arange(0, n + 1, episode_length or n),
        objectives=objectives_from_names(["speed", "cost"], minimize=["cost"]),
        metadata={"env_id": None},
    )


def test_task_rewards_scalarize_with_signs() -> None:
    rewards = np.array([[1.0, 2.0], [3.0, 0.5]])
    traj = _toy_traj(rewards, np.zeros(2, bool), np.zeros((2, 1)), np.zeros((2, 1)))
    # The cost counts negatively: 0.25 * r_speed - 0.75 * r_cost, then scaled by 2.
    assert task_rewards(traj, [0.25, 0.75], 2.0).tolist() == pytest.approx([-2.5, 0.75])
    assert task_rewards(traj).tolist() == pytest.approx([-0.5, 1.25])  # equal weights
    with pytest.raises(InvalidWeightsError):
        task_rewards(traj, [0.5, 0.6])


def test_critic_target_q_scores_n_actions_per_state() -> None:
    critic = Critic(obs_dim=3, act_dim=2, hidden_dim=8, depth=1)
    obs, actions = torch.randn(4, 3), torch.randn(4, 5, 2)
    batched = critic.target_q(obs, actions)
    looped = torch.stack([critic.target_q(obs, actions[:, j]) for j in range(5)], dim=1)
    assert batched.shape == (4, 5)
    torch.testing.assert_close(batched, looped)


# --------------------------------------------------------------------------- policy losses


def test_advantage_weights_by_hand() -> None:
    a = _t(0.0, math.log(2.0), math.log(3.0))
    # exp(A) = 1, 2, 3 -> softmax (1, 2, 3) / 6, times B = 3.
    assert advantage_weights(a, 1.0).tolist() == pytest.approx([0.5, 1.0, 1.5])
    # beta = 1/2 squares them: (1, 4, 9) / 14 * 3.
    assert advantage_weights(a, 0.5).tolist() == pytest.approx([3 / 14, 12 / 14, 27 / 14])
    assert advantage_weights(a, math.inf).tolist() == [1.0, 1.0, 1.0]
    assert advantage_weights(a, 0.0).tolist() == pytest.approx([0.0, 0.0, 3.0])
    assert advantage_weights(_t(1.0, 0.0, 1.0), 0.0).tolist() == pytest.approx([1.5, 0.0, 1.5])


def test_ls_temperature_is_alpha_over_one_minus_alpha() -> None:
    assert ls_temperature(0.5) == pytest.approx(1.0)
    assert ls_temperature(0.25) == pytest.approx(1 / 3)
    assert ls_temperature(0.0) == 0.0
    assert ls_temperature(1.0) == math.inf
    with pytest.raises(InvalidWeightsError):
        ls_temperature(1.5)


def test_offline_ls_loss_by_hand() -> None:
    log_probs = _t(-1.0, -2.0, -4.0, grad=True)
    a = _t(0.0, math.log(2.0), math.log(3.0))
    loss, stats = offline_ls_loss(log_probs, a, alpha=0.5)  # beta = 1
    # -(0.5 * -1 + 1 * -2 + 1.5 * -4) / 3
    assert float(loss.detach()) == pytest.approx(8.5 / 3)
    assert stats["max_weight"] == pytest.approx(1.5)
    loss.backward()
    assert log_probs.grad is not None
    assert log_probs.grad.tolist() == pytest.approx([-0.5 / 3, -1 / 3, -0.5])
    bc, _ = offline_ls_loss(log_probs, a, alpha=1.0)  # alpha = 1: behaviour cloning
    assert float(bc.detach()) == pytest.approx(7 / 3)


# Two states, three sampled actions each.
SAMPLED_Q = [[1.0, 2.0, 3.0], [0.0, 0.0, 2.0]]
SAMPLED_LP = [[-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5]]
DATA_LP = [-0.25, -4.0]


def _softmax(values: list[float], eta: float) -> list[float]:
    exps = [math.exp(v / eta) for v in values]
    return [e / sum(exps) for e in exps]


@pytest.mark.parametrize("awbc", [False, True], ids=["bc", "awbc"])
def test_offline_dime_loss_by_hand(awbc: bool) -> None:
    """Eq. 11 with one alpha per row: (1 - alpha_b) sum_j w_bj log pi + alpha_b v_b log pi."""
    eta, alphas = 2.0, [0.25, 0.6]
    prior = [0.5, 1.5] if awbc else [1.0, 1.0]
    sampled = torch.tensor(SAMPLED_LP, dtype=torch.float64, requires_grad=True)
    data = torch.tensor(DATA_LP, dtype=torch.float64, requires_grad=True)
    loss, stats = offline_dime_loss(
        sampled,
        torch.tensor(SAMPLED_Q, dtype=torch.float64),
        data,
        _t(*alphas),
        _t(eta),
        _t(*prior) if awbc else None,
    )
    task = prior_term = 0.0
    for b in range(2):
        w = _softmax(SAMPLED_Q[b], eta)
        task -= (1 - alphas[b]) * sum(wj * lp for wj, lp in zip(w, SAMPLED_LP[b], strict=True))
        prior_term -= alphas[b] * prior[b] * DATA_LP[b]
    assert stats["task_loss"] == pytest.approx(task / 2)
    assert stats["prior_loss"] == pytest.approx(prior_term / 2)
    assert float(loss.detach()) == pytest.approx((task + prior_term) / 2)
    kl = sum(sum(w * math.log(3 * w) for w in _softmax(SAMPLED_Q[b], eta)) for b in range(2))
    assert stats["kl"] == pytest.approx(kl / 2)
    loss.backward()
    assert data.grad is not None and sampled.grad is not None
    assert data.grad.tolist() == pytest.approx([-alphas[b] * prior[b] / 2 for b in range(2)])
    expected = [-(1 - alphas[b]) * w / 2 for b in range(2) for w in _softmax(SAMPLED_Q[b], eta)]
    assert sampled.grad.flatten().tolist() == pytest.approx(expected)


def test_offline_dime_loss_ends() -> None:
    """alpha = 1 is behaviour cloning alone; alpha = 0 is the task improvement alone."""
    args = (
        torch.tensor(SAMPLED_LP, dtype=torch.float64),
        torch.tensor(SAMPLED_Q, dtype=torch.float64),
        torch.tensor(DATA_LP, dtype=torch.float64),
    )
    bc, stats = offline_dime_loss(*args, 1.0, _t(1.0))
    assert float(bc.detach()) == pytest.approx(-(DATA_LP[0] + DATA_LP[1]) / 2)
    assert stats["task_loss"] == 0.0
    _, stats = offline_dime_loss(*args, 0.0, _t(1.0))
    assert stats["prior_loss"] == 0.0


def test_offline_dime_loss_rejects_bad_inputs() -> None:
    q, lp = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ShapeMismatchError):
        offline_dime_loss(lp, torch.zeros(2, 4), torch.zeros(2), 0.5, _t(1.0))
    with pytest.raises(ShapeMismatchError):
        offline_dime_loss(lp, q, torch.zeros(3), 0.5, _t(1.0))
    with pytest.raises(InvalidWeightsError):
        offline_dime_loss(lp, q, torch.zeros(2), torch.tensor([0.5, 1.2]), _t(1.0))


def test_temperature_dual_step_is_adam_on_the_dual() -> None:
    """TemperatureDual's own Adam equals torch's Adam on log eta, step after step."""
    q = torch.randn(6, 5, 1, generator=torch.Generator().manual_seed(1)) * 3
    dual = TemperatureDual(1, init_temperature=10.0, lr=0.05)
    log_eta = torch.full((1,), math.log(10.0), requires_grad=True)
    adam = torch.optim.Adam([log_eta], lr=0.05)
    for _ in range(5):
        dual.update(q, 0.3)
        adam.zero_grad()
        temperature_dual(q, log_eta.exp(), 0.3).sum().backward()
        adam.step()
        torch.testing.assert_close(dual.log_temperature, log_eta.detach())
    assert float(dual.temperatures()[0]) < 10.0  # the KL was below the bound: eta fell


def test_gaussian_policy_mean_in_box_and_log_prob() -> None:
    policy = GaussianPolicy(3, 2, torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0]), 16, 1)
    mean, std = policy(torch.randn(7, 3) * 10)
    assert bool(torch.all((mean >= policy.action_low) & (mean <= policy.action_high)))
    assert bool(torch.all(std > 0))
    actions = torch.randn(7, 4, 2)
    expected = torch.distributions.Normal(mean.unsqueeze(1), std.unsqueeze(1)).log_prob(actions)
    torch.testing.assert_close(gaussian_log_prob(actions, mean, std), expected.sum(-1))
    with pytest.raises(ShapeMismatchError):
        policy(torch.randn(7, 3), torch.randn(7, 1))  # no conditioning input


# --------------------------------------------------------------------------- training

TARGET_ACTION = 0.8
"""The toy task's best action: the reward is -(a - 0.8)^2."""


@pytest.fixture(scope="module")
def toy_data() -> Trajectories:
    """Behaviour a = 0.5 sin(2 s_0) + noise on random 2-D states; every step is terminal with
    reward -(a - 0.8)^2, so the task critic is Q(s, a) = -(a - 0.8)^2, whatever the state."""
    rng = np.random.default_rng(0)
    n = 1200
    obs = rng.uniform(-1.5, 1.5, size=(n, 2)).astype(np.float32)
    actions = np.clip(0.5 * np.sin(2 * obs[:, :1]) + rng.normal(0, 0.3, (n, 1)), -1, 1)
    reward = -((actions[:, 0] - TARGET_ACTION) ** 2)
    return _toy_traj(np.stack([reward, np.zeros(n)], 1), np.ones(n, bool), obs, actions, 100)


def _critic_config(steps: int = 400) -> CriticConfig:
    return CriticConfig(
        hidden_dim=32,
        steps=steps,
        batch_size=128,
        task_weights=[1.0, 0.0],
        optim=OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=10_000, log_every=50),
    )


def _policy_config(variant: str, multi: bool, steps: int, **kw: object) -> PolicyConfig:
    return PolicyConfig(
        variant=variant,  # type: ignore[arg-type]
        multi=multi,
        hidden_dim=64,
        steps=steps,
        batch_size=128,
        num_actions=8,
        optim=OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=10_000, log_every=50),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def toy_run(toy_data: Trajectories, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy critic and a DiME (BC) multi policy trained on it."""
    run = tmp_path_factory.mktemp("dime_run")
    train_offline(
        toy_data, run, _policy_config("dime_bc", True, 1000), _critic_config(), progress=False
    )
    return run


def test_critic_learns_the_toy_q(toy_run: Path) -> None:
    loaded = load_critic(toy_run / "critic")
    obs = loaded.normalizer.normalize(torch.zeros(5, 2))
    a = torch.linspace(-0.5, 0.5, 5).unsqueeze(-1)
    q = loaded.critic.target_q(obs, a)
    assert q.tolist() == pytest.approx((-((a[:, 0] - TARGET_ACTION) ** 2)).tolist(), abs=0.1)


def test_dime_bc_multi_at_alpha_one_is_behaviour_cloning(
    toy_data: Trajectories, toy_run: Path, tmp_path: Path
) -> None:
    """At alpha = 1 the multi policy's mean action matches a plain BC fit on the same data;
    at alpha = 0.005 it moves towards the critic's best action, 0.8."""
    policy = load_policy(policy_dir(toy_run, "dime_bc", multi=True))
    bc_dir = BC.train(
        toy_data,
        tmp_path / "bc",
        BCConfig(
            hidden_dim=64,
            depth=2,
            steps=1000,
            batch_size=128,
            optim=OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=10_000),
        ),
        "cpu",
        False,
    )
    bc = BC.load(bc_dir, "cpu", 0)
    grid = np.stack([np.linspace(-1.2, 1.2, 25), np.zeros(25)], axis=1).astype(np.float32)
    bc_actions = bc.act(grid, np.array([1.0, 0.0]))[:, 0]
    cloned = policy.act(grid, 1.0)[:, 0]
    greedy = policy.act(grid, 0.005)[:, 0]
    # Two fits of noisy data (noise std 0.3) differ by about 0.05 on average; a policy that
    # ignored alpha or read it the wrong way round would sit near 0.8, 0.5 or more away.
    assert np.abs(cloned - bc_actions).mean() < 0.12, (cloned, bc_actions)
    assert np.abs(cloned - 0.5 * np.sin(2 * grid[:, 0])).mean() < 0.1
    # The task pulls the low-alpha policy well past anything behaviour cloning does.
    assert (greedy - cloned).mean() > 0.2, (greedy, cloned)


def _same_weights(a: Path, b: Path) -> None:
    ta, tb = load_tensors(a / "model.safetensors"), load_tensors(b / "model.safetensors")
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.mark.parametrize(("variant", "multi"), [("ls", False), ("dime_awbc", True)])
def test_seeded_training_repeats_exactly_and_resumes(
    variant: str, multi: bool, toy_data: Trajectories, toy_run: Path, tmp_path: Path
) -> None:
    critic = toy_run / "critic"
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_policy(toy_data, critic, full, _policy_config(variant, multi, 30), 0.3, progress=False)
    again = tmp_path / "again"
    train_policy(toy_data, critic, again, _policy_config(variant, multi, 30), 0.3, progress=False)
    _same_weights(full, again)

    # "Killed" after 20 steps (a checkpoint every 10), then resumed: the same weights, the
    # same temperature and Adam moments of the dual.
    def cut_config(steps: int) -> PolicyConfig:
        config = _policy_config(variant, multi, steps)
        config.optim.checkpoint_every = 10
        return config

    train_policy(toy_data, critic, cut, cut_config(20), 0.3, progress=False)
    train_policy(toy_data, critic, cut, cut_config(30), 0.3, progress=False)
    _same_weights(full, cut)


def test_training_refuses_mismatches(toy_data: Trajectories, toy_run: Path, tmp_path: Path) -> None:
    critic = toy_run / "critic"
    out = tmp_path / "p"
    train_policy(toy_data, critic, out, _policy_config("ls", False, 2), 0.3, progress=False)
    with pytest.raises(ToraError, match="other settings"):
        train_policy(toy_data, critic, out, _policy_config("ls", False, 2), 0.7, progress=False)
    other = toy_data.select_episodes([0, 1])
    with pytest.raises(ToraError, match="other data"):
        train_policy(other, critic, tmp_path / "q", _policy_config("ls", False, 2), 0.3)
    with pytest.raises(ToraError, match="no multi variant"):
        _policy_config("ls", True, 2)
    with pytest.raises(ToraError, match="needs a trade-off"):
        train_policy(toy_data, critic, tmp_path / "r", _policy_config("dime_bc", False, 2))
    multi = load_policy(policy_dir(toy_run, "dime_bc", multi=True))
    with pytest.raises(InvalidWeightsError):
        multi.act(np.zeros(2, np.float32))
